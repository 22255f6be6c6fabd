import Anomaly
import ArgumentParser
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
@_spi(Engine) import VisualInspection

/// `vinspect fewshot-eval CLASSES_DIR`: episodic evaluation of the prototype classifier.
struct FewShotEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fewshot-eval",
        abstract: "Measure the few-shot defect classifier with N-way K-shot episodes.",
        discussion: """
            Embeds every image of CLASSES_DIR (one sub-folder per class) once with the backbone,
            then draws --episodes episodes with --seed: --ways classes, --shots support and
            --queries query images per class. Prints the mean accuracy with its 95 % confidence
            interval. Example (NEU surface defects, 6-way 1-shot):
              vinspect fewshot-eval data/neu-cls --ways 6 --shots 1 --queries 15 --episodes 600 --backbone lite0.vimodel
            """)

    @Argument(help: "The folder with one sub-folder of images per class.")
    var classesDirectory: String

    @Option(help: "Classes per episode.") var ways: Int = 5
    @Option(help: "Support images per class.") var shots: Int = 1
    @Option(help: "Query images per class.") var queries: Int = 15
    @Option(help: "Number of episodes.") var episodes: Int = 600
    @Option(help: "Seed of the episode draw.") var seed: UInt64 = 0

    @OptionGroup var backboneOptions: BackboneOptions
    @Option(help: "Side of the square images are resized to.") var imageSize: Int = 224
    @Option(help: "Embedding: last (pooled last map) or multi (pooled stride-8, stride-16 and last). Default: the head's, else multi.")
    var embedding: EmbeddingSource?
    @Option(help: "Power transform exponent applied to features (1 = none); with --head, the head's own exponent is used.")
    var power: Float = 0.2
    @Option(help: "A projection head from `vinspect fewshot-train`, applied after the power transform (train it on other classes than these).")
    var head: String?
    @Flag(inversion: .prefixedNo, help: "Centre embeddings on each episode's support mean before normalising.") var centerOnSupport = true
    @Option(help: "Softmax inverse temperature on cosine similarities.") var scale: Float = 5
    @Option(help: "Soft k-means refinement steps with each episode's queries (0 = none).") var refine: Int = 0
    @Option(help: "Class sub-folders to leave out, comma-separated (e.g. MT_Free).") var exclude = CommaSeparated<String>([])
    @Option(help: ArgumentHelp("Good images (a folder) for an anomaly scorer, trained with default settings, whose maps give each defect image's region: the embedding becomes `region` (the defect pooled by itself next to the whole image).", valueName: "DIR"))
    var good: String?
    @Option(help: "Good images drawn from --good (with --seed) to train the anomaly scorer.") var goodShots: Int = 16
    @Flag(help: "Open-set episodes: one more class per episode that the classifier is not shown; report known accuracy and how many of the extra class's queries are rejected as unknown.")
    var openSet = false
    @Option(help: "Open-set rejection rule (experiments): leave-one-out quantile of the support's own similarities.")
    var rejectionQuantile: Double = 0.05
    @Option(help: "Open-set rejection rule (experiments): margin below the leave-one-out quantile, or offset above the neighbour quantile.")
    var rejectionMargin: Float = 0
    @Option(help: "Open-set rejection rule (experiments): use this quantile of the support's similarities to the nearest other class instead.")
    var neighbourQuantile: Double?
    @Flag(help: "Print the result as JSON.") var json = false
    @Option(help: "Keep the embeddings in this file and reuse them when backbone, image size and embedding match (for sweeps).")
    var cache: String?

    func validate() throws {
        if ways < 2 { throw ValidationError("--ways must be at least 2") }
        if shots < 1 || queries < 1 || episodes < 1 || goodShots < 1 { throw ValidationError("--shots, --queries, --episodes and --good-shots must be positive") }
        if imageSize < 32 || imageSize > 2048 { throw ValidationError("--image-size must be between 32 and 2048") }
    }

    func run() throws {
        let excluded = Set(exclude.values.filter { !$0.isEmpty })
        let folders = try ClassFolders.load(classesDirectory, excluding: excluded)
        if folders.classes.count < ways {
            throw ValidationError("\(classesDirectory) has \(folders.classes.count) classes, fewer than --ways \(ways)")
        }
        let log: (String) -> Void = { line in if json { printError(line) } else { print(line) } }
        var projection: ProjectionHead?
        var embedding = self.embedding ?? .multi
        if let head {
            let (loaded, metadata) = try ProjectionHead.load(from: head)
            let trainedWith = metadata["embedding"]?.stringValue.flatMap(EmbeddingSource.init(rawValue:))
            if let trainedWith {
                if let chosen = self.embedding, chosen != trainedWith {
                    throw ValidationError("\(head) was trained on --embedding \(trainedWith.rawValue) embeddings, not \(chosen.rawValue)")
                }
                embedding = trainedWith
            }
            projection = loaded
            log("head \(head): \(loaded.residual ? "residual" : "plain"), D \(loaded.inputDimension), rank \(loaded.rank), power \(loaded.power), "
                + "trained on \(metadata["trained_on"]?.arrayValue?.count ?? 0) classes")
        }
        if good != nil && self.embedding == nil && head == nil { embedding = .region }
        if embedding == .region && good == nil {
            throw ValidationError("--embedding region needs --good DIR: the anomaly scorer trained on those images finds the region")
        }
        let key = "\(backboneOptions.backbone)|\(imageSize)|\(embedding.rawValue)|\(good ?? "")|\(goodShots)|\(seed)|\(folders.classes.map { "\($0.name):\($0.files.count)" }.joined(separator: ","))"
        var data: [(name: String, vectors: [[Float]])] = []
        if let cache, let file = try? ModelFile(contentsOfFile: cache), file.metadata["key"]?.stringValue == key {
            data = file.tensors.map { t in (t.name, (0..<t.shape[0]).map { Array(t.scalars[($0 * t.shape[1])..<(($0 + 1) * t.shape[1])]) }) }
            log("embeddings read from \(cache)")
        } else {
            let network = try backboneOptions.load()
            let frozen = network.frozen()
            var preprocessing = Preprocessing(size: imageSize, mean: network.inputNormalization.mean, std: network.inputNormalization.std)
            var anomaly: AnomalyEnsemble?
            if let good {
                let files = ClassFolders.imageFiles(below: good)
                guard !files.isEmpty else { throw ValidationError("\(good) holds no PNG or JPEG images") }
                var generator = Xoshiro256(seed: seed)
                let drawn = Array(files.shuffled(using: &generator).prefix(goodShots))
                let images = try drawn.map { (path: String) throws -> Image in try Image(contentsOfFile: path) }
                let model = try InspectorTrainer.train(backbone: network, good: images, classes: [])
                anomaly = model.anomaly
                preprocessing = model.preprocessing
                log("anomaly scorer from \(drawn.count) good images of \(good) (input \(preprocessing.inputSize.width)x\(preprocessing.inputSize.height))")
            }
            let start = monotonicSeconds()
            for (name, files) in folders.classes {
                let images = try files.map { (path: String) throws -> Tensor in try preprocessing.tensor(contentsOfFile: path) }
                data.append((name, embeddings(of: images, backbone: frozen, source: embedding, anomaly: anomaly)))
            }
            let total = data.reduce(0) { $0 + $1.vectors.count }
            log("embedded \(total) images of \(data.count) classes with \(network.architecture) in \(format(monotonicSeconds() - start)) s "
                + "(\(format((monotonicSeconds() - start) * 1000 / Double(total))) ms each)")
            if let cache {
                let tensors = data.map { NamedTensor(name: $0.name, shape: [$0.vectors.count, $0.vectors[0].count], scalars: $0.vectors.flatMap { $0 }) }
                try ModelFile(metadata: ["kind": .string("embedding-cache"), "key": .string(key)], tensors: tensors).write(toFile: cache)
            }
        }
        if let projection, let width = data.first?.vectors.first?.count, width != projection.inputDimension {
            throw ValidationError("\(head ?? "the head") takes \(projection.inputDimension) features, the \(embedding.rawValue) embeddings have \(width)")
        }
        if openSet {
            if folders.classes.count < ways + 1 {
                throw ValidationError("--open-set needs --ways + 1 classes; \(classesDirectory) has \(folders.classes.count)")
            }
            let result = Episodes.evaluateOpenSet(data, ways: ways, shots: shots, queries: queries, episodes: episodes, seed: seed,
                                                  transform: EmbeddingTransform(power: power, head: projection), centerOnSupport: centerOnSupport,
                                                  scale: scale, rejectionQuantile: rejectionQuantile,
                                                  rejectionMargin: rejectionMargin, neighbourQuantile: neighbourQuantile)
            if json {
                try printJSON(result)
            } else {
                print(String(format: "%d-way %d-shot + 1 unknown class, %d queries/class, %d episodes (seed %llu): known accuracy %.2f %% ± %.2f %% "
                             + "(%.2f %% without rejection; %.2f %% of known queries rejected), unknown rejected %.2f %% ± %.2f %%",
                             ways, shots, queries, episodes, seed, 100 * result.knownAccuracy, 100 * result.knownAccuracy95,
                             100 * result.knownAccuracyWithoutRejection, 100 * result.knownRejected,
                             100 * result.unknownRejected, 100 * result.unknownRejected95))
            }
            return
        }
        let result = Episodes.evaluate(data, ways: ways, shots: shots, queries: queries, episodes: episodes, seed: seed,
                                       transform: EmbeddingTransform(power: power, head: projection), centerOnSupport: centerOnSupport,
                                       refinementSteps: refine, scale: scale)
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%d-way %d-shot, %d queries/class, %d episodes (seed %llu): accuracy %.2f %% ± %.2f %%",
                         ways, shots, queries, episodes, seed, 100 * result.accuracy, 100 * result.confidence95))
        }
    }
}

extension EmbeddingSource: ExpressibleByArgument {}

/// Prints a value as pretty, key-sorted JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

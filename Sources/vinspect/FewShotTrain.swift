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

/// `vinspect fewshot-train [CLASSES_DIR...]`: episodic training of a projection head.
struct FewShotTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fewshot-train",
        abstract: "Train a projection head for the few-shot classifier on base classes (not the ones it will classify).",
        discussion: """
            Embeds every image of the CLASSES_DIR folders (one sub-folder per class) and
            of --generated synthetic defect classes once with the frozen backbone, then
            trains a head on the power-transformed embeddings by --episodes N-way K-shot
            episodes with the prototypical loss on cosines (the classifier's own rule),
            AdamW and a cosine schedule. The head is written to --output; use it with
            `vinspect fewshot-eval --head`, only on classes it was not trained on.
            The defaults are the best of a small sweep on seed-0 NEU and magnetic-tile
            episodes; longer or faster training fits the base classes and loses
            accuracy elsewhere. Example (magnetic-tile defects and 54 generated classes,
            then evaluated on NEU):
              vinspect fewshot-train data/magnetic-tile --exclude MT_Free \\
                --generated 54 --views 4 --backbone lite0.vimodel \\
                --output mt-head.vimodel
              vinspect fewshot-eval data/neu-cls --ways 6 --shots 1 \\
                --backbone lite0.vimodel --head mt-head.vimodel
            """)

    @Argument(help: "Folders with one sub-folder of images per base class (none: generated classes only).")
    var classesDirectories: [String] = []

    @Option(help: "Class sub-folders to leave out, comma-separated, in every folder (e.g. MT_Free).") var exclude = CommaSeparated<String>([])
    @Option(help: "Number of generated synthetic defect classes to add (textures x defect kinds x variants; 54 covers every combination once).")
    var generated: Int = 0
    @Option(help: "Images per generated class.") var generatedImages: Int = 30
    @Option(help: "Seed of the generated images (kept apart from --seed so that the data stay fixed while training varies).")
    var generatedSeed: UInt64 = 0
    @Option(help: "Also write the generated images here as PNG files, one sub-folder per class, to look at them (only when they are embedded, not when read from --cache-directory).")
    var saveGenerated: String?
    @Option(help: "Symmetry views embedded per image of the folders (1-8: itself, mirrors, quarter turns); episodes pick one view per image.")
    var views: Int = 1

    @Option(help: "Classes per training episode.") var ways: Int = 10
    @Option(help: "Support images per class in a training episode.") var shots: Int = 1
    @Option(help: "Query images per class in a training episode.") var queries: Int = 10
    @Option(help: "Training episodes (one optimiser step each).") var episodes: Int = 300
    @Option(help: "Seed of the head's initialisation and the episode draw.") var seed: UInt64 = 0
    @Option(help: "Rank of the head's residual update (0: per-feature weights only), or output width with --plain.")
    var dimension: Int = 16
    @Flag(help: "Train a plain linear projection to --dimension features instead of the residual head that starts as the identity.")
    var plain = false
    @Option(help: "Peak AdamW learning rate (5 % warm-up, then cosine decay to 0).") var learningRate: Float = 3e-4
    @Option(help: "AdamW weight decay of the head's matrices (pulls a residual head towards the identity).") var weightDecay: Float = 0.01
    @Option(help: "Inverse temperature of the training softmax over cosine similarities.") var temperature: Float = 10
    @Option(help: "Power transform exponent in front of the head (stored in the head; fewshot-eval uses it).") var power: Float = 0.2
    @Flag(inversion: .prefixedNo, help: "Centre each training episode on its support mean, as fewshot-eval does by default.")
    var centerOnSupport = true

    @Option(help: "Backbone: a vinspect backbone file, a checkpoint (with --arch), or an architecture name (untrained).")
    var backbone: String = "efficientnet-lite0"
    @Option(name: .customLong("arch"), help: "Architecture of a raw checkpoint given to --backbone.")
    var architecture: BackboneArchitecture?
    @Option(help: "Side of the square images are resized to.") var imageSize: Int = 224
    @Option(help: "Embedding: last (pooled last map) or multi (pooled stride-8, stride-16 and last); fewshot-eval must use the same.")
    var embedding: EmbeddingSource = .multi
    @Option(help: "Keep the embeddings of each source (folder or generated set) in a file in this folder and reuse them when every input setting matches (for sweeps).")
    var cacheDirectory: String?
    @Option(help: "Where to write the head (a vinspect model file).") var output: String

    func validate() throws {
        if classesDirectories.isEmpty && generated == 0 { throw ValidationError("give class folders, --generated N, or both") }
        if ways < 2 { throw ValidationError("--ways must be at least 2") }
        if shots < 1 || queries < 1 || episodes < 1 { throw ValidationError("--shots, --queries and --episodes must be positive") }
        if generated < 0 || generatedImages < 0 { throw ValidationError("--generated and --generated-images must not be negative") }
        if generated > 0 && generatedImages < shots + queries {
            throw ValidationError("--generated-images \(generatedImages) is fewer than --shots + --queries (\(shots + queries))")
        }
        if views < 1 || views > 8 { throw ValidationError("--views must be between 1 and 8") }
        if dimension < 0 || (plain && dimension < 1) { throw ValidationError("--dimension must be positive (0 is allowed for the residual head)") }
        if !(learningRate > 0) || weightDecay < 0 || !(temperature > 0) || !(power > 0) {
            throw ValidationError("--learning-rate, --temperature and --power must be positive, --weight-decay not negative")
        }
        if imageSize < 32 || imageSize > 2048 { throw ValidationError("--image-size must be between 32 and 2048") }
    }

    func run() throws {
        try checkModelOutput(output)
        let excluded = Set(exclude.values.filter { !$0.isEmpty })
        let folders = try classesDirectories.map { (root: String) throws -> (String, ClassFolders) in
            (root, try ClassFolders.load(root, excluding: excluded))
        }
        let synthetic = SyntheticDefects(seed: generatedSeed)
        let settings = "\(backbone)|\(imageSize)|\(embedding.rawValue)"
        // Each source (a folder, or the generated set) is embedded and cached on its own, so
        // that sweeps over combinations of sources embed every image only once.
        var sources: [(key: String, label: String, classes: () throws -> [BaseClass])] = []
        var network: (any Backbone)?
        func backboneParts() throws -> (FrozenBackbone, Preprocessing) {
            let net = try network ?? loadBackbone(backbone, architecture: architecture)
            network = net
            return (net.frozen(), Preprocessing(size: imageSize, mean: net.inputNormalization.mean, std: net.inputNormalization.std))
        }
        for (root, f) in folders {
            let prefix = root.split(separator: "/").last.map(String.init) ?? root
            sources.append(("\(settings)|views \(views)|" + f.classes.map { "\($0.name):\($0.files.count)" }.joined(separator: ","), prefix, {
                let (frozen, preprocessing) = try backboneParts()
                return try f.classes.map { name, files in
                    let images = try files.map { (path: String) throws -> Tensor in try preprocessing.tensor(contentsOfFile: path) }
                    return BaseClass(name: "\(prefix)/\(name)", images: viewEmbeddings(of: images, views: views, backbone: frozen, source: embedding))
                }
            }))
        }
        if generated > 0 {
            sources.append(("\(settings)|generated \(generated)x\(generatedImages) seed \(generatedSeed)", "generated", {
                let (frozen, preprocessing) = try backboneParts()
                return try synthetic.classes(generated).map { spec in
                    let pictures = (0..<generatedImages).map { synthetic.image(of: spec, index: $0, size: 200) }
                    if let saveGenerated {
                        let folder = "\(saveGenerated)/\(spec.name)"
                        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                        for (i, picture) in pictures.enumerated() { try picture.write(toFile: "\(folder)/\(i).png") }
                    }
                    // Generated images already vary in orientation, so one view each is enough.
                    return BaseClass(name: "generated/\(spec.name)",
                                     images: viewEmbeddings(of: pictures.map(preprocessing.tensor), views: 1, backbone: frozen, source: embedding))
                }
            }))
        }

        var classes: [BaseClass] = []
        for source in sources {
            let file = cacheDirectory.map { "\($0)/\(source.label)-\(String(fnv1a(source.key), radix: 16)).cache" }
            if let file, let cached = try? ModelFile(contentsOfFile: file), cached.metadata["key"]?.stringValue == source.key {
                classes += cached.tensors.map { t in
                    let (n, v, d) = (t.shape[0], t.shape[1], t.shape[2])
                    return BaseClass(name: t.name, images: (0..<n).map { i in
                        (0..<v).map { j in Array(t.scalars[((i * v + j) * d)..<((i * v + j + 1) * d)]) }
                    })
                }
                print("\(source.label): embeddings read from \(file)")
                continue
            }
            let start = monotonicSeconds()
            let made = try source.classes()
            let count = made.reduce(0) { $0 + $1.images.count * ($1.images.first?.count ?? 0) }
            print("\(source.label): embedded \(count) views of \(made.count) classes in \(format(monotonicSeconds() - start)) s")
            if let file {
                let tensors = made.map { c in
                    NamedTensor(name: c.name, shape: [c.images.count, c.images[0].count, c.images[0][0].count],
                                scalars: c.images.flatMap { $0.flatMap { $0 } })
                }
                try FileManager.default.createDirectory(atPath: cacheDirectory!, withIntermediateDirectories: true)
                try ModelFile(metadata: ["kind": .string("embedding-cache"), "key": .string(source.key)], tensors: tensors).write(toFile: file)
            }
            classes += made
        }
        let usable = classes.filter { $0.images.count >= shots + queries }
        if usable.count < ways {
            throw ValidationError("only \(usable.count) base classes have --shots + --queries = \(shots + queries) images, fewer than --ways \(ways)")
        }
        if usable.count < classes.count {
            print("skipped (too few images): \(classes.filter { $0.images.count < shots + queries }.map(\.name).joined(separator: ", "))")
        }

        var options = HeadTrainingOptions()
        options.ways = ways; options.shots = shots; options.queries = queries; options.episodes = episodes
        options.rank = dimension; options.residual = !plain; options.power = power; options.learningRate = learningRate
        options.weightDecay = weightDecay; options.temperature = temperature; options.centerOnSupport = centerOnSupport
        options.seed = seed
        let start = monotonicSeconds()
        let head = HeadTrainer.train(usable, options: options, reportEvery: Swift.max(episodes / 10, 1)) { p in
            print(String(format: "episode %5d: loss %.4f, training-episode accuracy %.2f %%", p.episode, p.loss, 100 * p.accuracy))
        }
        let optionsJSON: [String: JSONValue] = [
            "ways": .number(Double(ways)), "shots": .number(Double(shots)), "queries": .number(Double(queries)),
            "episodes": .number(Double(episodes)), "seed": .number(Double(seed)), "lr": .number(Double(learningRate)),
            "weight_decay": .number(Double(weightDecay)), "temperature": .number(Double(temperature)),
            "center_on_support": .bool(centerOnSupport), "views": .number(Double(views)),
            "generated": .number(Double(generated)), "generated_images": .number(Double(generatedImages)),
            "generated_seed": .number(Double(generatedSeed)),
        ]
        try head.save(to: output, extra: [
            "embedding": .string(embedding.rawValue), "image_size": .number(Double(imageSize)), "backbone": .string(backbone),
            "trained_on": .array(usable.map { .string($0.name) }), "training": .object(optionsJSON),
            "created_by": .string("vinspect \(VisualInspectionVersion.string)"),
        ])
        print("trained a \(plain ? "plain" : "residual") head (D \(head.inputDimension), rank \(head.rank)) on \(usable.count) classes "
              + "in \(format(monotonicSeconds() - start)) s -> \(output)")
    }
}

/// 64-bit FNV-1a hash of a string (names cache files after their settings).
func fnv1a(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return h
}

import Anomaly
import ArgumentParser
import Foundation
import NeuralNet
import VisualInspection

/// Options that choose and shape the anomaly scorer, shared by `train` and `evaluate`.
struct ScorerOptions: ParsableArguments {
    @Option(help: backboneHelp)
    var backbone: String = "default"

    @Option(name: .customLong("arch"), help: "Architecture of a raw checkpoint given to --backbone.")
    var architecture: BackboneArchitecture?

    @Option(help: ArgumentHelp(
        "What the scorer learns from the good patches: bank (memory bank, nearest good patch anywhere) or gaussian (one Gaussian per position, Mahalanobis distance).",
        discussion: "gaussian suits well-aligned parts and many good images; bank suits parts that move or turn and few images."))
    var mode: ScoringMode = .memoryBank

    @Option(help: "Gaussian mode: feature channels kept, drawn at random with the seed (0 = all).")
    var gaussianChannels: Int = 0

    @Option(help: "Image score: mean of this fraction of the map's largest values (0 = the maximum).")
    var topFraction: Double = 0

    @Option(help: "Side of the square images are resized to.")
    var imageSize: Int = 224

    @Option(help: "Feature maps used, by stride index (0: stride 4, 1: stride 8, 2: stride 16), comma-separated.")
    var layers: String = "1,2"

    @Option(help: "Neighbourhood each patch feature is averaged over (1 = none).")
    var aggregation: Int = 3

    @Option(help: "Variants of the good images in the bank: \(BankAugmentation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var augment: BankAugmentation = .none

    @Option(help: "Fraction of patches kept by the greedy coreset.")
    var coresetFraction: Double = 0.1

    @Option(help: "Upper bound on the memory-bank size.")
    var maxBank: Int = 16_384

    @Option(help: "Standard deviation of the map smoothing, in pixels of the resized image.")
    var sigma: Float = 4

    @Option(help: "Inspect only this rectangle of each image: x,y,width,height in pixels.")
    var roi: String?

    func validate() throws {
        if imageSize < 32 || imageSize > 2048 { throw ValidationError("--image-size must be between 32 and 2048") }
        if parsedLayers == nil { throw ValidationError("--layers takes stride indices 0, 1, 2, e.g. 1,2") }
        if aggregation < 1 || aggregation % 2 == 0 { throw ValidationError("--aggregation must be an odd number >= 1") }
        if !(coresetFraction > 0 && coresetFraction <= 1) { throw ValidationError("--coreset-fraction must be in (0, 1]") }
        if maxBank < 1 { throw ValidationError("--max-bank must be positive") }
        if gaussianChannels < 0 { throw ValidationError("--gaussian-channels must be 0 (all) or positive") }
        if !(topFraction >= 0 && topFraction < 1) { throw ValidationError("--top-fraction must be in [0, 1)") }
        if let roi, RegionOfInterest(roi) == nil { throw ValidationError("--roi takes x,y,width,height with width and height positive") }
    }

    var parsedLayers: [Int]? {
        let values = layers.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && (0...2).contains($0!) }) else { return nil }
        return values.map { $0! }
    }

    var scorerOptions: AnomalyScorerOptions {
        var o = AnomalyScorerOptions()
        o.imageSize = imageSize
        o.features = PatchFeatureOptions(layers: parsedLayers ?? [1, 2], aggregation: aggregation)
        o.augmentation = augment
        o.coresetFraction = coresetFraction
        o.maximumBankSize = maxBank
        o.coresetThreshold = maxBank
        o.smoothingSigma = sigma
        o.mode = mode
        o.gaussianChannels = gaussianChannels
        o.topFraction = topFraction
        return o
    }

    /// The backbone named by --backbone.
    func loadBackbone() throws -> any Backbone {
        try vinspect.loadBackbone(backbone, architecture: architecture)
    }
}

extension BankAugmentation: ExpressibleByArgument {}
extension ScoringMode: ExpressibleByArgument {}

/// `vinspect evaluate DATASET_DIR`: measure the anomaly scorer.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the anomaly scorer on a labelled data set (MVTec AD or magnetic-tile layout).",
        discussion: """
            For each seed, draws --shots good training images, trains the scorer, scores every test
            image and prints image AUROC, pixel AUROC, AUPRO (to 30 % FPR) and F1-max, then the
            mean and spread over the seeds. --json prints the same as one JSON document.
            """)

    @Argument(help: "The data set folder.")
    var dataset: String

    @Option(help: "Good training images per draw (default: all).")
    var shots: Int?

    @Option(help: "Seeds of the K-shot draws, comma-separated.")
    var seeds: String = "0,1,2"

    @OptionGroup var scorer: ScorerOptions

    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        if let shots, shots < 1 { throw ValidationError("--shots must be at least 1") }
        if parsedSeeds == nil { throw ValidationError("--seeds takes comma-separated non-negative integers, e.g. 0,1,2") }
    }

    var parsedSeeds: [UInt64]? {
        let values = seeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        let data = try AnomalyDataset.load(dataset)
        let network = try scorer.loadBackbone()
        let options = scorer.scorerOptions
        let log: (String) -> Void = { line in if !json { print(line) } else { printError(line) } }
        log("evaluating \(network.architecture) on \(data.root) (\(data.layout) layout), \(shots.map(String.init) ?? "all") shots, seeds \(seeds)")
        let results = try AnomalyEvaluation.run(
            dataset: data, backbone: network.frozen(), normalization: network.inputNormalization, options: options,
            shots: shots, seeds: parsedSeeds!, regionOfInterest: scorer.roi.flatMap(RegionOfInterest.init), progress: log)
        let summary: [String: Spread] = [
            "image_auroc": Spread(results.map(\.imageAUROC)), "pixel_auroc": Spread(results.map(\.pixelAUROC)),
            "aupro": Spread(results.map(\.aupro)), "f1_max": Spread(results.map(\.f1Max)),
        ]
        if json {
            struct Report: Codable {
                var dataset: String, backbone: String, shots: Int?, options: AnomalyScorerOptions
                var runs: [AnomalyRunResult], summary: [String: Spread]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            let report = Report(dataset: data.root, backbone: network.architecture, shots: shots, options: options, runs: results, summary: summary)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            for key in ["image_auroc", "pixel_auroc", "aupro", "f1_max"] {
                let s = summary[key]!
                print(String(format: "%@: %.3f ± %.3f", key, s.mean, s.std))
            }
            let r = results
            print(String(format: "per image: features %.1f ms, scoring %.1f ms; training %.1f s (mean over seeds)",
                         r.map(\.featureMilliseconds).reduce(0, +) / Double(r.count), r.map(\.scoringMilliseconds).reduce(0, +) / Double(r.count),
                         r.map(\.trainSeconds).reduce(0, +) / Double(r.count)))
        }
    }
}

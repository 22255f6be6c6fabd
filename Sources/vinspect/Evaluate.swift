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

/// Options that choose and shape the anomaly scorer, shared by `train` and `evaluate`.
struct ScorerOptions: ParsableArguments {
    @OptionGroup var backboneOptions: BackboneOptions

    var backbone: String { backboneOptions.backbone }

    @Option(help: ArgumentHelp(
        "What the scorer learns from the good patches: bank (memory bank, nearest good patch anywhere) or gaussian (one Gaussian per position, Mahalanobis distance).",
        discussion: "gaussian suits well-aligned parts and many good images; bank suits parts that move or turn and few images. Without this and the other scorer-shaping options (--layers, --aggregation, --augment, --top-fraction, --gaussian-channels) the engine chooses the settings from the good images (see README)."))
    var mode: ScoringMode?

    @Option(help: "Gaussian mode: feature channels kept, drawn at random with the seed (0 = all).")
    var gaussianChannels: Int?

    @Option(help: "Image score: mean of this fraction of the map's largest values (0 = the maximum).")
    var topFraction: Double?

    @Option(help: "Side of the square images are resized to (default: chosen by the engine, 224 or 320).")
    var imageSize: Int?

    @Option(help: "Feature maps used, by stride index (0: stride 4, 1: stride 8, 2: stride 16), comma-separated.")
    var layers: CommaSeparated<Int>?

    @Option(help: "Neighbourhood each patch feature is averaged over (1 = none).")
    var aggregation: Int?

    @Option(help: "Variants of the good images in the bank: \(BankAugmentation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var augment: BankAugmentation?

    @Option(help: "Fraction of patches kept by the greedy coreset.")
    var coresetFraction: Double = 0.1

    @Option(help: "Upper bound on the memory-bank size.")
    var maxBank: Int = 16_384

    @Option(help: "Standard deviation of the map smoothing, in pixels of the resized image.")
    var sigma: Float = 4

    @Option(help: "Inspect only this rectangle of each image: x,y,width,height in pixels.")
    var roi: String?

    func validate() throws {
        if let imageSize, imageSize < 32 || imageSize > 2048 { throw ValidationError("--image-size must be between 32 and 2048") }
        if let layers, layers.values.isEmpty || !layers.values.allSatisfy((0...2).contains) {
            throw ValidationError("--layers takes stride indices 0, 1, 2, e.g. 1,2 (got \(layers))")
        }
        if let aggregation, aggregation < 1 || aggregation % 2 == 0 { throw ValidationError("--aggregation must be an odd number >= 1") }
        if !(coresetFraction > 0 && coresetFraction <= 1) { throw ValidationError("--coreset-fraction must be in (0, 1]") }
        if maxBank < 1 { throw ValidationError("--max-bank must be positive") }
        if let gaussianChannels, gaussianChannels < 0 { throw ValidationError("--gaussian-channels must be 0 (all) or positive") }
        if let topFraction, !(topFraction >= 0 && topFraction < 1) { throw ValidationError("--top-fraction must be in [0, 1)") }
        if let roi, RegionOfInterest(roi) == nil { throw ValidationError("--roi takes x,y,width,height with width and height positive") }
    }

    var parsedLayers: [Int]? { layers?.values }

    /// Whether an option that shapes one scorer was given: then the model is that one
    /// scorer, not the engine's own choice.
    var shapesOneScorer: Bool {
        mode != nil || gaussianChannels != nil || topFraction != nil || layers != nil || aggregation != nil || augment != nil
            || imageSize != nil
    }

    /// Training options with these scorer options: the engine's automatic choice unless an
    /// option that shapes one scorer was given (the bank limits and the smoothing apply
    /// either way).
    func apply(to options: inout TrainingOptions, seed: UInt64) {
        var o = AnomalyScorerOptions()
        if let mode { o.mode = mode }
        if let imageSize { o.imageSize = imageSize }
        if let parsedLayers { o.features.layers = parsedLayers }
        if let aggregation { o.features.aggregation = aggregation }
        if let augment { o.augmentation = augment }
        if let gaussianChannels { o.gaussianChannels = gaussianChannels }
        if let topFraction { o.topFraction = topFraction }
        o.coresetFraction = coresetFraction
        o.maximumBankSize = maxBank
        o.coresetThreshold = maxBank
        o.smoothingSigma = sigma
        o.seed = seed
        options.scorer = o
        options.automaticScorer = !shapesOneScorer
        options.regionOfInterest = roi.flatMap(RegionOfInterest.init)
    }

    /// The backbone named by --backbone.
    func loadBackbone() throws -> any Backbone {
        try backboneOptions.load()
    }
}

extension BankAugmentation: ExpressibleByArgument {}
extension ScoringMode: ExpressibleByArgument {}

/// `vinspect evaluate DATASET_DIR`: measure the anomaly scorer.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the anomaly scorer on a labelled data set (MVTec AD or magnetic-tile layout).",
        discussion: """
            For each data set and seed, draws --shots good training images, trains the scorer
            (default settings: the automatic combination), scores every test image and prints image
            AUROC, pixel AUROC, AUPRO (to 30 % FPR), F1-max, and the verdicts: the balanced accuracy
            of the engine's own threshold next to the best any single threshold reaches on the same
            scores; then the mean and spread over the seeds, and with several data sets a table of
            all. --json prints the same as one JSON document (with every score, for analysis).
            """)

    @Argument(help: "The data set folders (each measured in turn; a table of all at the end).")
    var datasets: [String]

    @Option(help: "Good training images per draw (default: all).")
    var shots: Int?

    @Option(help: "Seeds of the K-shot draws, comma-separated.")
    var seeds = CommaSeparated<UInt64>([0, 1, 2])

    @OptionGroup var scorer: ScorerOptions

    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        if let shots, shots < 1 { throw ValidationError("--shots must be at least 1") }
        if seeds.values.isEmpty { throw ValidationError("--seeds takes comma-separated non-negative integers, e.g. 0,1,2") }
    }


    /// One data set's measurements, as `--json` prints them.
    struct Report: Codable {
        var dataset: String, backbone: String, shots: Int?
        var runs: [AnomalyRunResult], summary: [String: Spread]
        /// Per test image, in the runs' `testScores` order: defective or not.
        var labels: [Bool]
    }

    static let summaryKeys = ["image_auroc", "pixel_auroc", "aupro", "f1_max", "verdict_balanced_accuracy",
                              "best_threshold_balanced_accuracy"]

    func run() throws {
        // Every folder is checked before the first (long) measurement starts.
        let sets = try datasets.map { try AnomalyDataset.load($0) }
        let network = try scorer.loadBackbone()
        let frozen = network.frozen()
        var training = TrainingOptions()
        scorer.apply(to: &training, seed: 0)
        let log: (String) -> Void = { line in if !json { print(line) } else { printError(line) } }
        let described = training.automaticScorer ? "settings chosen by the engine" : "the scorer options given"
        var reports: [Report] = []
        for data in sets {
            log("evaluating \(network.architecture) on \(data.root) (\(data.layout) layout), \(shots.map(String.init) ?? "all") shots, seeds \(seeds), \(described)")
            let results = try AnomalyEvaluation.run(
                dataset: data, backbone: frozen, normalization: network.inputNormalization, options: training,
                shots: shots, seeds: seeds.values, progress: log)
            let summary: [String: Spread] = [
                "image_auroc": Spread(results.map(\.imageAUROC)), "pixel_auroc": Spread(results.map(\.pixelAUROC)),
                "aupro": Spread(results.map(\.aupro)), "f1_max": Spread(results.map(\.f1Max)),
                "verdict_balanced_accuracy": Spread(results.map(\.balancedAccuracy)),
                "best_threshold_balanced_accuracy": Spread(results.map(\.bestBalancedAccuracy)),
            ]
            reports.append(Report(dataset: data.root, backbone: network.architecture, shots: shots, runs: results,
                                  summary: summary, labels: data.test.map(\.isDefect)))
            if !json {
                for key in Evaluate.summaryKeys {
                    let s = summary[key]!
                    print(String(format: "%@: %.3f ± %.3f", key, s.mean, s.std))
                }
                let r = results
                print(String(format: "per image: features %.1f ms, scoring %.1f ms; training %.1f s (mean over seeds)",
                             r.map(\.featureMilliseconds).reduce(0, +) / Double(r.count), r.map(\.scoringMilliseconds).reduce(0, +) / Double(r.count),
                             r.map(\.trainSeconds).reduce(0, +) / Double(r.count)))
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            // One data set: its report, as before; several: {"datasets": [...]}.
            let data = reports.count == 1 ? try encoder.encode(reports[0]) : try encoder.encode(["datasets": reports])
            print(String(decoding: data, as: UTF8.self))
        } else if reports.count > 1 {
            print("\n" + Evaluate.table(reports))
        }
    }

    /// The summary table of several data sets: mean ± standard deviation over the seeds.
    static func table(_ reports: [Report]) -> String {
        func cell(_ s: Spread?) -> String { s.map { $0.mean.isNaN ? "-" : String(format: "%.3f ± %.3f", $0.mean, $0.std) } ?? "-" }
        var lines = ["| data | shots | image AUROC | verdicts (balanced accuracy) | best single threshold | pixel AUROC | good passed / defects flagged |",
                     "|---|---|---|---|---|---|---|"]
        for r in reports {
            let name = r.dataset.split(separator: "/").last.map(String.init) ?? r.dataset
            lines.append("| \(name) | \(r.shots.map(String.init) ?? "all") | \(cell(r.summary["image_auroc"])) | "
                         + "\(cell(r.summary["verdict_balanced_accuracy"])) | \(cell(r.summary["best_threshold_balanced_accuracy"])) | "
                         + "\(cell(r.summary["pixel_auroc"])) | "
                         + String(format: "%.2f / %.2f |", Spread(r.runs.map(\.goodAccepted)).mean, Spread(r.runs.map(\.defectsRejected)).mean))
        }
        return lines.joined(separator: "\n")
    }
}

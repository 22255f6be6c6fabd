// Measuring the anomaly scorer on a labelled data set: K-shot draws over several seeds,
// image AUROC, pixel AUROC, AUPRO and F1-max, and the time each stage took.
import Anomaly
import ImageIO
import NeuralNet
import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// The result of one seed's draw.
public struct AnomalyRunResult: Sendable, Codable {
    public var seed: UInt64
    public var shots: Int
    public var imageAUROC: Double
    public var pixelAUROC: Double
    public var aupro: Double
    public var f1Max: Double
    /// The calibrated threshold's accuracy on the test set: share of good images accepted
    /// and of defect images rejected.
    public var goodAccepted: Double
    public var defectsRejected: Double
    /// Memory-bank rows (0 in Gaussian mode).
    public var bankSize: Int
    public var trainSeconds: Double
    /// Milliseconds per test image for the backbone features and for the bank search (or
    /// Mahalanobis distances) plus map.
    public var featureMilliseconds: Double
    public var scoringMilliseconds: Double
}

/// Mean and sample standard deviation.
public struct Spread: Sendable, Codable {
    public var mean: Double
    public var std: Double

    public init(_ values: [Double]) {
        let clean = values.filter { !$0.isNaN }
        mean = clean.isEmpty ? .nan : clean.reduce(0, +) / Double(clean.count)
        let m = mean
        std = clean.count > 1 ? (clean.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(clean.count - 1)).squareRoot() : 0
    }
}

/// Evaluation of the anomaly scorer on a data set.
public enum AnomalyEvaluation {
    /// Runs one K-shot draw per seed and measures each.
    ///
    /// - Parameters:
    ///   - dataset: the data set.
    ///   - backbone: the feature extractor (frozen) and its input normalisation.
    ///   - options: the scorer's options.
    ///   - shots: good training images per draw (nil: all).
    ///   - seeds: one draw per seed.
    ///   - regionOfInterest: the part of each image (and mask) to inspect.
    ///   - progress: called with a line of text as work completes.
    public static func run(
        dataset: AnomalyDataset, backbone: FrozenBackbone, normalization: (mean: [Float], std: [Float]),
        options: AnomalyScorerOptions, shots: Int?, seeds: [UInt64], regionOfInterest: RegionOfInterest? = nil,
        pool: ThreadPool = .shared,
        progress: (String) -> Void = { _ in }
    ) throws(ImageError) -> [AnomalyRunResult] {
        var preprocessing = Preprocessing(size: options.imageSize, mean: normalization.mean, std: normalization.std)
        preprocessing.regionOfInterest = regionOfInterest
        // The test set is the same for every seed: preprocess it once.
        var testImages: [Tensor] = [], masks: [[Bool]] = [], labels: [Bool] = []
        for item in dataset.test {
            testImages.append(try preprocessing.tensor(contentsOfFile: item.path))
            labels.append(item.isDefect)
            if let mask = item.maskPath {
                masks.append(try preprocessing.mask(contentsOfFile: mask))
            } else {
                masks.append([Bool](repeating: false, count: options.imageSize * options.imageSize))
            }
        }
        progress("\(dataset.test.count) test images (\(labels.filter { $0 }.count) defective), \(dataset.trainGood.count) good training images available")
        var results: [AnomalyRunResult] = []
        for seed in seeds {
            let files = dataset.shots(shots, seed: seed)
            let good = try files.map { (path: String) throws(ImageError) -> Tensor in try preprocessing.tensor(contentsOfFile: path) }
            var scorerOptions = options
            scorerOptions.seed = seed
            let trainStart = seconds()
            let scorer = AnomalyScorer.train(goodImages: good, backbone: backbone, options: scorerOptions, pool: pool)
            let trainSeconds = seconds() - trainStart
            // Time features and scoring separately on the test set, in batches of 8.
            var maps: [[Float]] = [], scores: [Float] = []
            var featureTime = 0.0, scoringTime = 0.0
            var start = 0
            while start < testImages.count {
                let end = min(start + 8, testImages.count)
                let t0 = seconds()
                let grid = extractPatchFeatures(Tensor.stacked(Array(testImages[start..<end])), backbone: backbone,
                                                options: scorerOptions.features, pool: pool)
                let t1 = seconds()
                for map in scorer.maps(of: grid, pool: pool) {
                    maps.append(map.values)
                    scores.append(scorer.imageScore(of: map))
                }
                featureTime += t1 - t0
                scoringTime += seconds() - t1
                start = end
            }
            let hasMasks = masks.contains { $0.contains(true) }
            let threshold = scorer.calibration.threshold
            let result = AnomalyRunResult(
                seed: seed, shots: files.count,
                imageAUROC: AnomalyMetrics.imageAUROC(scores: scores, labels: labels),
                pixelAUROC: hasMasks ? AnomalyMetrics.pixelAUROC(maps: maps, masks: masks) : .nan,
                aupro: hasMasks ? AnomalyMetrics.aupro(maps: maps, masks: masks,
                                                       width: options.imageSize, height: options.imageSize) : .nan,
                f1Max: AnomalyMetrics.f1Max(scores: scores, labels: labels).f1,
                goodAccepted: Double(zip(scores, labels).filter { !$0.1 && $0.0 <= threshold }.count) / Double(max(1, labels.filter { !$0 }.count)),
                defectsRejected: Double(zip(scores, labels).filter { $0.1 && $0.0 > threshold }.count) / Double(max(1, labels.filter { $0 }.count)),
                bankSize: scorer.memory?.bank.count ?? 0, trainSeconds: trainSeconds,
                featureMilliseconds: featureTime * 1000 / Double(testImages.count),
                scoringMilliseconds: scoringTime * 1000 / Double(testImages.count))
            results.append(result)
            progress(String(format: "seed %llu, %d shots: image AUROC %.3f, pixel AUROC %.3f, AUPRO %.3f, F1-max %.3f; bank %d, train %.1f s",
                            seed, files.count, result.imageAUROC, result.pixelAUROC, result.aupro, result.f1Max, result.bankSize,
                            result.trainSeconds))
        }
        return results
    }
}


// Measuring the anomaly scorer on a labelled data set: K-shot draws over several seeds,
// image AUROC, pixel AUROC, AUPRO and F1-max, and the time each stage took.
@_spi(Engine) import VisualInspection
import Anomaly
@_spi(Engine) import ImageIO
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
    /// The balanced accuracy of the engine's own threshold on the test set (mean of
    /// `goodAccepted` and `defectsRejected`), and the best any single threshold reaches on
    /// the same scores.
    public var balancedAccuracy: Double
    public var bestBalancedAccuracy: Double
    /// The engine's raw threshold and the held-out good scores it was calibrated from.
    public var threshold: Float
    public var heldOutGoodScores: [Float]
    /// Every test image's raw score, in the data set's test order (see `AnomalyDataset.test`).
    public var testScores: [Float]
    /// For an ensemble, each member's own raw scores: held-out good `[member][image]` and
    /// test `[member][image]` (empty for a single scorer).
    public var memberHeldOutGoodScores: [[Float]]
    public var memberTestScores: [[Float]]
    /// Memory-bank rows (0 in Gaussian mode).
    public var bankSize: Int
    /// The scorer's option sets this draw used, and how the engine chose them (nil when
    /// they were given).
    public var settings: [AnomalyScorerOptions]
    public var choice: ScorerChoice?
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
    ///   - options: the training options, as `vinspect train` would use them (by default the
    ///     engine chooses the scorer's settings from each draw's good images).
    ///   - shots: good training images per draw (nil: all).
    ///   - seeds: one draw per seed.
    ///   - progress: called with a line of text as work completes.
    public static func run(
        dataset: AnomalyDataset, backbone: FrozenBackbone, normalization: (mean: [Float], std: [Float]),
        options: TrainingOptions, shots: Int?, seeds: [UInt64],
        pool: ThreadPool = .shared,
        progress: (String) -> Void = { _ in }
    ) throws(ImageError) -> [AnomalyRunResult] {
        let labels = dataset.test.map(\.isDefect)
        progress("\(dataset.test.count) test images (\(labels.filter { $0 }.count) defective), \(dataset.trainGood.count) good training images available")
        // The test set at each input size a draw asks for, prepared once: masks and the
        // backbone's feature maps do not depend on the draw.
        struct Prepared { var maps: [[Tensor]], masks: [[Bool]], featureMilliseconds: Double }
        var prepared: [String: Prepared] = [:]
        func prepare(size: Int, aspectRatio: Double) throws(ImageError) -> Prepared {
            let key = "\(size)/\(aspectRatio)"
            if let ready = prepared[key] { return ready }
            var preprocessing = Preprocessing(size: size, aspectRatio: aspectRatio, mean: normalization.mean, std: normalization.std)
            let (width, height) = preprocessing.inputSize
            preprocessing.regionOfInterest = options.regionOfInterest
            var maps: [[Tensor]] = [], masks: [[Bool]] = []
            var batch: [Tensor] = []
            var featureSeconds = 0.0
            for (index, item) in dataset.test.enumerated() {
                batch.append(try preprocessing.tensor(contentsOfFile: item.path))
                masks.append(try item.maskPath.map { (path: String) throws(ImageError) -> [Bool] in try preprocessing.mask(contentsOfFile: path) }
                             ?? [Bool](repeating: false, count: width * height))
                if batch.count == 8 || index == dataset.test.count - 1 {
                    let start = seconds()
                    maps.append(backbone.features(Tensor.stacked(batch), stoppingAfterLastTap: true, pool: pool).maps)
                    featureSeconds += seconds() - start
                    batch = []
                }
            }
            let ready = Prepared(maps: maps, masks: masks, featureMilliseconds: featureSeconds * 1000 / Double(max(1, dataset.test.count)))
            prepared[key] = ready
            return ready
        }
        var results: [AnomalyRunResult] = []
        for seed in seeds {
            let files = dataset.shots(shots, seed: seed)
            let goodImages = try files.map { (path: String) throws(ImageError) -> Image in try Image(contentsOfFile: path) }
            var seeded = options
            seeded.scorer.seed = seed
            seeded.automaticScorer = options.automaticScorer  // (setting `scorer` turned it off)
            seeded.scorers = options.scorers?.map { set in
                var o = set
                o.seed = seed
                return o
            }
            let trainStart = seconds()
            let (sets, choice) = InspectorTrainer.scorerSets(good: goodImages, options: seeded, backbone: backbone,
                                                             normalization: normalization, pool: pool)
            let imageSize = sets[0].imageSize, aspectRatio = sets[0].aspectRatio
            var preprocessing = Preprocessing(size: imageSize, aspectRatio: aspectRatio, mean: normalization.mean, std: normalization.std)
            preprocessing.regionOfInterest = options.regionOfInterest
            let scorer = AnomalyEnsemble.train(goodImages: goodImages.map(preprocessing.tensor), backbone: backbone, options: sets,
                                               scaled: sets.count > 1 || choice != nil,
                                               targetFalseRejectRate: options.targetFalseRejectRate, pool: pool)
            let trainSeconds = seconds() - trainStart
            let test = try prepare(size: imageSize, aspectRatio: aspectRatio)
            let masks = test.masks
            var maps: [[Float]] = [], scores: [Float] = []
            var memberScores = [[Float]](repeating: [], count: scorer.isSingle ? 0 : scorer.members.count)
            let scoringStart = seconds()
            for batch in test.maps {
                let perMember = scorer.members.map { member in
                    member.maps(of: patchFeatures(fromMaps: batch, options: member.options.features, pool: pool), pool: pool)
                }
                for (raw, map) in scorer.combine(memberMaps: perMember) {
                    maps.append(map.values)
                    scores.append(raw)
                }
                if !scorer.isSingle {
                    for (index, member) in scorer.members.enumerated() { memberScores[index] += perMember[index].map(member.imageScore) }
                }
            }
            let scoringTime = seconds() - scoringStart
            let featureMilliseconds = test.featureMilliseconds
            let hasMasks = masks.contains { $0.contains(true) }
            let threshold = scorer.calibration.threshold
            let goodAccepted = Double(zip(scores, labels).filter { !$0.1 && $0.0 < threshold }.count) / Double(max(1, labels.filter { !$0 }.count))
            let defectsRejected = Double(zip(scores, labels).filter { $0.1 && $0.0 >= threshold }.count) / Double(max(1, labels.filter { $0 }.count))
            let result = AnomalyRunResult(
                seed: seed, shots: files.count,
                imageAUROC: AnomalyMetrics.imageAUROC(scores: scores, labels: labels),
                pixelAUROC: hasMasks ? AnomalyMetrics.pixelAUROC(maps: maps, masks: masks) : .nan,
                aupro: hasMasks ? AnomalyMetrics.aupro(maps: maps, masks: masks,
                                                       width: preprocessing.inputSize.width, height: preprocessing.inputSize.height) : .nan,
                f1Max: AnomalyMetrics.f1Max(scores: scores, labels: labels).f1,
                goodAccepted: goodAccepted, defectsRejected: defectsRejected,
                balancedAccuracy: AnomalyMetrics.balancedAccuracy(scores: scores, labels: labels, threshold: threshold),
                bestBalancedAccuracy: AnomalyMetrics.bestBalancedAccuracy(scores: scores, labels: labels).accuracy,
                threshold: threshold, heldOutGoodScores: scorer.calibration.goodScores, testScores: scores,
                memberHeldOutGoodScores: scorer.isSingle ? [] : scorer.members.map(\.calibration.goodScores),
                memberTestScores: memberScores,
                bankSize: scorer.members.reduce(0) { $0 + ($1.memory?.bank.count ?? 0) },
                settings: sets, choice: choice, trainSeconds: trainSeconds,
                featureMilliseconds: featureMilliseconds,
                scoringMilliseconds: scoringTime * 1000 / Double(max(1, scores.count)))
            results.append(result)
            if let choice {
                progress("seed \(seed): parts \(choice.family.rawValue)" + (choice.rotationRatio.map { String(format: " (rotation ratio %.3f)", $0) } ?? ""))
            }
            progress(String(format: "seed %llu, %d shots: image AUROC %.3f, pixel AUROC %.3f, AUPRO %.3f, F1-max %.3f; verdicts %.3f (good passed %.2f, defects flagged %.2f; best threshold %.3f); bank %d, train %.1f s",
                            seed, files.count, result.imageAUROC, result.pixelAUROC, result.aupro, result.f1Max,
                            result.balancedAccuracy, result.goodAccepted, result.defectsRejected, result.bestBalancedAccuracy,
                            result.bankSize, result.trainSeconds))
        }
        return results
    }
}


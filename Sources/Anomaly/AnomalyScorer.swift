// The anomaly scorer: training from good images, calibration of the decision threshold,
// and scoring of new images into a raw score, a normalised score and an anomaly map.
import NeuralNet
import TensorCore

/// How the decision threshold was set, and the numbers behind it.
public struct Calibration: Sendable, Equatable, Codable {
    /// How the threshold was found.
    public enum Method: String, Sendable, Codable {
        /// Held-out scores of good images (leave-one-fold-out), then a target false-reject rate.
        case heldOutGood = "held-out-good"
        /// Jittered views of a single good image (too few images to hold any out).
        case jitteredViews = "jittered-views"
        /// The F1-optimal threshold between held-out good scores and defect scores (models
        /// built before 0.2; no longer chosen: one or two defect examples could pull it into
        /// the good scores).
        case f1WithDefects = "f1-with-defects"
        /// The good-only threshold moved toward the defect examples, never into the
        /// held-out good scores (``ThresholdRule/sharpened(_:defectScores:)``).
        case goodAndDefects = "good-and-defects"
    }
    /// How the threshold was found.
    public var method: Method
    /// The raw score at which the normalised score is 0.5: above it, a defect.
    public var threshold: Float
    /// The held-out good scores the threshold was computed from.
    public var goodScores: [Float]
    /// Defect scores, when defect images were given.
    public var defectScores: [Float]
    /// The false-reject rate aimed at (for the good-only methods).
    public var targetFalseRejectRate: Double
    /// For scores on a normalised scale (an ensemble's, which may be negative): the spread
    /// of the held-out good scores, and ``normalized(_:)`` is the logistic of
    /// `(raw - threshold) / scale`. Nil for a single scorer's raw distances, which are
    /// normalised as `raw / (raw + threshold)`.
    public var scale: Float?

    public init(method: Method, threshold: Float, goodScores: [Float], defectScores: [Float], targetFalseRejectRate: Double) {
        self.method = method; self.threshold = threshold; self.goodScores = goodScores
        self.defectScores = defectScores; self.targetFalseRejectRate = targetFalseRejectRate
    }

    /// Maps a raw score to [0, 1): `raw / (raw + threshold)` (with ``scale``: the logistic
    /// of `(raw - threshold) / scale`), monotone, 0.5 at the threshold.
    public func normalized(_ raw: Float) -> Float {
        if let scale {
            return 1 / (1 + _exp(-Double((raw - threshold) / Swift.max(scale, 1e-12)))).float
        }
        guard threshold > 0 else { return raw > 0 ? 1 : 0 }
        let r = Swift.max(raw, 0)
        return r / (r + threshold)
    }

    /// Whether some defect example scored at or below the highest held-out good score: the
    /// examples overlap the good parts, and no threshold separates them.
    public var defectsOverlapGood: Bool {
        guard let lowest = defectScores.min(), let highest = goodScores.max() else { return false }
        return lowest <= highest
    }

    /// A raw value relative to the threshold, 1 at the threshold, for colour scales: `raw /
    /// threshold` for raw distances; with ``scale``, `1 + 0.2 * (raw - threshold) / scale`
    /// (so that 0.6 and 1.4 lie two good-part spreads below and above the threshold).
    public func relative(_ raw: Float) -> Float {
        if let scale { return 1 + 0.2 * (raw - threshold) / Swift.max(scale, 1e-12) }
        guard threshold > 0 else { return raw > 0 ? 2 : 0 }
        return Swift.max(raw, 0) / threshold
    }
}

extension Double {
    fileprivate var float: Float { Float(self) }
}

/// The z-value of the standard normal distribution at upper-tail probability `p`
/// (Acklam's rational approximation; relative error below 1.2e-9).
func normalQuantile(upperTail p: Double) -> Double {
    let q = 1 - Swift.min(Swift.max(p, 1e-12), 1 - 1e-12)
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
             -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
             -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
             4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    if q < low {
        let t = (-2 * _log(q)).squareRoot()
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
    }
    if q > 1 - low {
        let t = (-2 * _log(1 - q)).squareRoot()
        return -(((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
    }
    let t = q - 0.5, r = t * t
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
}

/// The threshold for a target false-reject rate from good scores: a normal fit
/// `mean + z * std`, never below the largest good score times `1 + margin` when there are
/// too few scores to trust the tail (fewer than 20).
func goodOnlyThreshold(_ scores: [Float], falseRejectRate: Double) -> Float {
    guard !scores.isEmpty else { return 0 }
    let n = Double(scores.count)
    let mean = scores.reduce(0.0) { $0 + Double($1) } / n
    let variance = scores.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Swift.max(n - 1, 1)
    let z = normalQuantile(upperTail: falseRejectRate)
    var threshold = mean + z * variance.squareRoot()
    if scores.count < 20 { threshold = Swift.max(threshold, Double(scores.max()!) * 1.05) }
    return Float(threshold)
}

/// What the scorer learnt from the good images' patch features.
public enum NormalityModel: Sendable {
    /// A memory bank of good patches (``ScoringMode/memoryBank``).
    case memoryBank(PatchMemory)
    /// One Gaussian per grid position (``ScoringMode/positionGaussian``).
    case positionGaussian(GaussianMemory)
}

/// An anomaly scorer trained from good images: a frozen backbone, what normal patches look
/// like (a memory bank or per-position Gaussians), and the calibrated threshold. Sendable
/// and safe to call from many threads at once.
public struct AnomalyScorer: Sendable {
    /// The frozen feature extractor.
    public let backbone: FrozenBackbone
    /// How patch features, the bank and the map are made.
    public let options: AnomalyScorerOptions
    /// The trained part: memory bank or per-position Gaussians.
    public let normality: NormalityModel
    /// The decision threshold and the scores it came from.
    public var calibration: Calibration

    /// A scorer around a trained memory bank (``ScoringMode/memoryBank``).
    public init(backbone: FrozenBackbone, options: AnomalyScorerOptions, memory: PatchMemory, calibration: Calibration) {
        self.init(backbone: backbone, options: options, normality: .memoryBank(memory), calibration: calibration)
    }

    /// A scorer around either trained part.
    public init(backbone: FrozenBackbone, options: AnomalyScorerOptions, normality: NormalityModel, calibration: Calibration) {
        self.backbone = backbone; self.options = options; self.normality = normality; self.calibration = calibration
    }

    /// The memory bank, in memory-bank mode.
    public var memory: PatchMemory? {
        if case .memoryBank(let memory) = normality { return memory }
        return nil
    }

    /// The per-position Gaussians, in Gaussian mode.
    public var gaussian: GaussianMemory? {
        if case .positionGaussian(let gaussian) = normality { return gaussian }
        return nil
    }

    /// Patch grids of all bank variants of the images, in batches.
    static func grids(_ images: [Tensor], backbone: FrozenBackbone, options: AnomalyScorerOptions, variants: Bool,
                      pool: ThreadPool?) -> [PatchGrid] {
        var views: [Tensor] = []
        for image in images { views += variants ? options.augmentation.variants(of: image) : [image] }
        var grids: [PatchGrid] = []
        var start = 0
        while start < views.count {
            // A batch holds views of one shape: a quarter turn of an oblong input is upright.
            var end = start + 1
            while end < Swift.min(start + 8, views.count), views[end].shape == views[start].shape { end += 1 }
            let batch = Tensor.stacked(Array(views[start..<end]))
            grids.append(extractPatchFeatures(batch, backbone: backbone, options: options.features, pool: pool))
            start = end
        }
        return grids
    }

    /// Trains the scorer from good images.
    ///
    /// - Parameters:
    ///   - goodImages: normalised `[S, S, 3]` tensors, `S = options.imageSize`.
    ///   - defectImages: optional defect examples that sharpen the threshold.
    ///   - backbone: the frozen feature extractor.
    ///   - targetFalseRejectRate: the share of good parts the threshold may reject.
    public static func train(
        goodImages: [Tensor], defectImages: [Tensor] = [], backbone: FrozenBackbone, options: AnomalyScorerOptions,
        targetFalseRejectRate: Double = 0.01, pool: ThreadPool? = .shared
    ) -> AnomalyScorer {
        precondition(!goodImages.isEmpty, "AnomalyScorer.train: no good images")
        // One grid per image variant; the owner of each variant (grid image) is its source image.
        var grids: [PatchGrid] = [], owners: [Int] = []
        for (index, image) in goodImages.enumerated() {
            let imageGrids = AnomalyScorer.grids([image], backbone: backbone, options: options, variants: true, pool: pool)
            grids += imageGrids
            owners += Array(repeating: index, count: imageGrids.reduce(0) { $0 + $1.features.shape[0] })
        }
        var scorer: AnomalyScorer
        // Held-out good scores: each fold of images scored by a scorer that never saw it.
        // (Made one at a time when scored, so that only one fold's model is in memory.)
        var foldScorers: [(held: [Int], make: () -> AnomalyScorer)] = []
        let uncalibrated = Calibration(method: .heldOutGood, threshold: 0, goodScores: [], defectScores: [],
                                       targetFalseRejectRate: targetFalseRejectRate)
        let folds = goodImages.count >= 2 ? Swift.min(goodImages.count, 5) : 0
        switch options.mode {
        case .memoryBank:
            let (memory, rowOwners) = PatchMemory.buildWithOwners(from: grids, owners: owners, options: options, pool: pool)
            scorer = AnomalyScorer(backbone: backbone, options: options, memory: memory, calibration: uncalibrated)
            // The coreset was chosen once, with every image present; removing a fold's rows
            // afterwards is what makes calibration cheap, at the price of a bank slightly
            // thinner than one built without the fold.
            for fold in 0..<folds {
                let held = goodImages.indices.filter { $0 % folds == fold }
                foldScorers.append((held, {
                    AnomalyScorer(backbone: backbone, options: options, memory: memory.excluding(owners: rowOwners, Set(held)),
                                  calibration: uncalibrated)
                }))
            }
        case .positionGaussian:
            let d = grids[0].dimension
            let channels = GaussianMemory.channelSubset(count: options.gaussianChannels, of: d, seed: options.seed)
            // Per-position statistics need one grid shape: quarter turns of an oblong input
            // (the other shape) are left out.
            var samples: [Tensor] = [], sampleOwners: [Int] = [], row = 0
            for grid in grids {
                for image in 0..<grid.features.shape[0] {
                    if grid.width == grids[0].width && grid.height == grids[0].height {
                        samples.append(GaussianMemory.selectedRows(grid, image: image, channels: channels))
                        sampleOwners.append(owners[row])
                    }
                    row += 1
                }
            }
            func fitted(_ keep: [Int]) -> AnomalyScorer {
                let memory = GaussianMemory.fit(samples: keep.map { samples[$0] }, channels: channels, featureDimension: d,
                                                gridWidth: grids[0].width, gridHeight: grids[0].height, options: options, pool: pool)
                return AnomalyScorer(backbone: backbone, options: options, normality: .positionGaussian(memory),
                                     calibration: uncalibrated)
            }
            scorer = fitted(Array(samples.indices))
            // Refit without the fold: the Gaussians are cheap to fit (no coreset), and a
            // held-out image then meets exactly the statistics a new part would.
            for fold in 0..<folds {
                let held = goodImages.indices.filter { $0 % folds == fold }
                let heldSet = Set(held)
                foldScorers.append((held, { fitted(samples.indices.filter { !heldSet.contains(sampleOwners[$0]) }) }))
            }
        }
        var goodScores: [Float] = []
        let method: Calibration.Method
        if !foldScorers.isEmpty {
            method = .heldOutGood
            for (held, make) in foldScorers {
                goodScores += make().score(held.map { goodImages[$0] }, pool: pool).map(\.raw)
            }
        } else {
            method = .jitteredViews
            var generator = Xoshiro256(seed: options.seed &+ 17)
            var jitter = Augmentation()
            jitter.horizontalFlip = false
            jitter.maxRotationDegrees = 4; jitter.maxTranslation = 0.02; jitter.maxBrightness = 0.05; jitter.maxContrast = 0.05
            let views = (0..<8).map { _ in jitter(goodImages[0], using: &generator) }
            goodScores = scorer.score(views, pool: pool).map(\.raw)
        }
        var calibration = Calibration(method: method, threshold: goodOnlyThreshold(goodScores, falseRejectRate: targetFalseRejectRate),
                                      goodScores: goodScores, defectScores: [], targetFalseRejectRate: targetFalseRejectRate)
        if !defectImages.isEmpty {
            calibration = ThresholdRule.standard.sharpened(calibration, defectScores: scorer.score(defectImages, pool: pool).map(\.raw))
        }
        scorer.calibration = calibration
        return scorer
    }

    /// Raw scores and maps of normalised `[S, S, 3]` images.
    public func score(_ images: [Tensor], pool: ThreadPool? = .shared) -> [(raw: Float, map: AnomalyMap)] {
        AnomalyScorer.grids(images, backbone: backbone, options: options, variants: false, pool: pool)
            .flatMap { maps(of: $0, pool: pool) }.map { (imageScore(of: $0), $0) }
    }

    /// The anomaly maps (at `imageSize`) of images whose patch features are already
    /// extracted: bank search (or Mahalanobis distances), upsampling and smoothing.
    public func maps(of grid: PatchGrid, pool: ThreadPool? = .shared) -> [AnomalyMap] {
        let distances: [[Float]]
        switch normality {
        case .memoryBank(let memory): distances = memory.patchDistances(grid, pool: pool)
        case .positionGaussian(let gaussian): distances = gaussian.patchDistances(grid, pool: pool)
        }
        let size = options.inputSize
        return distances.map { values in
            AnomalyMap.fromGrid(values, gridWidth: grid.width, gridHeight: grid.height,
                                width: size.width, height: size.height, sigma: options.smoothingSigma)
        }
    }

    /// The raw image score of a map: its maximum, or the mean of its largest
    /// `options.topFraction` of values.
    public func imageScore(of map: AnomalyMap) -> Float {
        map.topMean(fraction: options.topFraction)
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _exp(_ x: Double) -> Double { Glibc.exp(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _exp(_ x: Double) -> Double { Darwin.exp(x) }
#endif

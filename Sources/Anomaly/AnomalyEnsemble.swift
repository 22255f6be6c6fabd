// Several scorers over one backbone pass, their scores put on one scale and combined: the
// engine's answer to "which settings suit this part?" when nobody tunes. Each member's raw
// score is normalised by the held-out scores of the good images (how far above a good part
// it lies, in units of the good parts' spread); the mean of those is the combined score,
// and the threshold is calibrated on the combined held-out scores.
import NeuralNet
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Puts one scorer's raw scores on the scale of the good parts: `(raw - mean) / spread`,
/// from the held-out scores of the good training images.
public struct ScoreNormalizer: Sendable, Equatable, Codable {
    /// The held-out good scores' mean.
    public var mean: Float
    /// Their spread (standard deviation, never below `minimumRelativeSpread * |mean|`, so
    /// that two nearly equal held-out scores do not blow a member up).
    public var spread: Float

    /// The identity: a single scorer's raw score unchanged.
    public static let identity = ScoreNormalizer(mean: 0, spread: 1)

    /// The smallest spread, relative to the mean, that a normaliser uses.
    public static let minimumRelativeSpread: Float = 0.05

    public init(mean: Float, spread: Float) {
        self.mean = mean
        self.spread = spread
    }

    /// The normaliser of a member from its held-out good scores.
    public init(goodScores: [Float]) {
        precondition(!goodScores.isEmpty, "ScoreNormalizer: no good scores")
        let (m, s) = meanAndDeviation(goodScores)
        mean = Float(m)
        spread = Swift.max(Float(s), ScoreNormalizer.minimumRelativeSpread * Swift.abs(Float(m)), 1e-12)
    }

    /// A raw score on the good parts' scale.
    @inline(__always) public func callAsFunction(_ raw: Float) -> Float { (raw - mean) / spread }
}

/// Mean and sample standard deviation (0 for one value).
func meanAndDeviation(_ values: [Float]) -> (Double, Double) {
    let n = Double(values.count)
    let mean = values.reduce(0.0) { $0 + Double($1) } / n
    let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Swift.max(n - 1, 1)
    return (mean, variance.squareRoot())
}

/// Several anomaly scorers over the same backbone and input size, combined: each member's
/// raw score (and map) normalised by its ``ScoreNormalizer``, then averaged. One member
/// with the identity normaliser is exactly that scorer.
///
/// Sendable and safe to call from many threads at once.
public struct AnomalyEnsemble: Sendable {
    /// The members, all at the same input size.
    public let members: [AnomalyScorer]
    /// One normaliser per member.
    public let normalizers: [ScoreNormalizer]
    /// The threshold on the combined score, and the combined held-out scores it came from.
    public var calibration: Calibration
    /// How the engine chose the members (nil when they were given).
    public var choice: ScorerChoice?

    /// An ensemble of trained members (for a single member, pass it with
    /// ``ScoreNormalizer/identity`` and its own calibration).
    public init(members: [AnomalyScorer], normalizers: [ScoreNormalizer], calibration: Calibration, choice: ScorerChoice? = nil) {
        precondition(!members.isEmpty && members.count == normalizers.count,
                     "AnomalyEnsemble: \(members.count) members and \(normalizers.count) normalisers")
        precondition(Set(members.map { "\($0.options.imageSize)/\($0.options.aspectRatio)" }).count == 1,
                     "AnomalyEnsemble: members at input sizes \(members.map(\.options.inputSize))")
        self.members = members
        self.normalizers = normalizers
        self.calibration = calibration
        self.choice = choice
    }

    /// A single scorer as an ensemble of one: its raw scores, maps and threshold unchanged.
    public init(_ scorer: AnomalyScorer) {
        self.init(members: [scorer], normalizers: [.identity], calibration: scorer.calibration)
    }

    /// The input size every member uses (the short side when the input is oblong).
    public var imageSize: Int { members[0].options.imageSize }
    /// The input's width and height, the same for every member.
    public var inputSize: (width: Int, height: Int) { members[0].options.inputSize }

    /// Whether this is one scorer with its own raw scale.
    public var isSingle: Bool { members.count == 1 && normalizers[0] == .identity }

    /// Trains every member on the same good images, normalises each by its held-out good
    /// scores and calibrates the threshold of the combined score.
    ///
    /// - Parameters:
    ///   - goodImages: normalised `[H, W, 3]` tensors at the members' common ``inputSize``.
    ///   - defectImages: optional defect examples; they may lower the threshold toward
    ///     themselves, never into the good scores (see ``ThresholdRule``).
    ///   - options: one option set per member.
    ///   - scaled: whether the scores are put on the good parts' scale and the threshold set
    ///     by `rule` (always so for several members). A single unscaled set is one scorer on
    ///     its raw scale, calibrated as
    ///     ``AnomalyScorer/train(goodImages:defectImages:backbone:options:targetFalseRejectRate:pool:)``
    ///     (at `targetFalseRejectRate`).
    ///   - rule: how the combined threshold follows from the held-out scores.
    public static func train(
        goodImages: [Tensor], defectImages: [Tensor] = [], backbone: FrozenBackbone, options: [AnomalyScorerOptions],
        scaled: Bool = true, targetFalseRejectRate: Double = 0.01, rule: ThresholdRule = .standard, pool: ThreadPool? = .shared
    ) -> AnomalyEnsemble {
        precondition(!options.isEmpty, "AnomalyEnsemble.train: no option sets")
        if options.count == 1 && !scaled {
            return AnomalyEnsemble(AnomalyScorer.train(goodImages: goodImages, defectImages: defectImages, backbone: backbone,
                                                       options: options[0], targetFalseRejectRate: targetFalseRejectRate,
                                                       pool: pool))
        }
        let members = options.map {
            AnomalyScorer.train(goodImages: goodImages, backbone: backbone, options: $0,
                                targetFalseRejectRate: targetFalseRejectRate, pool: pool)
        }
        let normalizers = members.map { ScoreNormalizer(goodScores: $0.calibration.goodScores) }
        // Every member's held-out scores come in the same order (the same folds of the same
        // images, or the same jittered views), so they combine image by image.
        let count = members[0].calibration.goodScores.count
        let combinedGood = (0..<count).map { i in
            zip(members, normalizers).reduce(Float(0)) { $0 + $1.1($1.0.calibration.goodScores[i]) } / Float(members.count)
        }
        var ensemble = AnomalyEnsemble(members: members, normalizers: normalizers,
                                       calibration: rule.calibration(goodScores: combinedGood,
                                                                     method: members[0].calibration.method,
                                                                     targetFalseRejectRate: targetFalseRejectRate))
        if !defectImages.isEmpty {
            let defectScores = ensemble.score(defectImages, pool: pool).map(\.raw)
            ensemble.calibration = rule.sharpened(ensemble.calibration, defectScores: defectScores)
        }
        return ensemble
    }

    /// The combined raw scores and maps of normalised `[S, S, 3]` images.
    public func score(_ images: [Tensor], pool: ThreadPool? = .shared) -> [(raw: Float, map: AnomalyMap)] {
        var results: [(raw: Float, map: AnomalyMap)] = []
        var start = 0
        while start < images.count {
            let end = Swift.min(start + 8, images.count)
            let maps = members[0].backbone.features(Tensor.stacked(Array(images[start..<end])), stoppingAfterLastTap: true,
                                                    pool: pool).maps
            results += combine(featureMaps: maps, pool: pool)
            start = end
        }
        return results
    }

    /// The combined raw scores and maps of a batch whose backbone feature maps (strides 4,
    /// 8, 16, each `[N, H/s, W/s, C]`) are already computed: each member takes its own patch
    /// features from the same maps.
    public func combine(featureMaps: [Tensor], pool: ThreadPool? = .shared) -> [(raw: Float, map: AnomalyMap)] {
        let perMember = members.map { member in
            member.maps(of: patchFeatures(fromMaps: featureMaps, options: member.options.features, pool: pool), pool: pool)
        }
        return combine(memberMaps: perMember)
    }

    /// The combination of the members' maps `[member][image]`: per image, the mean of the
    /// members' normalised image scores, and the mean of their normalised maps.
    public func combine(memberMaps: [[AnomalyMap]]) -> [(raw: Float, map: AnomalyMap)] {
        precondition(memberMaps.count == members.count, "AnomalyEnsemble.combine: maps of \(memberMaps.count) members for \(members.count)")
        let images = memberMaps[0].count
        return (0..<images).map { image in
            if isSingle {
                let map = memberMaps[0][image]
                return (members[0].imageScore(of: map), map)
            }
            var raw: Float = 0
            let first = memberMaps[0][image]
            var values = [Float](repeating: 0, count: first.values.count)
            let weight = 1 / Float(members.count)
            for (index, member) in members.enumerated() {
                let map = memberMaps[index][image]
                let normalizer = normalizers[index]
                raw += normalizer(member.imageScore(of: map)) * weight
                // (v - mean) / spread, averaged: a multiply-add per value.
                let a = weight / normalizer.spread, b = -normalizer.mean * a
                map.values.withUnsafeBufferPointer { source in
                    for i in values.indices { values[i] = values[i].addingProduct(source[i], a) + b }
                }
            }
            return (raw, AnomalyMap(width: first.width, height: first.height, values: values))
        }
    }
}

/// How a threshold follows from held-out good scores (and defect examples, when given) on
/// a normalised scale.
///
/// The threshold is `mean + k * spread` of the held-out good scores; `k` was chosen on the
/// development data sets (see README, "Choosing the defaults"). Defect examples can lower
/// it toward the lowest defect score, never below the largest held-out good score plus
/// `goodMargin` spreads: one or two defect images that score like good parts would
/// otherwise make good parts defects.
public struct ThresholdRule: Sendable, Equatable, Codable {
    /// Spreads above the held-out good mean.
    public var spreads: Float
    /// With defect examples: the threshold stays at least this many spreads above the
    /// largest held-out good score.
    public var goodMargin: Float

    public init(spreads: Float, goodMargin: Float) {
        self.spreads = spreads
        self.goodMargin = goodMargin
    }

    /// The rule the engine uses by default: 0.5 spreads, the value whose largest gap to the
    /// best single threshold over the three development sets was smallest at 4 and at 8
    /// shots (README, "Choosing the defaults"). It is low because a few held-out scores
    /// underestimate how far good parts spread, and because on those sets defects overlap
    /// the good parts: the balanced accuracy is best with a threshold that rejects some.
    public static let standard = ThresholdRule(spreads: 0.5, goodMargin: 0.25)

    /// The calibration of combined held-out good scores: threshold `mean + k * spread`, and
    /// a logistic score scale of one spread.
    func calibration(goodScores: [Float], method: Calibration.Method, targetFalseRejectRate: Double) -> Calibration {
        let (m, s) = meanAndDeviation(goodScores)
        let spread = Swift.max(Float(s), 1e-6)
        var calibration = Calibration(method: method, threshold: Float(m) + spreads * spread, goodScores: goodScores,
                                      defectScores: [], targetFalseRejectRate: targetFalseRejectRate)
        calibration.scale = spread
        return calibration
    }

    /// The calibration moved toward defect examples: halfway between the largest held-out
    /// good score and the lowest defect score when that is below the good-only threshold,
    /// but never below the largest good score plus `goodMargin` spreads (nor above the
    /// good-only threshold).
    func sharpened(_ calibration: Calibration, defectScores: [Float]) -> Calibration {
        var result = calibration
        result.defectScores = defectScores
        guard let lowestDefect = defectScores.min(), let highestGood = calibration.goodScores.max() else { return result }
        // A single scorer's raw scores have no scale of their own: their spread is that of
        // the held-out good scores (as its normaliser would have it).
        let spread = calibration.scale ?? ScoreNormalizer(goodScores: calibration.goodScores).spread
        // Never above the good-only threshold, never below the good scores' top (unless the
        // good-only threshold itself lies there).
        let floor = Swift.min(calibration.threshold, highestGood + goodMargin * spread)
        if lowestDefect < calibration.threshold {
            result.threshold = Swift.max(floor, (highestGood + lowestDefect) / 2)
            result.method = .goodAndDefects
        }
        return result
    }
}

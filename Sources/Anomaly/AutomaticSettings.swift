// The scorer settings the engine chooses itself from the good images, when nobody tunes.
//
// What decides the settings on the development data (README, "Choosing the defaults") is
// whether the parts turn: a screw lying at any angle needs a bank of patches with rotated
// copies of the good images, at enough resolution for its small defects; a solar cell or a
// magnetic tile that always fills the image the same way is best described per position
// (a Gaussian per grid cell). The good images tell which it is: rotated copies of the other
// good images bring a held-out good image much closer to the bank when the parts turn
// (mean held-out distance down by 16-33 % on screws, at most 12 % on the aligned sets).
import NeuralNet
import TensorCore

/// How the engine chose a model's scorer settings, kept in the model and shown by `info`.
public struct ScorerChoice: Sendable, Equatable, Codable {
    /// What the good images showed.
    public enum Family: String, Sendable, Codable {
        /// Parts lie at any angle: the rotated bank.
        case turning
        /// Parts lie the same way: per-position Gaussians.
        case aligned
        /// Too few images to tell: the two settings combined.
        case both
    }
    /// What the good images showed, and so which settings were used.
    public var family: Family
    /// Mean held-out good distance with rotated copies in the bank over the same without
    /// them (nil when it could not be measured, with one good image).
    public var rotationRatio: Double?
    /// The ratio below which the parts count as turning.
    public var ratioThreshold: Double
    /// How many good images the ratio was measured on.
    public var measuredOn: Int

    /// A choice with the facts it was made on.
    public init(family: Family, rotationRatio: Double?, ratioThreshold: Double, measuredOn: Int) {
        self.family = family
        self.rotationRatio = rotationRatio
        self.ratioThreshold = ratioThreshold
        self.measuredOn = measuredOn
    }
}

/// The engine's own choice of scorer settings (see the comment at the top of the file).
public enum AutomaticSettings {
    /// Below this ratio of held-out distances (with / without rotated copies) the parts
    /// count as turning. Set a priori between "a quarter closer" and "at most an eighth";
    /// with EfficientNet-Lite0 the development sets measured 0.67-0.84 (screw) and
    /// 0.88-1.04 (magnetic tile, solar cells), ten draws of four images each.
    public static let turningRatio = 0.85

    /// At most this many good images are used to measure the ratio (the first ones): the
    /// ratio was validated on draws of four (with eight, screws measured up to 0.83, closer
    /// to the line: more images already cover more orientations).
    public static let measuredImages = 4

    /// The input size at which the ratio is measured.
    public static let measuringSize = 224

    /// The settings for parts that lie the same way: one Gaussian per position of the
    /// stride-16 map, the image scored by the mean of its map's top 5 %, 224 px; with up to
    /// 16 good images they are also mirrored (with all of magnetic tile's 476 the mirrors
    /// cost AUROC: 0.918 against 0.970 without).
    public static func aligned(from template: AnomalyScorerOptions, goodImageCount n: Int) -> AnomalyScorerOptions {
        var o = template
        o.mode = .positionGaussian
        o.imageSize = 224
        o.features = PatchFeatureOptions(layers: [2], aggregation: 3)
        o.augmentation = n <= 16 ? .mirrors : .none
        o.topFraction = 0.05
        return o
    }

    /// The settings for parts that turn: a memory bank of stride-8 and stride-16 patches
    /// without neighbourhood averaging, at 320 px, the good images rotated in 45-degree
    /// steps and mirrored (fewer copies as the images grow in number: the bank's variety
    /// then comes from the images themselves, and training stays bounded).
    public static func turning(from template: AnomalyScorerOptions, goodImageCount n: Int,
                               imageSize: Int = 320) -> AnomalyScorerOptions {
        var o = template
        o.mode = .memoryBank
        o.imageSize = imageSize
        o.features = PatchFeatureOptions(layers: [1, 2], aggregation: 1)
        o.topFraction = 0
        // Every image has 1600 patches to look up at 320 px (784 at 224), so the bank is
        // kept no larger than the old 224-px default's for the same images (10 % of their
        // 28 x 28 patches), or 4096 rows when that is more. With four images the 10 %
        // coreset of the rotated copies (10240 rows) made inspection 3.5x slower than the
        // old default (screws, 2 threads: 16.7 against 58 images/s; 29 with 4096) for
        // 0.004 of AUROC (0.837 against 0.833, seeds 0-2); the verdicts lost more (balanced
        // accuracy 0.768 -> 0.727). With all 320 screws, 4096 rows cost AUROC (0.979
        // against 0.983 with 16384).
        let plainBank = Int((o.coresetFraction * Double(n) * 784).rounded())
        let cap = Swift.max(4096, Swift.min(o.maximumBankSize, plainBank))
        o.maximumBankSize = Swift.min(o.maximumBankSize, cap)
        o.coresetThreshold = Swift.min(o.coresetThreshold, cap)
        switch n {
        case ...4: o.augmentation = .rotate45Mirrored
        case ...8: o.augmentation = .rotate45
        case ...16: o.augmentation = .rotate90
        default: o.augmentation = .none
        }
        return o
    }

    /// Mean held-out good distance with rotated copies in the bank over the same without:
    /// the held-out good scores of two scorers trained on the same images (stride-8 and
    /// stride-16 patches without averaging, a memory bank, each image scored by a bank built
    /// without it), one with each image also rotated in 45-degree steps and mirrored. Nil
    /// with fewer than two images.
    ///
    /// - Parameter goodImages: normalised `[H, W, 3]` tensors, the short side
    ///   ``measuringSize``; at most the first ``measuredImages`` are used.
    public static func rotationRatio(goodImages: [Tensor], backbone: FrozenBackbone, seed: UInt64 = 0,
                                     pool: ThreadPool? = .shared) -> Double? {
        let images = Array(goodImages.prefix(measuredImages))
        guard images.count >= 2 else { return nil }
        var plain = AnomalyScorerOptions()
        let (height, width) = (images[0].shape[0], images[0].shape[1])
        plain.imageSize = Swift.min(height, width)
        plain.aspectRatio = height == width ? 1 : Double(width) / Double(height)
        plain.features = PatchFeatureOptions(layers: [1, 2], aggregation: 1)
        plain.seed = seed
        var rotated = plain
        rotated.augmentation = .rotate45Mirrored
        func heldOutMean(_ options: AnomalyScorerOptions) -> Double {
            let scores = AnomalyScorer.train(goodImages: images, backbone: backbone, options: options, pool: pool).calibration.goodScores
            return scores.reduce(0.0) { $0 + Double($1) } / Double(Swift.max(scores.count, 1))
        }
        let without = heldOutMean(plain)
        guard without > 0 else { return nil }
        return heldOutMean(rotated) / without
    }

    /// The option sets for these good images: the turning or the aligned settings by
    /// ``rotationRatio(goodImages:backbone:pool:)``, or both combined when it cannot be
    /// measured (one image; then both at ``measuringSize``).
    ///
    /// - Parameters:
    ///   - measuringImages: the good images with the short side ``measuringSize`` at the
    ///     template's ``AnomalyScorerOptions/aspectRatio``, normalised.
    ///   - goodImageCount: how many good images the scorer will learn from.
    ///   - template: options kept in every set (coreset, bank size, smoothing, seed).
    public static func choose(measuringImages: [Tensor], goodImageCount: Int, template: AnomalyScorerOptions,
                              backbone: FrozenBackbone, pool: ThreadPool? = .shared) -> ([AnomalyScorerOptions], ScorerChoice) {
        let measured = Swift.min(measuringImages.count, measuredImages)
        guard let ratio = rotationRatio(goodImages: measuringImages, backbone: backbone, seed: template.seed, pool: pool) else {
            return ([aligned(from: template, goodImageCount: goodImageCount), turning(from: template, goodImageCount: goodImageCount, imageSize: measuringSize)],
                    ScorerChoice(family: .both, rotationRatio: nil, ratioThreshold: turningRatio, measuredOn: measured))
        }
        let turns = ratio < turningRatio
        return ([turns ? turning(from: template, goodImageCount: goodImageCount) : aligned(from: template, goodImageCount: goodImageCount)],
                ScorerChoice(family: turns ? .turning : .aligned, rotationRatio: ratio, ratioThreshold: turningRatio,
                             measuredOn: measured))
    }
}

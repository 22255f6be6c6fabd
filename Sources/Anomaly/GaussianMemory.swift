// The fitting glue of the Gaussian mode: patch grids of the good images (every bank
// variant) become one `PositionGaussian` per grid cell, optionally over a seeded random
// subset of the feature channels; test grids become per-cell Mahalanobis distances.
import TensorCore

/// The per-position Gaussians of the good images' patch features and how they were made:
/// the trained part of the scorer in ``ScoringMode/positionGaussian`` mode.
///
/// A test image's grid must have the training grid's size (`gridHeight x gridWidth`), which
/// holds because every image is resized to the scorer's `imageSize`.
public struct GaussianMemory: Sendable {
    /// The fitted Gaussians: one per grid cell, over ``channels``.
    public let gaussian: PositionGaussian
    /// The patch-feature channels the Gaussians model, ascending (all of them when their
    /// count equals ``featureDimension``).
    public let channels: [Int]
    /// The channel count of the patch features (`D` of the grids).
    public let featureDimension: Int
    /// The grid of one image.
    public let gridWidth: Int, gridHeight: Int
    /// How many patch grids (good images times their variants) the fit saw.
    public let sampleCount: Int

    /// Wraps fitted Gaussians (e.g. read from a model file).
    ///
    /// - Precondition: `gaussian.positions == gridWidth * gridHeight`,
    ///   `gaussian.dimension == channels.count`, channels ascending within `0..<featureDimension`.
    public init(gaussian: PositionGaussian, channels: [Int], featureDimension: Int, gridWidth: Int, gridHeight: Int,
                sampleCount: Int) {
        precondition(gaussian.positions == gridWidth * gridHeight,
                     "GaussianMemory: \(gaussian.positions) Gaussians for a \(gridHeight)x\(gridWidth) grid")
        precondition(gaussian.dimension == channels.count,
                     "GaussianMemory: Gaussians of dimension \(gaussian.dimension) for \(channels.count) channels")
        precondition(Self.channelsAreValid(channels, featureDimension: featureDimension),
                     "GaussianMemory: channels must ascend within 0..<\(featureDimension)")
        self.gaussian = gaussian; self.channels = channels; self.featureDimension = featureDimension
        self.gridWidth = gridWidth; self.gridHeight = gridHeight; self.sampleCount = sampleCount
    }

    /// Whether `channels` is a strictly ascending, non-empty list inside `0..<featureDimension`.
    public static func channelsAreValid(_ channels: [Int], featureDimension: Int) -> Bool {
        guard let first = channels.first, first >= 0, channels.last! < featureDimension else { return false }
        return zip(channels, channels.dropFirst()).allSatisfy { $0 < $1 }
    }

    /// The channels the Gaussians keep: `count` of `0..<dimension` drawn with `seed`,
    /// ascending (all when `count` is 0 or at least `dimension`).
    public static func channelSubset(count: Int, of dimension: Int, seed: UInt64) -> [Int] {
        guard count > 0, count < dimension else { return Array(0..<dimension) }
        // A seed of its own, apart from the coreset's, so that the two draws are unrelated.
        var generator = Xoshiro256(seed: seed ^ 0x6761_7573_7369_616E)
        return Array(Array(0..<dimension).shuffled(using: &generator).prefix(count)).sorted()
    }

    /// Fits the Gaussians to patch grids `[N, h, w, D]` (all variants of all good images).
    public static func fit(from grids: [PatchGrid], options: AnomalyScorerOptions, pool: ThreadPool? = .shared) -> GaussianMemory {
        precondition(!grids.isEmpty, "GaussianMemory.fit: no patch grids")
        let d = grids[0].dimension
        let channels = channelSubset(count: options.gaussianChannels, of: d, seed: options.seed)
        let samples = grids.flatMap { grid in (0..<grid.features.shape[0]).map { selectedRows(grid, image: $0, channels: channels) } }
        return fit(samples: samples, channels: channels, featureDimension: d, gridWidth: grids[0].width,
                   gridHeight: grids[0].height, options: options, pool: pool)
    }

    /// Fits to per-image samples that already hold only the chosen channels, `[h*w, C]` each.
    static func fit(samples: [Tensor], channels: [Int], featureDimension: Int, gridWidth: Int, gridHeight: Int,
                    options: AnomalyScorerOptions, pool: ThreadPool?) -> GaussianMemory {
        GaussianMemory(gaussian: PositionGaussian(features: samples, regularization: options.gaussianRegularization, pool: pool),
                       channels: channels, featureDimension: featureDimension, gridWidth: gridWidth, gridHeight: gridHeight,
                       sampleCount: samples.count)
    }

    /// Image `image` of a grid as `[h*w, C]` rows holding only `channels`.
    static func selectedRows(_ grid: PatchGrid, image: Int, channels: [Int]) -> Tensor {
        let d = grid.dimension, cells = grid.height * grid.width
        if channels.count == d { return grid.rows(of: image) }
        let all = grid.features
        return all.withUnsafeBufferPointer { src in
            Tensor(uninitializedShape: [cells, channels.count]) { out in
                let base = src.baseAddress! + image * cells * d
                for cell in 0..<cells {
                    for (k, channel) in channels.enumerated() { out[cell * channels.count + k] = base[cell * d + channel] }
                }
            }
        }
    }

    /// The Mahalanobis distance of every patch of every image of a grid to its position's
    /// Gaussian: `[N][h*w]`.
    public func patchDistances(_ grid: PatchGrid, pool: ThreadPool? = .shared) -> [[Float]] {
        precondition(grid.width == gridWidth && grid.height == gridHeight && grid.dimension == featureDimension,
                     "GaussianMemory: grid \(grid.height)x\(grid.width)x\(grid.dimension), fitted on \(gridHeight)x\(gridWidth)x\(featureDimension)")
        return (0..<grid.features.shape[0]).map { image in
            gaussian.mahalanobis(Self.selectedRows(grid, image: image, channels: channels), pool: pool)
        }
    }
}

// The PatchCore-style scorer: a memory bank of the good images' patch features; a test
// patch's anomaly value is its distance to the nearest good patch.
import NeuralNet
import TensorCore

/// Geometric variants of the good images added to the memory bank, for parts that do not
/// always lie the same way.
public enum BankAugmentation: String, Sendable, Codable, CaseIterable {
    /// The images as they are.
    case none
    /// The image mirrored left-right, top-bottom and both (4 variants): for textures
    /// with a direction (grinding marks, fibres) that a quarter turn would not preserve.
    case mirrors
    /// The four 90-degree rotations.
    case rotate90
    /// The four 90-degree rotations, each also mirrored (8 variants).
    case dihedral
    /// Rotations in steps of 45 degrees (8 variants; the odd ones resampled, corners
    /// filled by edge replication).
    case rotate45
    /// Rotations in steps of 45 degrees, each also mirrored (16 variants).
    case rotate45Mirrored

    /// The variants of one normalised image `[H, W, C]` (exposed for tests).
    public func variantsForTesting(of image: Tensor) -> [Tensor] { variants(of: image) }

    /// The variants of one normalised image `[H, W, C]`.
    func variants(of image: Tensor) -> [Tensor] {
        switch self {
        case .none: return [image]
        case .mirrors:
            let leftRight = flipped(image, horizontal: true)
            return [image, leftRight, flipped(image, horizontal: false), flipped(leftRight, horizontal: false)]
        case .rotate90: return (0..<4).map { rotated90(image, times: $0) }
        case .dihedral:
            let mirrored = flipped(image, horizontal: true)
            return (0..<4).flatMap { [rotated90(image, times: $0), rotated90(mirrored, times: $0)] }
        case .rotate45, .rotate45Mirrored:
            var out: [Tensor] = []
            let sources = self == .rotate45 ? [image] : [image, flipped(image, horizontal: true)]
            for source in sources {
                for quarter in 0..<4 {
                    let base = rotated90(source, times: quarter)
                    out.append(base)
                    out.append(warp(base, scale: (1, 1), angle: .pi / 4, shift: (0, 0)))
                }
            }
            return out
        }
    }
}

/// What the scorer learns from the good images' patch features.
public enum ScoringMode: String, Sendable, Codable, CaseIterable {
    /// A memory bank of good patches (PatchCore-style): a patch's anomaly value is its
    /// distance to the nearest good patch, wherever it lay. Suits parts that do not always
    /// lie the same way and few good images.
    case memoryBank = "bank"
    /// One Gaussian per grid position (PaDiM-style): a patch's anomaly value is its
    /// Mahalanobis distance to the good patches seen at the same position. Suits
    /// well-aligned parts and many good images; cheaper to score than a large bank.
    case positionGaussian = "gaussian"
}

/// Everything that decides how the scorer is built.
public struct AnomalyScorerOptions: Sendable, Equatable, Codable {
    /// What is learnt from the good patches: a memory bank (default) or per-position Gaussians.
    public var mode: ScoringMode = .memoryBank
    /// Side of the square the images are resized to before the backbone; the short side
    /// when ``aspectRatio`` is not 1.
    public var imageSize: Int = 224
    /// Width over height of the input (see ``InputGeometry``); 1: square.
    public var aspectRatio: Double = 1
    /// The input's width and height in pixels.
    public var inputSize: (width: Int, height: Int) { InputGeometry.size(shortSide: imageSize, aspectRatio: aspectRatio) }
    /// Patch features: layers and neighbourhood aggregation.
    public var features = PatchFeatureOptions()
    /// Variants of the good images added to the bank.
    public var augmentation: BankAugmentation = .none
    /// Fraction of the patches kept by the greedy coreset (1 keeps all).
    public var coresetFraction: Double = 0.1
    /// Upper bound on the bank size after the coreset.
    public var maximumBankSize: Int = 16_384
    /// Banks at or below this many patches are kept whole (the coreset saves nothing there).
    public var coresetThreshold: Int = 16_384
    /// Standard deviation, in pixels of the resized image, of the Gaussian that smooths the map.
    public var smoothingSigma: Float = 4
    /// Seed of the coreset's random start and projection, and of the Gaussian mode's
    /// channel subset.
    public var seed: UInt64 = 0
    /// Gaussian mode: how many feature channels, drawn at random with `seed`, the Gaussians
    /// model (0: all). Memory and fitting grow with its square; PaDiM keeps 100-550.
    public var gaussianChannels: Int = 0
    /// Gaussian mode: added to every covariance diagonal, which keeps it invertible when
    /// there are fewer good patches per position than channels.
    public var gaussianRegularization: Float = 0.01
    /// The image's score is the mean of this fraction of its largest map values (0: the
    /// largest value alone, as PatchCore). A small fraction is less sensitive to a single
    /// noisy peak and rewards large defects; tiny ones may lose (0.05 was best on magnetic
    /// tile, see README).
    public var topFraction: Double = 0

    /// The default settings (what `vinspect train` uses when the engine does not choose).
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case mode, imageSize, features, augmentation, coresetFraction, maximumBankSize, coresetThreshold, smoothingSigma, seed
        case gaussianChannels, gaussianRegularization, topFraction, aspectRatio
    }

    /// Decodes options; a key that is missing (a file written before the option existed)
    /// keeps its default, so older model files stay readable with their old behaviour.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AnomalyScorerOptions()
        mode = try c.decodeIfPresent(ScoringMode.self, forKey: .mode) ?? d.mode
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        features = try c.decodeIfPresent(PatchFeatureOptions.self, forKey: .features) ?? d.features
        augmentation = try c.decodeIfPresent(BankAugmentation.self, forKey: .augmentation) ?? d.augmentation
        coresetFraction = try c.decodeIfPresent(Double.self, forKey: .coresetFraction) ?? d.coresetFraction
        maximumBankSize = try c.decodeIfPresent(Int.self, forKey: .maximumBankSize) ?? d.maximumBankSize
        coresetThreshold = try c.decodeIfPresent(Int.self, forKey: .coresetThreshold) ?? d.coresetThreshold
        smoothingSigma = try c.decodeIfPresent(Float.self, forKey: .smoothingSigma) ?? d.smoothingSigma
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        gaussianChannels = try c.decodeIfPresent(Int.self, forKey: .gaussianChannels) ?? d.gaussianChannels
        gaussianRegularization = try c.decodeIfPresent(Float.self, forKey: .gaussianRegularization) ?? d.gaussianRegularization
        topFraction = try c.decodeIfPresent(Double.self, forKey: .topFraction) ?? d.topFraction
        aspectRatio = try c.decodeIfPresent(Double.self, forKey: .aspectRatio) ?? d.aspectRatio
    }
}

/// The memory bank and how it was made: the trained part of the scorer.
public struct PatchMemory: Sendable {
    /// The bank's patch features, `[B, D]`.
    public let bank: MemoryBank
    /// Patches before the coreset.
    public let patchCount: Int
    /// The patch grid of one image.
    public let gridWidth: Int, gridHeight: Int

    public init(bank: MemoryBank, patchCount: Int, gridWidth: Int, gridHeight: Int) {
        self.bank = bank; self.patchCount = patchCount; self.gridWidth = gridWidth; self.gridHeight = gridHeight
    }

    /// Builds the bank from patch grids `[N, h, w, D]` (all variants of all good images),
    /// reduced by the greedy coreset when larger than the options allow.
    public static func build(from grids: [PatchGrid], options: AnomalyScorerOptions, pool: ThreadPool? = .shared) -> PatchMemory {
        let (memory, _) = buildWithOwners(from: grids, owners: nil, options: options, pool: pool)
        return memory
    }

    /// As ``build(from:options:pool:)``, also returning, for every kept bank row, the
    /// owner given for its grid image (`owners[i]` for image `i` of the concatenated grids).
    static func buildWithOwners(from grids: [PatchGrid], owners: [Int]?, options: AnomalyScorerOptions,
                                pool: ThreadPool?) -> (PatchMemory, [Int]) {
        precondition(!grids.isEmpty, "PatchMemory.build: no patch grids")
        let d = grids[0].dimension
        let cells = grids[0].height * grids[0].width
        let total = grids.reduce(0) { $0 + $1.features.count / d }
        let all = Tensor(uninitializedShape: [total, d]) { out in
            var offset = 0
            for grid in grids {
                grid.features.withUnsafeBufferPointer { src in
                    (out.baseAddress! + offset).update(from: src.baseAddress!, count: src.count)
                    offset += src.count
                }
            }
        }
        var kept = all
        var rows = Array(0..<total)
        if total > options.coresetThreshold {
            let target = Swift.min(options.maximumBankSize, Swift.max(1, Int((Double(total) * options.coresetFraction).rounded())))
            if target < total {
                rows = Coreset.greedyKCenter(all, count: target, seed: options.seed, pool: pool)
                kept = gatherRows(all, rows)
            }
        }
        let rowOwners = rows.map { owners?[$0 / cells] ?? 0 }
        return (PatchMemory(bank: MemoryBank(kept), patchCount: total, gridWidth: grids[0].width, gridHeight: grids[0].height),
                rowOwners)
    }

    /// The memory without the bank rows whose owner is in `excluded` (for held-out scoring).
    func excluding(owners rowOwners: [Int], _ excluded: Set<Int>) -> PatchMemory {
        let keep = rowOwners.indices.filter { !excluded.contains(rowOwners[$0]) }
        return PatchMemory(bank: MemoryBank(gatherRows(bank.features, keep)), patchCount: patchCount,
                           gridWidth: gridWidth, gridHeight: gridHeight)
    }

    /// The nearest-neighbour distance (Euclidean) of every patch of every image: `[N][h*w]`.
    public func patchDistances(_ grid: PatchGrid, pool: ThreadPool? = .shared) -> [[Float]] {
        let n = grid.features.shape[0], cells = grid.height * grid.width
        let queries = grid.features.reshaped([n * cells, grid.dimension])
        let distances = bank.nearest(queries, k: 1, pool: pool).distances.scalars
        return (0..<n).map { i in distances[(i * cells)..<((i + 1) * cells)].map { $0.squareRoot() } }
    }
}

/// The given rows of a `[N, D]` tensor, in order.
func gatherRows(_ x: Tensor, _ rows: [Int]) -> Tensor {
    let d = x.shape[1]
    return x.withUnsafeBufferPointer { src in
        Tensor(uninitializedShape: [rows.count, d]) { out in
            for (row, index) in rows.enumerated() {
                (out.baseAddress! + row * d).update(from: src.baseAddress! + index * d, count: d)
            }
        }
    }
}

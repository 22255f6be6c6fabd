// What every backbone is (the protocol), the architectures this build knows, and the
// blocks they are built of. The networks themselves: ResNet18.swift,
// EfficientNetLite.swift, CompactNet.swift. Each exposes feature maps at strides 4, 8 and
// 16 and a pooled embedding, in training form (Variables) and frozen form (FrozenBackbone).
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
        return make(classes: classes, using: &generator)
    }

    /// A network of this architecture with its initial weights drawn from `generator`
    /// (``Xoshiro256/weightsToBeLoaded``: not drawn, for a network about to load weights).
    public func make(classes: Int = 1000, using generator: inout Xoshiro256) -> any Backbone {
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

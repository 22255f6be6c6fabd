// Trainable modules: named state, parameters, initialisation, and the frozen (fused,
// Sendable) form used for inference.
import TensorCore

/// A trainable network part: it owns named tensors (parameters and running statistics)
/// and computes a differentiable forward pass.
///
/// Modules are classes and are not thread-safe; for inference, freeze them into the
/// Sendable structures of `Frozen.swift`, which fold batch norms into convolutions.
public protocol Module: AnyObject {
    /// Appends every tensor of the module with its name (`prefix` + local name), in a
    /// stable order: parameters and running statistics alike.
    func collectState(into state: inout [(name: String, variable: Variable)], prefix: String)
}

extension Module {
    /// Every named tensor of the module, in a stable order.
    public var namedState: [(name: String, variable: Variable)] {
        var state: [(name: String, variable: Variable)] = []
        collectState(into: &state, prefix: "")
        return state
    }

    /// The trainable parameters.
    public var parameters: [Variable] { namedState.map(\.variable).filter(\.requiresGradient) }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// The module's tensors by name (a "state dict").
    public func stateDictionary() -> [String: Tensor] {
        Dictionary(namedState.map { ($0.name, $0.variable.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// Replaces the module's tensors with those of `dictionary`.
    ///
    /// - Throws: ``StateLoadingError`` naming every missing tensor or shape mismatch;
    ///   nothing is changed then.
    public func loadState(_ dictionary: [String: Tensor], allowMissing: Bool = false) throws(StateLoadingError) {
        let state = namedState
        var problems: [String] = []
        for (name, variable) in state {
            guard let tensor = dictionary[name] else {
                if !allowMissing { problems.append("\(name) is missing") }
                continue
            }
            if tensor.shape != variable.value.shape {
                problems.append("\(name) has shape \(tensor.shape), the network needs \(variable.value.shape)")
            }
        }
        if !problems.isEmpty { throw StateLoadingError(problems: problems) }
        for (name, variable) in state { if let tensor = dictionary[name] { variable.value = tensor } }
    }
}

/// Tensors given to a module do not fit it.
public struct StateLoadingError: Error, CustomStringConvertible, Sendable {
    /// One line per tensor: missing, or the shapes that disagree.
    public let problems: [String]
    public var description: String {
        let shown = problems.prefix(8).joined(separator: "; ")
        let more = problems.count > 8 ? " (and \(problems.count - 8) more)" : ""
        return "the weights do not fit the network: \(shown)\(more)"
    }
}

/// Kaiming (He) normal initialisation: standard deviation `gain / sqrt(fan)`, with the
/// ReLU gain sqrt(2) and fan-out as torchvision initialises convolutions.
public func kaimingNormal<G: RandomNumberGenerator>(_ shape: [Int], fan: Int, gain: Float = Float(2).squareRoot(),
                                                    using generator: inout G) -> Tensor {
    Tensor(randomNormal: shape, standardDeviation: gain / Float(Swift.max(fan, 1)).squareRoot(), using: &generator)
}

// MARK: - Layers

/// A 2-D convolution layer over NHWC input with weight `[KH, KW, Cin/groups, Cout]`.
public final class Conv2d: Module {
    public let weight: Variable
    public let bias: Variable?
    public let stride: (Int, Int)
    public let padding: Padding
    public let dilation: (Int, Int)
    public let groups: Int

    /// Creates the layer with Kaiming-normal weights (fan-out) and zero bias.
    public init<G: RandomNumberGenerator>(
        _ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
        padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = false,
        using generator: inout G
    ) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0,
                     "Conv2d: \(inChannels) -> \(outChannels) channels not divisible by \(groups) groups")
        let fanOut = kernel.0 * kernel.1 * outChannels / groups
        weight = Variable(kaimingNormal([kernel.0, kernel.1, inChannels / groups, outChannels], fan: fanOut, using: &generator),
                          requiresGradient: true)
        self.bias = bias ? Variable(Tensor(zeros: [outChannels]), requiresGradient: true) : nil
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    }

    public var outChannels: Int { weight.shape[3] }

    public func callAsFunction(_ x: Variable) -> Variable {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        state.append((prefix + "weight", weight))
        if let bias { state.append((prefix + "bias", bias)) }
    }
}

/// Batch normalisation over the channel axis, with learnable scale and shift.
public final class BatchNorm2d: Module {
    public let gamma: Variable
    public let beta: Variable
    public let statistics: BatchNormStatistics
    public let epsilon: Float

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        gamma = Variable(Tensor(ones: [channels]), requiresGradient: true)
        beta = Variable(Tensor(zeros: [channels]), requiresGradient: true)
        statistics = BatchNormStatistics(channels: channels, momentum: momentum)
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Variable, training: Bool) -> Variable {
        batchNorm(x, gamma: gamma, beta: beta, statistics: statistics, training: training, epsilon: epsilon)
    }

    /// `y = x * scale + shift` per channel in inference mode.
    public var affine: (scale: [Float], shift: [Float]) {
        batchNormAffine(gamma: gamma.value, beta: beta.value, runningMean: statistics.mean.value,
                        runningVariance: statistics.variance.value, epsilon: epsilon)
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        state.append((prefix + "weight", gamma))
        state.append((prefix + "bias", beta))
        state.append((prefix + "running_mean", statistics.mean))
        state.append((prefix + "running_var", statistics.variance))
    }
}

/// Convolution, batch norm and activation: the unit every backbone here is made of.
/// Frozen, the batch norm is folded into the convolution's weights and bias.
///
/// The state names of the two parts are configurable so that a backbone's names are
/// exactly those of its PyTorch definition (e.g. `conv1` / `bn1` in torchvision's ResNet).
public final class ConvBNAct: Module {
    public let conv: Conv2d
    public let norm: BatchNorm2d
    public let activation: Activation
    /// The state-name prefixes of the convolution and the batch norm, e.g. `"conv1."`.
    public let convName: String, normName: String

    public init<G: RandomNumberGenerator>(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Padding, groups: Int = 1,
        activation: Activation, epsilon: Float = 1e-5, names: (conv: String, norm: String) = ("conv", "bn"),
        using generator: inout G
    ) {
        convName = names.conv + "."
        normName = names.norm + "."
        conv = Conv2d(inChannels, outChannels, kernel: (kernel, kernel), stride: (stride, stride), padding: padding,
                      groups: groups, using: &generator)
        norm = BatchNorm2d(outChannels, epsilon: epsilon)
        self.activation = activation
    }

    /// conv, norm, then `activation(result + residual)`.
    public func callAsFunction(_ x: Variable, training: Bool, residual: Variable? = nil) -> Variable {
        var y = norm(conv(x), training: training)
        if let residual { y = y + residual }
        return NeuralNet.activation(y, activation)
    }

    /// The inference form: batch norm folded into the convolution.
    public func frozen() -> FusedConv {
        let (scale, shift) = norm.affine
        var weight = conv.weight.value
        let outChannels = conv.outChannels
        weight.withUnsafeMutableBufferPointer { w in
            for i in 0..<w.count { w[i] *= scale[i % outChannels] }
        }
        var bias = shift
        if let convBias = conv.bias?.value.scalars { for c in 0..<outChannels { bias[c] += convBias[c] * scale[c] } }
        return FusedConv(weight: weight, bias: Tensor(bias, shape: [outChannels]), stride: conv.stride,
                         padding: conv.padding, dilation: conv.dilation, groups: conv.groups, activation: activation)
    }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        conv.collectState(into: &state, prefix: prefix + convName)
        norm.collectState(into: &state, prefix: prefix + normName)
    }
}

/// A fully connected layer, PyTorch layout: weight `[out, in]`, bias `[out]`.
public final class Linear: Module {
    public let weight: Variable
    public let bias: Variable?

    /// Creates the layer with PyTorch's default uniform(-1/sqrt(in), 1/sqrt(in)) weights.
    public init<G: RandomNumberGenerator>(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, using generator: inout G) {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Variable(Tensor(randomUniform: [outFeatures, inFeatures], in: -bound..<bound, using: &generator),
                          requiresGradient: true)
        self.bias = bias ? Variable(Tensor(randomUniform: [outFeatures], in: -bound..<bound, using: &generator),
                                    requiresGradient: true) : nil
    }

    public func callAsFunction(_ x: Variable) -> Variable { linear(x, weight: weight, bias: bias) }

    public func collectState(into state: inout [(name: String, variable: Variable)], prefix: String) {
        state.append((prefix + "weight", weight))
        if let bias { state.append((prefix + "bias", bias)) }
    }
}

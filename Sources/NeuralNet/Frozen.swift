// The inference form of a network: batch norms folded into convolutions, activations and
// residual additions fused into the convolution epilogue, plain Sendable values that many
// threads may run at once.
import TensorCore

/// A convolution with folded batch norm, bias and activation: `act(conv(x) + b + residual)`.
public struct FusedConv: Sendable {
    /// `[KH, KW, Cin/groups, Cout]`.
    public let weight: Tensor
    /// `[Cout]`.
    public let bias: Tensor
    public let stride: (Int, Int)
    public let padding: Padding
    public let dilation: (Int, Int)
    public let groups: Int
    public let activation: Activation
    /// The weight packed once for the direct kernel (one group, when Winograd does not run it).
    let packed: PackedConvWeights?
    /// The transformed filters when the convolution runs as Winograd F(m x m, 3x3): 3x3,
    /// stride 1, no dilation, one group, at least 16 input channels (F(4x4) from 64 on).
    /// Measured against the direct kernel on ResNet-18's layers: 1.7-2.2x (F(2x2)) and
    /// 2.1-3.4x (F(4x4)) faster; relative error 4e-7 and 6e-6 of the largest output.
    let winograd: WinogradWeights?

    public init(weight: Tensor, bias: Tensor, stride: (Int, Int), padding: Padding, dilation: (Int, Int),
                groups: Int, activation: Activation) {
        self.weight = weight; self.bias = bias; self.stride = stride; self.padding = padding
        self.dilation = dilation; self.groups = groups; self.activation = activation
        let cin = weight.shape[2]
        let winogradShape = weight.shape[0] == 3 && weight.shape[1] == 3 && stride == (1, 1) && dilation == (1, 1)
            && groups == 1 && cin >= 16
        winograd = winogradShape ? WinogradWeights(weight, tile: .preferred(inChannels: cin)) : nil
        // One transformed copy of the weights per convolution, whichever kernel runs it.
        packed = groups == 1 && !winogradShape ? PackedConvWeights(weight) : nil
    }

    /// Output channels.
    public var outChannels: Int { weight.shape[3] }

    /// Runs the convolution on `[N, H, W, Cin]`, giving `[N, OH, OW, Cout]`.
    public func callAsFunction(_ x: Tensor, residual: Tensor? = nil, pool: ThreadPool? = .shared) -> Tensor {
        let s = x.shape
        let g = ConvGeometry(batch: s[0], height: s[1], width: s[2], inChannels: s[3], outChannels: outChannels,
                             kernelHeight: weight.shape[0], kernelWidth: weight.shape[1], stride: stride,
                             padding: padding, dilation: dilation, groups: groups)
        if let winograd {
            return winogradConv3x3(x, weights: winograd, bias: bias, geometry: g, activation: activation, residual: residual,
                                   pool: pool)
        }
        return conv2dForward(x, weight: weight, bias: bias, geometry: g, activation: activation, residual: residual,
                             pool: pool, packed: packed)
    }
}

/// A chain of fused convolutions with an optional shortcut added before the last one's
/// activation: a ResNet basic block, an inverted-residual block, or a single convolution.
public struct FrozenBlock: Sendable {
    /// How the block's input reaches its output.
    public enum Shortcut: Sendable {
        case none
        case identity
        case projection(FusedConv)
    }

    public let convolutions: [FusedConv]
    public let shortcut: Shortcut

    public init(_ convolutions: [FusedConv], shortcut: Shortcut = .none) {
        self.convolutions = convolutions
        self.shortcut = shortcut
    }

    public func callAsFunction(_ x: Tensor, pool: ThreadPool? = .shared) -> Tensor {
        // Large maps: band by band, the expanded activations kept in cache (same result).
        switch shortcut {
        case .none, .identity:
            guard fusesAsInvertedResidual(convolutions, input: x.shape) else { break }
            var identity = false
            if case .identity = shortcut { identity = true }
            return fusedInvertedResidual(x, expand: convolutions[0], depthwise: convolutions[1], project: convolutions[2],
                                         identity: identity, pool: pool)
        case .projection:
            break
        }
        return layerByLayer(x, pool: pool)
    }

    /// Each convolution over the whole map, one after another (what `callAsFunction` does
    /// unless the block runs band by band; public to compare the two).
    public func layerByLayer(_ x: Tensor, pool: ThreadPool? = .shared) -> Tensor {
        var h = x
        for conv in convolutions.dropLast() { h = conv(h, pool: pool) }
        let residual: Tensor?
        switch shortcut {
        case .none: residual = nil
        case .identity: residual = x
        case .projection(let conv): residual = conv(x, pool: pool)
        }
        return convolutions.last!(h, residual: residual, pool: pool)
    }
}

/// One step of a frozen network.
public enum FrozenLayer: Sendable {
    case block(FrozenBlock)
    case maxPool(kernel: Int, stride: Int, padding: Padding)

    public func callAsFunction(_ x: Tensor, pool: ThreadPool? = .shared) -> Tensor {
        switch self {
        case .block(let block): return block(x, pool: pool)
        case .maxPool(let kernel, let stride, let padding):
            let s = x.shape
            let g = ConvGeometry(batch: s[0], height: s[1], width: s[2], inChannels: s[3], outChannels: s[3],
                                 kernelHeight: kernel, kernelWidth: kernel, stride: (stride, stride), padding: padding)
            return maxPoolInference(x, geometry: g, pool: pool)
        }
    }
}

/// What a backbone gives the anomaly scorer and the classifier for a batch of images.
public struct BackboneFeatures: Sendable {
    /// Feature maps at increasing strides (about 4, 8 and 16), each `[N, H/s, W/s, C]`.
    public var maps: [Tensor]
    /// The globally pooled last feature map, `[N, D]`.
    public var embedding: Tensor
    /// Class scores of the classifier head, `[N, classes]`, when the network has one.
    public var logits: Tensor?
}

/// A backbone in inference form: Sendable, thread-safe to call concurrently.
public struct FrozenBackbone: Sendable {
    /// The architecture name, e.g. `resnet18`.
    public let architecture: String
    public let layers: [FrozenLayer]
    /// Indices into `layers` whose outputs are the feature maps.
    public let taps: [Int]
    /// The classifier head `[classes, D]` and bias, if any.
    public let classifier: (weight: Tensor, bias: Tensor)?

    public init(architecture: String, layers: [FrozenLayer], taps: [Int], classifier: (weight: Tensor, bias: Tensor)?) {
        self.architecture = architecture; self.layers = layers; self.taps = taps; self.classifier = classifier
    }

    /// Runs the network on `[N, H, W, 3]` normalised input.
    ///
    /// - Parameters:
    ///   - input: the image batch, NHWC.
    ///   - throughLayer: stop after this layer (e.g. the last tap) when the embedding and
    ///     logits are not needed; nil runs everything.
    public func features(_ input: Tensor, stoppingAfterLastTap: Bool = false, pool: ThreadPool? = .shared) -> BackboneFeatures {
        var x = input
        var maps: [Tensor] = []
        let last = stoppingAfterLastTap ? (taps.max() ?? layers.count - 1) : layers.count - 1
        for (index, layer) in layers.enumerated() where index <= last {
            x = layer(x, pool: pool)
            if taps.contains(index) { maps.append(x) }
        }
        if stoppingAfterLastTap { return BackboneFeatures(maps: maps, embedding: Tensor(zeros: [input.shape[0], 0]), logits: nil) }
        return finish(x, maps: maps, pool: pool)
    }

    /// Completes features computed with `stoppingAfterLastTap: true`: runs the layers after
    /// the last tap and adds the embedding and logits, as if the whole network had run.
    /// Used to pay for the deep layers only when their embedding is needed.
    public func completing(_ partial: BackboneFeatures, pool: ThreadPool? = .shared) -> BackboneFeatures {
        guard partial.embedding.shape.last == 0, let lastTap = taps.max(), let tapOutput = partial.maps.last else { return partial }
        var x = tapOutput
        for index in (lastTap + 1)..<layers.count { x = layers[index](x, pool: pool) }
        return finish(x, maps: partial.maps, pool: pool)
    }

    /// The embedding and logits from the last layer's output.
    private func finish(_ x: Tensor, maps: [Tensor], pool: ThreadPool?) -> BackboneFeatures {
        let n = x.shape[0], c = x.shape[3]
        let embedding = adaptiveAvgPoolForward(x, outHeight: 1, outWidth: 1).reshaped([n, c])
        var logits: Tensor?
        if let classifier {
            var scores = matmul(embedding, classifier.weight, transposeB: true, pool: pool)
            let k = classifier.bias.count, b = classifier.bias.scalars
            scores.withUnsafeMutableBufferPointer { s in for i in 0..<s.count { s[i] += b[i % k] } }
            logits = scores
        }
        return BackboneFeatures(maps: maps, embedding: embedding, logits: logits)
    }
}

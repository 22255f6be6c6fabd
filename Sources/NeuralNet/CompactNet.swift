// The project's own compact backbone.
import TensorCore

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

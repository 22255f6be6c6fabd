// ResNet-18 exactly as torchvision defines it (layer structure and state names; weights
// stored HWIO instead of OIHW).
import TensorCore

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

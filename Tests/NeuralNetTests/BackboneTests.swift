import NeuralNet
import TensorCore
import Testing

/// Gives every batch norm non-trivial running statistics and affine parameters, so that
/// folding them into the convolutions is really exercised.
func randomizeNormalization(_ network: any Backbone, seed: UInt64) {
    var rng = Xoshiro256(seed: seed)
    for (name, variable) in network.namedState where variable.shape.count == 1 {
        let n = variable.shape[0]
        if name.hasSuffix("running_var") {
            variable.value = Tensor((0..<n).map { _ in Float.random(in: 0.5..<2, using: &rng) }, shape: [n])
        } else if name.hasSuffix("running_mean") || name.hasSuffix("bias") {
            variable.value = Tensor((0..<n).map { _ in Float.random(in: -0.2..<0.2, using: &rng) }, shape: [n])
        } else {
            variable.value = Tensor((0..<n).map { _ in Float.random(in: 0.6..<1.4, using: &rng) }, shape: [n])
        }
    }
}

@Test(arguments: BackboneArchitecture.allCases)
func frozenNetworkMatchesTheTrainingGraphInInferenceMode(_ architecture: BackboneArchitecture) {
    let network = architecture.make(classes: 10, seed: 1)
    randomizeNormalization(network, seed: 2)
    let input = randomTensor([2, 64, 48, 3], seed: 3)
    let graph = network.forward(Variable(input), training: false)
    let frozen = network.frozen().features(input)
    #expect(frozen.maps.count == 3)
    for (a, b) in zip(graph.maps, frozen.maps) {
        #expect(a.shape == b.shape)
        let scale = a.value.scalars.map { abs($0) }.max() ?? 1
        let error = zip(a.value.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(error <= 1e-4 * max(scale, 1), "\(architecture): folded map differs by \(error) (scale \(scale))")
    }
    let error = zip(graph.logits!.value.scalars, frozen.logits!.scalars).map { abs($0 - $1) }.max() ?? 0
    #expect(error < 1e-3, "\(architecture): logits differ by \(error)")
    #expect(frozen.embedding.shape == [2, network.embeddingChannels])
}

@Test(arguments: BackboneArchitecture.allCases)
func featureMapsHaveStrides4816(_ architecture: BackboneArchitecture) {
    let network = architecture.make(classes: 5, seed: 1)
    let features = network.frozen().features(randomTensor([1, 64, 96, 3], seed: 4))
    let expected = zip([4, 8, 16], network.featureChannels).map { [1, 64 / $0.0, 96 / $0.0, $0.1] }
    #expect(features.maps.map(\.shape) == expected)
    #expect(features.logits?.shape == [1, 5])
}

@Test func parameterCountsMatchThePyTorchDefinitions() {
    // torchvision's resnet18 has 11 689 512 parameters. The released EfficientNet-Lite
    // checkpoints hold (learnable float32 values in float tensors, batch counters aside):
    // Lite0 4 652 008 in 247, Lite1 5 416 680 in 322, Lite2 6 092 072 in 322.
    let resnet = BackboneArchitecture.resnet18.make()
    #expect(resnet.parameterCount == 11_689_512)
    let lite = BackboneArchitecture.efficientNetLite0.make()
    #expect(lite.parameterCount == 4_652_008)
    #expect(lite.namedState.count == 247)
    let lite1 = BackboneArchitecture.efficientNetLite1.make()
    #expect(lite1.parameterCount == 5_416_680)
    #expect(lite1.namedState.count == 322)
    let lite2 = BackboneArchitecture.efficientNetLite2.make()
    #expect(lite2.parameterCount == 6_092_072)
    #expect(lite2.namedState.count == 322)
    let compact = BackboneArchitecture.compact.make()
    #expect(compact.parameterCount < 1_000_000)
}

@Test func stateNamesFollowThePyTorchDefinitions() {
    let resnet = Set(BackboneArchitecture.resnet18.make().namedState.map(\.name))
    for name in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.running_mean", "layer4.1.bn2.bias", "fc.weight", "fc.bias"] {
        #expect(resnet.contains(name), "resnet18 lacks \(name)")
    }
    #expect(!resnet.contains("layer1.0.downsample.0.weight"))
    let lite = Set(BackboneArchitecture.efficientNetLite0.make().namedState.map(\.name))
    for name in ["_conv_stem.weight", "_bn0.running_mean", "_blocks.0._depthwise_conv.weight", "_blocks.0._bn2.bias",
                 "_blocks.1._expand_conv.weight", "_blocks.15._project_conv.weight", "_conv_head.weight", "_bn1.weight",
                 "_fc.weight"] {
        #expect(lite.contains(name), "efficientnet-lite0 lacks \(name)")
    }
    #expect(!lite.contains("_blocks.0._expand_conv.weight"))
}

@Test func liteVariantsScaleLikeTheTFLiteReference() {
    // round_filters: multiples of 8, halves up, never 10 % below the scaled width.
    #expect(EfficientNetLite.roundFilters(112, width: 1.1) == 120)   // 123.2
    #expect(EfficientNetLite.roundFilters(192, width: 1.1) == 208)   // 211.2
    #expect(EfficientNetLite.roundFilters(40, width: 1.1) == 48)     // 44: the half rounds up
    #expect(EfficientNetLite.roundFilters(16, width: 1.1) == 16)     // 17.6
    #expect(EfficientNetLite.roundFilters(10, width: 1.0) == 16)     // 14 -> 8 is below 90 %
    #expect(EfficientNetLite.roundFilters(3, width: 1.0) == 8)       // never below 8
    // Stage widths and repeats as the released checkpoints have them; first and last
    // stages keep one block, the others ceil(depth x repeats).
    let expected: [(EfficientNetLite.Variant, [Int], [Int], [Int])] = [
        (.lite0, [16, 24, 40, 80, 112, 192, 320], [1, 2, 2, 3, 3, 4, 1], [24, 40, 112]),
        (.lite1, [16, 24, 40, 80, 112, 192, 320], [1, 3, 3, 4, 4, 5, 1], [24, 40, 112]),
        (.lite2, [16, 24, 48, 88, 120, 208, 352], [1, 3, 3, 4, 4, 5, 1], [24, 48, 120]),
    ]
    for (variant, channels, repeats, taps) in expected {
        #expect(variant.stages.map(\.channels) == channels, "\(variant)")
        #expect(variant.stages.map(\.repeats) == repeats, "\(variant)")
        #expect(variant.stages.map(\.kernel) == [3, 3, 5, 3, 5, 5, 3], "\(variant)")
        #expect(variant.stages.map(\.stride) == [1, 2, 2, 2, 1, 2, 1], "\(variant)")
        let network = variant.architecture.make()
        #expect(network.featureChannels == taps, "\(variant)")
        #expect(network.embeddingChannels == 1280)
        #expect(BackboneArchitecture(rawValue: network.architecture)?.efficientNetLiteVariant == variant)
    }
    #expect(BackboneArchitecture.resnet18.efficientNetLiteVariant == nil)
    #expect(BackboneArchitecture.compact.efficientNetLiteVariant == nil)
}

@Test func liteFeatureMapsAtTheTrainingResolutions() {
    // 240 and 260 are not multiples of 32: "SAME" padding rounds every stride-2 output up.
    for (variant, side, grids) in [(EfficientNetLite.Variant.lite1, 240, [60, 30, 15]), (.lite2, 260, [65, 33, 17])] {
        let network = variant.architecture.make(classes: 3, seed: 2).frozen()
        let features = network.features(randomTensor([1, side, side, 3], seed: 6))
        #expect(features.maps.map { [$0.shape[1], $0.shape[2]] } == grids.map { [$0, $0] }, "\(variant)")
        #expect(features.embedding.shape == [1, 1280])
        #expect(features.logits!.scalars.allSatisfy { $0.isFinite })
    }
}

@Test func loadingStateChecksNamesAndShapes() throws {
    let a = BackboneArchitecture.compact.make(seed: 1), b = BackboneArchitecture.compact.make(seed: 2)
    try b.loadState(a.stateDictionary())
    #expect(a.stateDictionary()["stem.weight"] == b.stateDictionary()["stem.weight"])
    var broken = a.stateDictionary()
    broken["stem.weight"] = Tensor(zeros: [1, 1, 1, 1])
    broken.removeValue(forKey: "fc.bias")
    #expect(throws: StateLoadingError.self) { try b.loadState(broken) }
    do { try b.loadState(broken) } catch {
        #expect(error.description.contains("stem.weight has shape [1, 1, 1, 1]"))
        #expect(error.description.contains("fc.bias is missing"))
    }
}

@Test(arguments: BackboneArchitecture.allCases)
func completingStoppedFeaturesEqualsTheWholeForwardPass(_ architecture: BackboneArchitecture) {
    let frozen = architecture.make(classes: 7, seed: 4).frozen()
    let input = randomTensor([2, 48, 40, 3], seed: 5)
    let whole = frozen.features(input)
    let stopped = frozen.features(input, stoppingAfterLastTap: true)
    #expect(stopped.embedding.shape == [2, 0])
    let completed = frozen.completing(stopped)
    #expect(completed.embedding.scalars == whole.embedding.scalars)
    #expect(completed.logits?.scalars == whole.logits?.scalars)
    #expect(completed.maps.map(\.scalars) == whole.maps.map(\.scalars))
}

@Test func compactStageScalingScalesEveryMapAndKeepsTheLogits() {
    var rng = Xoshiro256(seed: 5)
    let network = CompactNet(classes: 4, using: &rng)
    randomizeNormalization(network, seed: 6)
    let input = randomTensor([2, 64, 64, 3], seed: 7)
    let before = network.frozen().features(input)
    let factors: [Float] = [3, 0.5, 7, 12]
    network.scaleStageOutputs(by: factors)
    let after = network.frozen().features(input)
    func worst(_ a: Tensor, _ b: Tensor, _ factor: Float) -> Float {
        let scale = b.scalars.map { abs($0) }.max() ?? 1
        return (zip(a.scalars, b.scalars).map { abs($0 - factor * $1) }.max() ?? 0) / max(scale * factor, 1e-6)
    }
    for index in 0..<3 {
        #expect(worst(after.maps[index], before.maps[index], factors[index]) < 1e-4, "map \(index)")
    }
    #expect(worst(after.embedding, before.embedding, factors[3]) < 1e-4, "embedding")
    #expect(worst(after.logits!, before.logits!, 1) < 1e-4, "logits")
}

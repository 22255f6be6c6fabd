import ModelFile
import NeuralNet
import TensorCore
import Testing

/// The network's state as a PyTorch checkpoint would hold it: OIHW convolutions, batch
/// counters, optionally a DataParallel prefix.
func pytorchTensors(of network: any Backbone, prefix: String = "") -> [NamedTensor] {
    var tensors: [NamedTensor] = []
    for (name, variable) in network.namedState {
        let value = variable.value.rank == 4 ? hwioToOIHW(variable.value) : variable.value
        tensors.append(NamedTensor(name: prefix + name, shape: value.shape, scalars: value.scalars))
        if name.hasSuffix("running_var") {
            let counter = prefix + name.replacingOccurrences(of: "running_var", with: "num_batches_tracked")
            tensors.append(NamedTensor(name: counter, shape: [], scalars: [7], sourceType: .int64))
        }
    }
    return tensors
}

@Test(arguments: [BackboneArchitecture.resnet18, .efficientNetLite0, .efficientNetLite1, .efficientNetLite2])
func pytorchLayoutWeightsLoadExactly(_ architecture: BackboneArchitecture) throws {
    let source = architecture.make(classes: 10, seed: 3)
    let target = architecture.make(classes: 10, seed: 4)
    try target.loadPyTorchWeights(pytorchTensors(of: source, prefix: "module."), path: "test.pth")
    let a = source.stateDictionary(), b = target.stateDictionary()
    #expect(a.count == b.count)
    for (name, value) in a { #expect(b[name] == value, "\(name) differs after import") }
}

@Test func oihwAndHWIOAreInverse() {
    let w = randomTensor([5, 3, 2, 4], seed: 1)
    #expect(hwioToOIHW(oihwToHWIO(w)) == w)
    // [O, I, KH, KW] element (o=4, i=2, y=1, x=3) lands at [KH, KW, I, O] (1, 3, 2, 4).
    #expect(oihwToHWIO(w)[1, 3, 2, 4] == w[4, 2, 1, 3])
}

@Test func misfittingWeightsNameEveryProblemAndChangeNothing() {
    let network = BackboneArchitecture.resnet18.make(classes: 10, seed: 1)
    let before = network.stateDictionary()
    var tensors = pytorchTensors(of: BackboneArchitecture.resnet18.make(classes: 10, seed: 2))
    tensors.removeAll { $0.name == "layer3.1.bn2.running_mean" }
    let index = tensors.firstIndex { $0.name == "layer1.0.conv1.weight" }!
    tensors[index] = NamedTensor(name: "layer1.0.conv1.weight", shape: [64, 64, 5, 5], scalars: [Float](repeating: 0, count: 64 * 64 * 25))
    tensors.append(NamedTensor(name: "head.extra.weight", shape: [2], scalars: [1, 2]))
    do {
        try network.loadPyTorchWeights(tensors, path: "bad.pth")
        Issue.record("misfitting weights loaded")
    } catch {
        let text = error.description
        #expect(text.hasPrefix("bad.pth: "))
        #expect(text.contains("layer3.1.bn2.running_mean is missing"))
        #expect(text.contains("layer1.0.conv1.weight has shape [64, 64, 5, 5], resnet18 needs [64, 64, 3, 3]"))
        #expect(text.contains("head.extra.weight is not part of resnet18"))
    }
    #expect(network.stateDictionary()["fc.weight"] == before["fc.weight"])
}

/// timm numbers the blocks per stage; these are the stage repeats of its Lite models
/// (`_gen_efficientnet_lite`: first and last stage fixed, the others ceil(depth x repeats)).
@Test(arguments: [(EfficientNetLite.Variant.lite0, [1, 2, 2, 3, 3, 4, 1]),
                  (.lite1, [1, 3, 3, 4, 4, 5, 1]), (.lite2, [1, 3, 3, 4, 4, 5, 1])])
func timmNamesCoverEveryLiteTensor(_ variant: EfficientNetLite.Variant, repeats: [Int]) {
    // timm: stage 0 is depthwise-separable, later stages inverted residuals.
    var timm: [String] = ["conv_stem.weight", "classifier.weight", "classifier.bias", "conv_head.weight"]
    for suffix in ["weight", "bias", "running_mean", "running_var"] { timm += ["bn1.\(suffix)", "bn2.\(suffix)"] }
    for (stage, count) in repeats.enumerated() {
        for j in 0..<count {
            let convs = stage == 0 ? ["conv_dw", "conv_pw"] : ["conv_pw", "conv_dw", "conv_pwl"]
            let norms = stage == 0 ? ["bn1", "bn2"] : ["bn1", "bn2", "bn3"]
            timm += convs.map { "blocks.\(stage).\(j).\($0).weight" }
            for n in norms { for suffix in ["weight", "bias", "running_mean", "running_var"] { timm.append("blocks.\(stage).\(j).\(n).\(suffix)") } }
        }
    }
    let ours = Set(variant.architecture.make().namedState.map(\.name))
    let mapped = timm.compactMap { timmLiteName($0, variant: variant) }
    #expect(mapped.count == timm.count)
    #expect(Set(mapped) == ours)
    // A block past the variant's stage is not silently renumbered into the next stage.
    #expect(timmLiteName("blocks.1.\(repeats[1]).conv_pw.weight", variant: variant) == nil)
}

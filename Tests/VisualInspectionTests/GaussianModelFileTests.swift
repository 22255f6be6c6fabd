import Anomaly
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// A model whose scorer is in Gaussian mode (untrained compact backbone, 48 px, aligned parts).
func gaussianModel(channels: Int = 0) throws -> InspectionModel {
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    options.scorer.mode = .positionGaussian
    options.scorer.gaussianChannels = channels
    options.scorer.augmentation = .mirrors
    return try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: (0..<6).map { testPart(seed: $0) },
                                      classes: [], options: options)
}

@Test(arguments: [0, 30])
func aGaussianModelWrittenAndReadBackInspectsIdentically(channels: Int) throws {
    let model = try gaussianModel(channels: channels)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("gaussian-\(getpid())-\(channels).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let file = try ModelFile(contentsOfFile: path)
    #expect(file.metadata["layout"]?.intValue == 2)
    #expect(!file.tensors.contains { $0.name == "anomaly.bank" })
    let loaded = try InspectionModel(contentsOfFile: path)
    #expect(loaded.scorer?.options == model.scorer?.options)
    #expect(loaded.scorer?.calibration == model.scorer?.calibration)
    let (a, b) = (try #require(model.scorer?.gaussian), try #require(loaded.scorer?.gaussian))
    #expect(a.channels == b.channels && a.gridWidth == b.gridWidth && a.gridHeight == b.gridHeight)
    #expect(a.sampleCount == 24 && b.sampleCount == 24)
    #expect(a.gaussian.meanValues == b.gaussian.meanValues)
    #expect(a.gaussian.inverseFactorValues == b.gaussian.inverseFactorValues)
    let x = Inspector(model: model), y = Inspector(model: loaded)
    for seed in [100, 101] {
        for defect in [false, true] {
            let image = testPart(seed: seed, defect: defect)
            let (p, q) = (x.inspect(image), y.inspect(image))
            #expect(p.anomalyScore == q.anomalyScore)
            #expect(p.anomalyMap == q.anomalyMap)
            #expect(p.boxes == q.boxes)
        }
    }
    #expect(x.inspect(testPart(seed: 101, defect: true)).score > x.inspect(testPart(seed: 101)).score)
}

@Test func aMemoryBankModelIsStillWrittenAsLayoutOne() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("bank-layout-\(getpid()).vimodel").path
    defer { unlink(path) }
    try smallModel().write(toFile: path)
    #expect(try ModelFile(contentsOfFile: path).metadata["layout"]?.intValue == 1)
}

@Test func inconsistentGaussianTensorsGiveATypedErrorNamingTheFile() throws {
    let file = try gaussianModel(channels: 30).modelFile()
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("gaussian-bad-\(getpid()).vimodel").path
    defer { unlink(path) }
    func tampered(_ change: (inout ModelFile) -> Void) -> ModelFile {
        var copy = file
        change(&copy)
        return copy
    }
    func anomaly(_ file: inout ModelFile, _ key: String, _ value: JSONValue?) {
        guard case .object(var part)? = file.metadata["anomaly"] else { return }
        part[key] = value
        file.metadata["anomaly"] = .object(part)
    }
    func dropRow(_ name: String) -> (inout ModelFile) -> Void {
        { file in
            let i = file.tensors.firstIndex { $0.name == name }!
            let t = file.tensors[i]
            let width = t.shape[1]
            file.tensors[i] = NamedTensor(name: name, shape: [t.shape[0] - 1, width], scalars: Array(t.scalars.dropLast(width)))
        }
    }
    let cases: [(String, ModelFile)] = [
        ("mean rows", tampered(dropRow("anomaly.mean"))),
        ("factor rows", tampered(dropRow("anomaly.inverse_cholesky"))),
        ("no factors", tampered { $0.tensors.removeAll { $0.name == "anomaly.inverse_cholesky" } }),
        ("grid", tampered { anomaly(&$0, "grid_width", .number(3)) }),
        ("channels", tampered { anomaly(&$0, "gaussian_channels", .array([.number(5), .number(2)])) }),
        ("channel count", tampered { anomaly(&$0, "gaussian_channels", .array([.number(1), .number(2)])) }),
        ("no channels", tampered { anomaly(&$0, "gaussian_channels", nil) }),
        ("not finite", tampered { file in
            let i = file.tensors.firstIndex { $0.name == "anomaly.mean" }!
            file.tensors[i].scalars[7] = .infinity
        }),
    ]
    for (name, bad) in cases {
        try bad.write(toFile: path)
        do {
            _ = try InspectionModel(contentsOfFile: path)
            Issue.record("\(name): an inconsistent Gaussian part was accepted")
        } catch {
            #expect(error.description.contains(path), "\(name): \(error)")
            #expect(error.description.contains("vinspect train"), "\(name): \(error)")
        }
    }
}

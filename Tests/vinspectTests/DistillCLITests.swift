import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

@Test func distillHelpNamesItsOptions() throws {
    let result = try vinspect(["backbone", "distill", "--help"])
    #expect(result.status == 0)
    for option in ["--teacher", "--output", "--steps", "--batch", "--image-size", "--seed"] {
        #expect(result.output.contains(option), "help lacks \(option)")
    }
}

@Test func distillWritesALoadableBackboneThatRecordsItsCommand() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vinspect-distill-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    // A compact teacher keeps the run tiny (no principal axes: the widths already agree).
    let teacherPath = folder.appendingPathComponent("teacher.vimodel").path
    try BackboneStore.save(BackboneArchitecture.compact.make(classes: 4, seed: 3), to: teacherPath)
    let outputPath = folder.appendingPathComponent("student.vimodel").path
    let result = try vinspect(["backbone", "distill", "--teacher", teacherPath, "--output", outputPath,
                               "--steps", "3", "--batch", "2", "--image-size", "32", "--seed", "5"])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.output.contains("step 3/3"))
    let student = try BackboneStore.load(from: outputPath)
    #expect(student.architecture == "compact")
    let record = try ModelFile(contentsOfFile: outputPath).metadata["distillation"]?.objectValue
    #expect(record?["command"]?.stringValue?.contains("--steps 3 --batch 2 --image-size 32 --seed 5") == true)
    #expect(record?["steps_done"]?.numberValue == 3)

    let refused = try vinspect(["backbone", "distill", "--teacher", teacherPath, "--output", outputPath, "--image-size", "40"])
    #expect(refused.status != 0 && refused.error.contains("multiple of 32"))
}

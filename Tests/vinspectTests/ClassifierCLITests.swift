import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

@Test func addClassTwiceWithTheSameImagesChangesNothing() throws {
    // Once with the add-class subcommand, once with its alias `train --add-class`.
    let folders = try LineFolders("addtwice")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try vinspect(["train", "--good", folders.good, "--backbone", "compact", "--image-size", "64", "--layers", "0,1",
                          "--output", folders.model]).status == 0)
    let scratch = folders.classes + "/scratch"
    let first = try vinspect(["add-class", scratch, "--to", folders.model])
    #expect(first.output.contains("added 3 image(s) to class scratch"), "\(first.output)")
    #expect(first.status == 0, "\(first.error)")
    let once = try InspectionModel(contentsOfFile: folders.model)
    let second = try vinspect(["train", "--add-class", scratch, "--to", folders.model])
    #expect(second.status == 0, "\(second.error)")
    #expect(second.output.contains("now 3 shots"), "\(second.output)")
    #expect(second.output.contains("already"), "\(second.output)")
    let twice = try InspectionModel(contentsOfFile: folders.model)
    #expect(twice.classifier?.classifier == once.classifier?.classifier)
}

@Test func addClassRefusesNamesThatCannotBeReported() throws {
    let folders = try LineFolders("badname")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let before = try Data(contentsOf: URL(fileURLWithPath: folders.model))
    for name in ["", "  ", "a/b", "tab\there"] {
        let result = try vinspect(["train", "--add-class", folders.classes + "/spot", "--to", folders.model, "--name", name])
        #expect(result.status == 3, "--name \(name.debugDescription): \(result.output)")
        #expect(result.error.contains("--name") && result.error.contains("class name"), "\(result.error)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: folders.model)) == before)
        let direct = try vinspect(["add-class", folders.classes + "/spot", "--to", folders.model, "--name", name])
        #expect(direct.status == 3 && direct.error.contains("--name"), "add-class --name \(name.debugDescription): \(direct.error)")
        #expect(direct.error.contains("vinspect add-class"), "usage line of the subcommand: \(direct.error)")
    }
    #expect(try vinspect(["add-class", folders.root.appendingPathComponent("missing").path, "--to", folders.model]).error.contains("not a folder"))
    #expect(try Data(contentsOf: URL(fileURLWithPath: folders.model)) == before)
    #expect(!FileManager.default.fileExists(atPath: folders.model + ".partial"))
}

@Test func aClassesOnlyModelWithoutGoodSaysItCannotPassAnyPart() throws {
    let folders = try LineFolders("nogood")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    let trained = try vinspect(["train", "--classes", folders.classes, "--backbone", "compact", "--image-size", "64",
                                "--output", folders.model])
    #expect(trained.status == 0, "\(trained.error)")
    #expect(trained.error.contains("cannot pass any part"), "\(trained.error)")
    #expect(trained.error.contains("--good") && trained.error.contains("good sub-folder"), "\(trained.error)")
    #expect(try InspectionModel(contentsOfFile: folders.model).canPassParts == false)
    let info = try vinspect(["info", folders.model])
    #expect(info.status == 0)
    #expect(info.output.contains("cannot pass any part"), "\(info.output)")

    // With a good class folder it can, and nothing is said.
    try FileManager.default.copyItem(atPath: folders.good, toPath: folders.classes + "/good")
    let withGood = try vinspect(["train", "--classes", folders.classes, "--backbone", "compact", "--image-size", "64",
                                 "--output", folders.model])
    #expect(withGood.status == 0, "\(withGood.error)")
    #expect(!withGood.error.contains("cannot pass"))
    #expect(try InspectionModel(contentsOfFile: folders.model).canPassParts)
    #expect(!(try vinspect(["info", folders.model])).output.contains("cannot pass"))
}

@Test func theREADMEsFirstProgramIsTheOneCIBuildsAndRuns() throws {
    // The README's library program is `.ci/consumer`'s main.swift, which `.ci/run` builds
    // against a tagged clone and runs: the snippet cannot drift from code that compiles.
    let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
    let program = try String(contentsOf: repositoryRoot.appendingPathComponent(".ci/consumer/Sources/LineApp/main.swift"), encoding: .utf8)
    #expect(readme.contains("```swift\n" + program.trimmingCharacters(in: .whitespacesAndNewlines) + "\n```"))
}

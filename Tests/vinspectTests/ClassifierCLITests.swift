import Foundation
import Testing
import VisualInspection

@Test func addClassTwiceWithTheSameImagesChangesNothing() throws {
    let folders = try LineFolders("addtwice")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try vinspect(["train", "--good", folders.good, "--backbone", "compact", "--image-size", "64", "--layers", "0,1",
                          "--output", folders.model]).status == 0)
    let scratch = folders.classes + "/scratch"
    let first = try vinspect(["train", "--add-class", scratch, "--to", folders.model])
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
    }
    #expect(!FileManager.default.fileExists(atPath: folders.model + ".partial"))
}

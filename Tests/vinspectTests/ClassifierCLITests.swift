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

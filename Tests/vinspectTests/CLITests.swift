import Foundation
import Testing

/// The repository root, found from this source file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built `vinspect` executable, next to the test bundle.
let vinspectExecutable: URL = {
    var directory = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("vinspect")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return directory.appendingPathComponent("vinspect")
}()

struct RunResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `vinspect` with the arguments, from the repository root. A run still going after
/// `deadline` seconds is killed (its status is then that of SIGKILL, 9, and the test
/// fails on it instead of hanging CI).
func vinspect(_ arguments: [String], deadline: Double = 600) throws -> RunResult {
    let process = Process()
    process.executableURL = vinspectExecutable
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let pid = process.processIdentifier
    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + deadline, execute: watchdog)
    defer { watchdog.cancel() }
    // Read before waiting so that a full pipe cannot block the child.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus,
                     output: String(decoding: outData, as: UTF8.self),
                     error: String(decoding: errData, as: UTF8.self))
}

@Test func helpListsTheSubcommandsAndExitCodes() throws {
    let result = try vinspect(["--help"])
    #expect(result.status == 0)
    #expect(result.output.contains("images"))
    #expect(result.output.contains("fewshot-train") && result.output.contains("fewshot-eval"))
    #expect(result.output.contains("could not run"))
}

@Test func imagesDescribesAFolderOfGoodImages() throws {
    let result = try vinspect(["images", "Fixtures/codec/rgb8.png", "Fixtures/codec/grey16.png"])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.output.contains("Fixtures/codec/rgb8.png: 37x29 RGB 8-bit, PNG"))
    #expect(result.output.contains("Fixtures/codec/grey16.png: 37x29 grey 16-bit, PNG"))
    #expect(result.output.contains("2 files: 2 decoded, 0 unreadable"))
}

@Test func imagesReportsEveryBrokenFileAndGoesOn() throws {
    let result = try vinspect(["images", "Fixtures/broken", "Fixtures/codec/rgb8.png"])
    #expect(result.status == 2)
    let lines = result.output.split(separator: "\n")
    // Folder entries come sorted, joined with the folder as given.
    #expect(lines.first?.hasPrefix("Fixtures/broken/bad-crc.png: error: Fixtures/broken/bad-crc.png: damaged PNG") == true)
    #expect(result.output.contains("Fixtures/broken/document.png: error: Fixtures/broken/document.png: not a PNG or JPEG image (it is a PDF document)"))
    #expect(result.output.contains("Fixtures/codec/rgb8.png: 37x29 RGB"))
    let summary = String(lines.last ?? "")
    #expect(summary.hasPrefix("14 files: 1 decoded, 13 unreadable; mean decode time "))
}

@Test func badOptionsGiveTheCouldNotRunCode() throws {
    let missing = try vinspect(["images"])
    #expect(missing.status == 3)
    #expect(missing.error.contains("Missing expected argument"))
    let invalid = try vinspect(["images", "--max-pixels", "0", "Fixtures/codec"])
    #expect(invalid.status == 3)
    #expect(invalid.error.contains("--max-pixels must be positive"))
    let unknown = try vinspect(["frobnicate"])
    #expect(unknown.status == 3)
}

@Test func anEmptyFolderIsAnErrorNotSilence() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vinspect-empty-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let result = try vinspect(["images", folder.path], deadline: 60)
    #expect(result.status == 2)
    #expect(result.output.contains("\(folder.path): error:") && result.output.contains("no PNG or JPEG images"), "\(result.output)")
}

@Test func messagesNameTheSubcommandAndRealOptions() throws {
    // A negative number is a value out of range, not a missing one.
    let jobs = try vinspect(["inspect", "m.vimodel", "x.png", "--jobs", "-1"], deadline: 60)
    #expect(jobs.status == 3 && jobs.error.contains("--jobs must be between 1 and 256"), "\(jobs.error)")
    // An image where the model belongs: what it is and what to give instead.
    let swapped = try vinspect(["inspect", "Fixtures/codec/rgb8.png", "Fixtures/codec/rgb8.png"], deadline: 60)
    #expect(swapped.status == 3 && swapped.error.contains("it is a PNG image") && swapped.error.contains("vinspect inspect MODEL IMAGE"),
            "\(swapped.error)")
    #expect(!swapped.error.contains("WeightImporter"))
    // Errors found while running show the failing subcommand's usage.
    #expect(swapped.error.contains("Usage: vinspect inspect <model>"), "\(swapped.error)")
    let train = try vinspect(["train", "--good", "/nonexistent-\(getpid())", "--output", "/tmp/never-\(getpid()).vimodel"], deadline: 60)
    #expect(train.status == 3 && train.error.contains("Usage: vinspect train"), "\(train.error)")
    // The pixel limit's message names an option the command has, and the option works.
    let limited = try vinspect(["images", "Fixtures/codec/rgb8.png", "--max-pixels", "100"], deadline: 60)
    #expect(limited.status == 2 && limited.output.contains("--max-pixels (vinspect inspect, train, images)"), "\(limited.output)")
    for command in ["inspect", "train"] {
        #expect(try vinspect([command, "--help"]).output.contains("--max-pixels"))
    }
}

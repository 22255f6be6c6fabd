import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// A training set on disk: good parts, two defect classes, and a mixed folder to inspect.
struct LineFolders {
    let root: URL
    var good: String { root.appendingPathComponent("good").path }
    var classes: String { root.appendingPathComponent("classes").path }
    var line: String { root.appendingPathComponent("line").path }
    var model: String { root.appendingPathComponent("model.vimodel").path }

    /// A part with a blob defect at one of two places (two "types" the classifier can tell apart).
    static func blobPart(seed: Int, at position: (Int, Int)) -> Image {
        let base = partImage(seed: seed, defect: false)
        var pixels = base.pixels
        for y in 0..<48 {
            for x in 0..<48 where (x - position.0) * (x - position.0) + (y - position.1) * (y - position.1) < 16 {
                pixels[y * 48 + x] = 250
            }
        }
        return Image(width: 48, height: 48, channels: 1, pixels: pixels)
    }

    init(_ name: String) throws {
        root = try temporaryFolder(name)
        let fm = FileManager.default
        for sub in ["good", "classes/scratch", "classes/spot", "line/a", "line/b"] {
            try fm.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for i in 0..<6 { try partImage(seed: i, defect: false).write(toFile: "\(good)/g\(i).png") }
        for i in 0..<3 {
            try partImage(seed: 40 + i, defect: true).write(toFile: "\(classes)/scratch/s\(i).png")
            try LineFolders.blobPart(seed: 50 + i, at: (14, 30)).write(toFile: "\(classes)/spot/p\(i).png")
        }
        // The line: good and defective parts, two files with the same name in different
        // folders, a corrupt PNG, a text file named .jpg.
        try partImage(seed: 100, defect: false).write(toFile: "\(line)/a/part.png")
        try partImage(seed: 101, defect: true).write(toFile: "\(line)/b/part.png")
        try partImage(seed: 102, defect: false).write(toFile: "\(line)/c_good.png")
        try LineFolders.blobPart(seed: 103, at: (14, 30)).write(toFile: "\(line)/d_spot.png")
        let png = try partImage(seed: 104, defect: false).pngData()
        try Data(png.prefix(png.count / 2)).write(to: URL(fileURLWithPath: "\(line)/e_truncated.png"))
        try Data("not an image\n".utf8).write(to: URL(fileURLWithPath: "\(line)/f_text.jpg"))
    }

    /// Trains the model with the untrained compact backbone at 64 px (fast; the tests check
    /// the plumbing, not accuracy).
    func train(_ extra: [String] = []) throws -> RunResult {
        try vinspect(["train", "--good", good, "--classes", classes, "--backbone", "compact", "--image-size", "64",
                      "--layers", "0,1", "--output", model] + extra)
    }
}

func jsonLines(_ text: String) -> [[String: Any]] {
    text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

@Test func trainThenInspectWritesOneRecordPerInputInOrderWithErrorsForBadFiles() throws {
    let folders = try LineFolders("roundtrip")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    let trained = try folders.train()
    #expect(trained.status == 0, "\(trained.error)")
    #expect(trained.output.contains("classes:      scratch (3), spot (3)"))

    let report = folders.root.appendingPathComponent("report.jsonl").path
    let heatmaps = folders.root.appendingPathComponent("heatmaps").path
    let result = try vinspect(["inspect", folders.model, folders.line, "--report", report, "--heatmaps", heatmaps, "--jobs", "2"])
    // Two unreadable inputs: the run completes with status 2.
    #expect(result.status == 2, "\(result.error)")
    let records = jsonLines(try String(contentsOfFile: report, encoding: .utf8))
    let paths = records.compactMap { $0["path"] as? String }
    #expect(paths == ["a/part.png", "b/part.png", "c_good.png", "d_spot.png", "e_truncated.png", "f_text.jpg"].map { "\(folders.line)/\($0)" })
    for record in records {
        for key in ["path", "verdict", "score", "anomaly_score", "threshold", "defect_type", "type_confidence", "boxes", "heatmap",
                    "error", "milliseconds"] {
            #expect(record.keys.contains(key), "record lacks \(key)")
        }
    }
    let errors = records.filter { $0["verdict"] as? String == "error" }
    #expect(errors.count == 2)
    #expect((errors[0]["error"] as? String)?.contains("e_truncated.png") == true)
    #expect((errors[1]["error"] as? String)?.contains("f_text.jpg") == true)
    #expect(errors.allSatisfy { $0["heatmap"] is NSNull && $0["score"] is NSNull })
    // The defective part scores above the good ones of the same line.
    func score(_ name: String) -> Double { records.first { ($0["path"] as? String)?.hasSuffix(name) == true }?["score"] as? Double ?? -1 }
    #expect(score("b/part.png") > score("a/part.png"))
    #expect(score("b/part.png") > score("c_good.png"))
    // Same-named files in different folders get different heat maps, and both exist.
    let maps = records.compactMap { $0["heatmap"] as? String }
    #expect(maps.count == 4)
    #expect(Set(maps).count == 4)
    for map in maps {
        let image = try Image(contentsOfFile: map)
        #expect(image.width == 48 && image.height == 48 && image.channels == 3)
    }
    #expect(result.error.contains("6 image(s)"))
    #expect(result.error.contains("2 error"))
}

@Test func inspectExitCodesAndCSVReport() throws {
    let folders = try LineFolders("exitcodes")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let readable = ["\(folders.line)/a/part.png", "\(folders.line)/b/part.png", "\(folders.line)/c_good.png"]
    let csv = folders.root.appendingPathComponent("report.csv").path
    let plain = try vinspect(["inspect", folders.model] + readable + ["--report", csv])
    #expect(plain.status == 0, "\(plain.error)")
    let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
    #expect(rows.first == "path,verdict,score,anomaly_score,threshold,defect_type,type_confidence,boxes,heatmap,error,milliseconds")
    #expect(rows.count == 4)
    #expect(rows[1].hasPrefix("\(folders.line)/a/part.png,"))

    // Without --report the records go to standard output.
    let stdout = try vinspect(["inspect", folders.model] + readable)
    #expect(jsonLines(stdout.output).count == 3)
    let defects = jsonLines(stdout.output).filter { $0["verdict"] as? String == "defect" }.count
    let failing = try vinspect(["inspect", folders.model] + readable + ["--fail-on-defect"])
    #expect(failing.status == (defects > 0 ? 1 : 0))

    let missingModel = try vinspect(["inspect", folders.root.appendingPathComponent("nope.vimodel").path] + readable)
    #expect(missingModel.status == 3)
    #expect(missingModel.error.contains("nope.vimodel"))
    #expect(!missingModel.error.contains("Fatal error"))

    // A damaged model: a byte flipped in the middle is caught by the checksum.
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folders.model)))
    bytes[bytes.count / 2] ^= 0xFF
    let damaged = folders.root.appendingPathComponent("damaged.vimodel").path
    try Data(bytes).write(to: URL(fileURLWithPath: damaged))
    let bad = try vinspect(["inspect", damaged] + readable)
    #expect(bad.status == 3)
    #expect(bad.error.contains("damaged.vimodel"))

    let badJobs = try vinspect(["inspect", folders.model, readable[0], "--jobs", "0"])
    #expect(badJobs.status == 3)
    #expect(badJobs.error.contains("--jobs"))
}

@Test func infoAndAddClassLeaveTheRestOfTheModelAlone() throws {
    let folders = try LineFolders("addclass")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let before = try InspectionModel(contentsOfFile: folders.model)

    let dents = folders.root.appendingPathComponent("dent").path
    try FileManager.default.createDirectory(atPath: dents, withIntermediateDirectories: true)
    for i in 0..<2 { try LineFolders.blobPart(seed: 70 + i, at: (34, 14)).write(toFile: "\(dents)/d\(i).png") }
    let added = try vinspect(["train", "--add-class", dents, "--to", folders.model])
    #expect(added.status == 0, "\(added.error)")
    let after = try InspectionModel(contentsOfFile: folders.model)
    let oldClasses = before.classifier!.classifier.classes
    let newClasses = after.classifier!.classifier.classes
    #expect(newClasses.map(\.name) == ["scratch", "spot", "dent"])
    #expect(Array(newClasses.prefix(2)) == oldClasses)
    #expect(after.scorer!.calibration == before.scorer!.calibration)
    #expect(after.scorer!.memory!.bank.features.scalars == before.scorer!.memory!.bank.features.scalars)

    let info = try vinspect(["info", folders.model])
    #expect(info.status == 0)
    for text in ["compact", "64x64", "6 good images", "memory bank", "scratch (3), spot (3), dent (2)", "threshold:", "created:"] {
        #expect(info.output.contains(text), "info lacks \(text)")
    }
    let noModel = try vinspect(["info", folders.good + "/g0.png"])
    #expect(noModel.status == 3)
    #expect(noModel.error.contains("g0.png"))
}

@Test func anInterruptedRunKeepsEveryFinishedRecord() throws {
    let folders = try LineFolders("interrupt")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let many = folders.root.appendingPathComponent("many")
    try FileManager.default.createDirectory(at: many, withIntermediateDirectories: true)
    let png = try partImage(seed: 7, defect: false).pngData()
    for i in 0..<400 { try Data(png).write(to: many.appendingPathComponent(String(format: "%04d.png", i))) }
    let report = folders.root.appendingPathComponent("partial.jsonl").path

    let process = Process()
    process.executableURL = vinspectExecutable
    process.arguments = ["inspect", folders.model, many.path, "--report", report, "--quiet"]
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Wait for some records, then kill the process without warning.
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline {
        let count = (try? String(contentsOfFile: report, encoding: .utf8))?.split(separator: "\n").count ?? 0
        if count >= 5 { break }
        usleep(20_000)
    }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    let text = try String(contentsOfFile: report, encoding: .utf8)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()  // text ends with a newline
    #expect(text.hasSuffix("\n"))
    #expect(lines.count >= 5 && lines.count < 400)
    let records = jsonLines(text)
    #expect(records.count == lines.count)
    #expect(records.enumerated().allSatisfy { ($0.element["path"] as? String) == many.appendingPathComponent(String(format: "%04d.png", $0.offset)).path })
}

@Test func trainAndInspectHelpExplainTheOptions() throws {
    let train = try vinspect(["train", "--help"])
    #expect(train.status == 0)
    for option in ["--good", "--classes", "--shots", "--seed", "--backbone", "--output", "--add-class", "--to", "--roi", "--augment"] {
        #expect(train.output.contains(option), "train help lacks \(option)")
    }
    let inspect = try vinspect(["inspect", "--help"])
    for option in ["--report", "--heatmaps", "--jobs", "--fail-on-defect", "Exit status"] {
        #expect(inspect.output.contains(option), "inspect help lacks \(option)")
    }
    let nothing = try vinspect(["train", "--output", "x.vimodel"])
    #expect(nothing.status == 3)
    #expect(nothing.error.contains("--good"))
}

@Test func theIntegratorExampleTrainsAndInspects() throws {
    let folders = try LineFolders("example")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    let process = Process()
    process.executableURL = vinspectExecutable.deletingLastPathComponent().appendingPathComponent("inspect-folder-example")
    process.arguments = [folders.good, folders.line, "compact"]
    process.currentDirectoryURL = folders.root
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(text)")
    let lines = text.split(separator: "\n")
    #expect(lines.count == 6)
    #expect(lines.filter { $0.contains("error:") }.count == 2)
    #expect(lines.first?.hasPrefix("\(folders.line)/a/part.png ") == true)
    #expect(FileManager.default.fileExists(atPath: folders.root.appendingPathComponent("example.vimodel").path))
}

@Test func demoTrainsOnTheFixturesAndWritesAReportAndHeatMaps() throws {
    let output = try temporaryFolder("demo")
    defer { try? FileManager.default.removeItem(at: output) }
    let result = try vinspect(["demo", "--output", output.path])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.output.contains("verdicts right:"))
    let records = jsonLines(try String(contentsOfFile: output.appendingPathComponent("report.jsonl").path, encoding: .utf8))
    let lineImages = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("Fixtures/demo/line").path)
    #expect(records.count == lineImages.count)
    #expect(records.allSatisfy { $0["verdict"] as? String != "error" })
    // One heat map per image, under the input's own folders.
    let maps = try FileManager.default.subpathsOfDirectory(atPath: output.appendingPathComponent("heatmaps").path).filter { $0.hasSuffix(".png") }
    #expect(maps.count == lineImages.count)
    #expect(records.allSatisfy { record in
        (record["heatmap"] as? String) == output.appendingPathComponent("heatmaps").path + "/" + Heatmap.fileName(for: record["path"] as! String)
    })
    #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("model.vimodel").path))
}

@Test(.timeLimit(.minutes(3)))
func aFIFOAmongTheInputsIsAnErrorRecordNotAHang() throws {
    let folders = try LineFolders("fifo")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    // A camera tool's pipe, given by name and lying in a walked folder: nobody writes to it,
    // so opening it for reading the ordinary way would wait forever.
    let pipe = folders.root.appendingPathComponent("camera.png").path
    #expect(mkfifo(pipe, 0o600) == 0)
    #expect(mkfifo("\(folders.line)/a/zz_pipe.png", 0o600) == 0)
    let start = Date()
    let result = try vinspect(["inspect", folders.model, pipe, "\(folders.line)/a", "--jobs", "2"], deadline: 60)
    #expect(Date().timeIntervalSince(start) < 60)
    #expect(result.status == 2, "\(result.error)")
    let records = jsonLines(result.output)
    // Named, the pipe is an error record; in a walked folder it is not taken at all.
    #expect(records.compactMap { $0["path"] as? String } == [pipe, "\(folders.line)/a/part.png"])
    #expect(records.map { $0["verdict"] as? String } == ["error", "ok"])
    #expect((records[0]["error"] as? String)?.contains("FIFO") == true, "\(records[0])")
    // The same for `images` and for a model path.
    let images = try vinspect(["images", pipe, "Fixtures/codec/rgb8.png"], deadline: 60)
    #expect(images.status == 2 && images.output.contains("FIFO") && images.output.contains("37x29"), "\(images.output)")
    let model = try vinspect(["inspect", pipe, "Fixtures/codec/rgb8.png"], deadline: 60)
    #expect(model.status == 3 && model.error.contains("FIFO"), "\(model.error)")
}

/// A 48 x 48 grey texture of upright stripes of the given period with a little grain.
func stripes(period: Double, seed: Int) -> Image {
    var pixels = [UInt8]()
    for y in 0..<48 {
        for x in 0..<48 {
            let v = 128 + 90 * sin(Double(x) * 2 * .pi / period + Double(seed)) + Double((x * 7 + y * 13 + seed * 31) % 11)
            pixels.append(UInt8(max(0, min(255, v))))
        }
    }
    return Image(width: 48, height: 48, channels: 1, pixels: pixels)
}

@Test(.timeLimit(.minutes(3)))
func refiningTypesOverTheRunFixesTypesThatOneAtypicalExampleGotWrong() throws {
    let root = try temporaryFolder("refine")
    defer { try? FileManager.default.removeItem(at: root) }
    let fm = FileManager.default
    for sub in ["classes/fine", "classes/coarse", "line"] {
        try fm.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    // One example per type, the coarse one far coarser than the coarse parts on the line:
    // on its own, a coarse part lies nearer the fine example.
    try stripes(period: 5, seed: 1).write(toFile: root.appendingPathComponent("classes/fine/f.png").path)
    try stripes(period: 24, seed: 2).write(toFile: root.appendingPathComponent("classes/coarse/c.png").path)
    var expected: [String] = []
    for i in 0..<16 {
        let coarse = i % 2 == 1
        let name = String(format: "%02d_%@.png", i, coarse ? "coarse" : "fine")
        try stripes(period: coarse ? 11 + Double(i % 4) * 0.5 : 5 + Double(i % 3) * 0.5, seed: 10 + i)
            .write(toFile: root.appendingPathComponent("line/\(name)").path)
        expected.append(coarse ? "coarse" : "fine")
    }
    let model = root.appendingPathComponent("m.vimodel").path
    let trained = try vinspect(["train", "--classes", root.appendingPathComponent("classes").path, "--backbone", "compact",
                                "--image-size", "64", "--output", model], deadline: 120)
    #expect(trained.status == 0, "\(trained.error)")
    func run(_ steps: Int) throws -> [[String: Any]] {
        let result = try vinspect(["inspect", model, root.appendingPathComponent("line").path, "--refine-types", "\(steps)"], deadline: 120)
        #expect(result.status == 0, "\(result.error)")
        return jsonLines(result.output)
    }
    let (alone, together) = (try run(0), try run(3))
    func right(_ records: [[String: Any]]) -> Int { zip(records, expected).filter { ($0.0["defect_type"] as? String) == $0.1 }.count }
    print("stripes typed right: alone \(right(alone)), together \(right(together)) of 16")
    #expect(right(together) > right(alone))
    // Same records in the same order; only the types (and their confidences) may change.
    #expect(together.map { $0["path"] as? String } == alone.map { $0["path"] as? String })
    #expect(together.map { $0["score"] as? Double } == alone.map { $0["score"] as? Double })
    #expect(together.map { $0["verdict"] as? String } == alone.map { $0["verdict"] as? String })
    let bad = try vinspect(["inspect", model, root.appendingPathComponent("line").path, "--refine-types", "-1"], deadline: 60)
    #expect(bad.status == 3 && bad.error.contains("--refine-types"))
}

@Test(.timeLimit(.minutes(3)))
func outputsNeverReplaceInputsAndFolderWalksTakeImagesOnly() throws {
    let folders = try LineFolders("outputs")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let fm = FileManager.default
    let part = "\(folders.line)/c_good.png"
    let partBytes = try Data(contentsOf: URL(fileURLWithPath: part))
    let modelBytes = try Data(contentsOf: URL(fileURLWithPath: folders.model))

    // A report or heat-map path that is an input or the model: refused before anything is written.
    for arguments in [[part, "--report", part], [part, "--report", folders.model], [folders.line, "--heatmaps", folders.line],
                      [part, "--heatmaps", folders.model]] {
        let result = try vinspect(["inspect", folders.model] + arguments, deadline: 60)
        #expect(result.status == 3 && result.error.contains("write the output elsewhere"), "\(arguments): \(result.error)")
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: part)) == partBytes)
    #expect(try Data(contentsOf: URL(fileURLWithPath: folders.model)) == modelBytes)

    // Outputs inside the walked folder, a text file and a symbolic link loop beside the images:
    // two runs give the same records (the first run's report and heat maps are not inputs).
    try Data("notes\n".utf8).write(to: URL(fileURLWithPath: "\(folders.line)/notes.txt"))
    try fm.createSymbolicLink(atPath: "\(folders.line)/a/loop", withDestinationPath: folders.line)
    let report = "\(folders.line)/report.jsonl", heatmaps = "\(folders.line)/hm"
    var runs: [[String]] = []
    for _ in 0..<2 {
        let result = try vinspect(["inspect", folders.model, folders.line, "--report", report, "--heatmaps", heatmaps], deadline: 120)
        #expect(result.status == 2, "\(result.error)")  // the truncated PNG and the text named .jpg
        #expect(result.error.contains("1 other file in the folders skipped"), "\(result.error)")
        runs.append(jsonLines(try String(contentsOfFile: report, encoding: .utf8)).compactMap { $0["path"] as? String })
    }
    #expect(runs[0] == runs[1])
    #expect(runs[0] == ["a/part.png", "b/part.png", "c_good.png", "d_spot.png", "e_truncated.png", "f_text.jpg"].map { "\(folders.line)/\($0)" })

    // An input folder without images is an error record, not silence.
    let empty = folders.root.appendingPathComponent("empty").path
    try fm.createDirectory(atPath: "\(empty)/sub", withIntermediateDirectories: true)
    try Data("x".utf8).write(to: URL(fileURLWithPath: "\(empty)/sub/readme.txt"))
    let result = try vinspect(["inspect", folders.model, empty, part], deadline: 60)
    #expect(result.status == 2, "\(result.error)")
    let records = jsonLines(result.output)
    #expect(records.compactMap { $0["path"] as? String } == [empty, part])
    #expect((records[0]["error"] as? String)?.contains("no PNG or JPEG images") == true, "\(records[0])")
    #expect(records[1]["verdict"] as? String == "ok")
}

@Test(.timeLimit(.minutes(5)))
func aKillAtAnyMomentLeavesTheOldOrTheNewFileNeverATornOne() throws {
    let folders = try LineFolders("kill")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let report = folders.root.appendingPathComponent("report.jsonl").path
    var generator = SystemRandomNumberGenerator()
    var torn = 0, killed = 0
    // How long each kind of run takes here: the kills fall anywhere inside it.
    var start = Date()
    _ = try vinspect(["train", "--good", folders.good, "--backbone", "compact", "--image-size", "64", "--layers", "0,1",
                      "--output", folders.model], deadline: 120)
    let trainSeconds = Date().timeIntervalSince(start)
    start = Date()
    #expect(try vinspect(["inspect", folders.model, folders.line, "--report", report], deadline: 120).status == 2)
    let inspectSeconds = Date().timeIntervalSince(start)
    let oldReport = try Data(contentsOf: URL(fileURLWithPath: report))
    let oldModel = try Data(contentsOf: URL(fileURLWithPath: folders.model))
    for trial in 0..<200 {
        // Alternately retrain the model over itself and re-inspect over the report, killing
        // the process after a random delay (sometimes after it finished).
        let retrain = trial % 2 == 0
        let process = Process()
        process.executableURL = vinspectExecutable
        process.arguments = retrain
            ? ["train", "--good", folders.good, "--backbone", "compact", "--image-size", "64", "--layers", "0,1", "--seed", "\(trial)",
               "--output", folders.model]
            : ["inspect", folders.model, folders.line, "--report", report, "--quiet"]
        process.currentDirectoryURL = repositoryRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let duration = retrain ? trainSeconds : inspectSeconds
        usleep(UInt32(Double.random(in: 0..<duration, using: &generator) * 1_000_000))
        if process.isRunning { kill(process.processIdentifier, SIGKILL); killed += 1 }
        process.waitUntilExit()
        if retrain {
            // Old bytes, or a whole model that loads.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: folders.model))
            if bytes != oldModel && (try? InspectionModel(contentsOfFile: folders.model)) == nil { torn += 1 }
        } else {
            // Old report, or a new one with every record.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: report))
            let records = jsonLines(String(decoding: bytes, as: UTF8.self))
            if bytes != oldReport && records.count != 6 { torn += 1 }
        }
    }
    print("kill trials: 200 (train \(trainSeconds) s, inspect \(inspectSeconds) s), killed mid-run \(killed), torn files \(torn)")
    #expect(torn == 0)
    #expect(killed > 0)
}

@Test(.timeLimit(.minutes(3)))
func oddNamesTinyImagesAndUnwritableHeatmapsKeepOneRecordPerInputInOrder() throws {
    let folders = try LineFolders("names")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    #expect(try folders.train().status == 0)
    let odd = folders.root.appendingPathComponent("odd").path
    try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: true)
    // Names with spaces, underscores, unicode, a newline and a quote; a 1x1 image; a tall one.
    let names = ["a b.png", "a_b.png", "café ü.png", "line\nbreak.png", "quote\"d.png", "tiny.png", "tall.png"]
    for name in names.prefix(5) { try partImage(seed: 3, defect: false).write(toFile: "\(odd)/\(name)") }
    try Image(width: 1, height: 1, channels: 1, pixels: [128]).write(toFile: "\(odd)/tiny.png")
    try Image(width: 8, height: 2000, channels: 1, pixels: [UInt8](repeating: 90, count: 16000)).write(toFile: "\(odd)/tall.png")
    let sorted = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { "\(odd)/\($0)" }
    // Heat maps that cannot be written (a file stands where their folder must go; file
    // permissions would not stop a root user): every image is still inspected and reported.
    let maps = folders.root.appendingPathComponent("maps").path
    try FileManager.default.createDirectory(atPath: maps, withIntermediateDirectories: true)
    try Data("x".utf8).write(to: URL(fileURLWithPath: "\(maps)/_root"))
    for report in ["r.jsonl", "r.csv"] {
        let path = folders.root.appendingPathComponent(report).path
        let result = try vinspect(["inspect", folders.model, odd, "--report", path, "--heatmaps", maps, "--jobs", "2"], deadline: 120)
        #expect(result.status == 0, "\(result.error)")
        #expect(result.error.components(separatedBy: "heat map not written").count - 1 == names.count, "\(result.error)")
        if report == "r.jsonl" {
            let records = jsonLines(try String(contentsOfFile: path, encoding: .utf8))
            #expect(records.compactMap { $0["path"] as? String } == sorted)
            #expect(records.allSatisfy { $0["verdict"] as? String != "error" && $0["heatmap"] is NSNull })
        } else {
            // CSV: a header and one record per image; the name with a quote and the one
            // with a newline are quoted fields.
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("quote\"\"d.png\"") && text.contains("\"\(odd)/line\nbreak.png\""), "\(text.prefix(600))")
        }
    }
}

@Test(.timeLimit(.minutes(2)))
func trainRefusesAnOutputThatWouldDestroySomethingBeforeTraining() throws {
    let folders = try LineFolders("output-check")
    defer { try? FileManager.default.removeItem(at: folders.root) }
    let image = "\(folders.good)/g0.png"
    let bytes = try Data(contentsOf: URL(fileURLWithPath: image))
    for (output, message) in [(image, "is not a vinspect model file"), (folders.good, "is a folder"),
                              (folders.root.appendingPathComponent("missing/m.vimodel").path, "does not exist")] {
        let result = try vinspect(["train", "--good", folders.good, "--backbone", "compact", "--image-size", "64", "--output", output],
                                  deadline: 60)
        #expect(result.status == 3 && result.error.contains(message), "\(output): \(result.error)")
        #expect(!result.output.contains("trained in"))
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == bytes)
    // A model file there is replaced.
    #expect(try folders.train().status == 0)
    #expect(try folders.train().status == 0)
}

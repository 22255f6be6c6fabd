import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

/// A 48x48 grey "part": a disc on a brushed background; a defect adds a dark scratch.
func partImage(seed: Int, defect: Bool) -> Image {
    var pixels = [UInt8]()
    let c = 24.0
    for y in 0..<48 {
        for x in 0..<48 {
            let d = ((Double(y) - c) * (Double(y) - c) + (Double(x) - c) * (Double(x) - c)).squareRoot()
            var v = 110 + 15 * sin(Double(x) * 0.7 + Double(seed)) + (d < 16 ? 70 : 0)
            if defect && abs(Double(y) - Double(x)) < 1.5 && d < 14 { v = 20 }
            v += Double((x * 7 + y * 13 + seed * 31) % 9)
            pixels.append(UInt8(max(0, min(255, v))))
        }
    }
    return Image(width: 48, height: 48, channels: 1, pixels: pixels)
}

func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("vinspect-\(name)-\(getpid())")
    try? FileManager.default.removeItem(at: url)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Test func evaluateRunsOnAGeneratedMVTecLayoutAndPrintsJSON() throws {
    let root = try temporaryFolder("mvtec")
    defer { try? FileManager.default.removeItem(at: root) }
    for sub in ["train/good", "test/good", "test/scratch", "ground_truth/scratch"] {
        try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    for i in 0..<4 { try partImage(seed: i, defect: false).write(toFile: root.appendingPathComponent("train/good/\(i).png").path) }
    for i in 0..<3 { try partImage(seed: 10 + i, defect: false).write(toFile: root.appendingPathComponent("test/good/\(i).png").path) }
    for i in 0..<3 {
        try partImage(seed: 20 + i, defect: true).write(toFile: root.appendingPathComponent("test/scratch/\(i).png").path)
        let mask = Image(width: 48, height: 48, channels: 1, pixels: (0..<(48 * 48)).map { p in
            let (y, x) = (p / 48, p % 48)
            return abs(y - x) < 2 && abs(y - 24) < 14 ? 255 : 0
        })
        try mask.write(toFile: root.appendingPathComponent("ground_truth/scratch/\(i)_mask.png").path)
    }
    let result = try vinspect(["evaluate", root.path, "--shots", "2", "--seeds", "0,1", "--backbone", "compact",
                               "--image-size", "64", "--layers", "0,1", "--json"])
    #expect(result.status == 0, "\(result.error)")
    #expect(result.error.contains("untrained weights"))
    let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
    let runs = json?["runs"] as? [[String: Any]]
    #expect(runs?.count == 2)
    for run in runs ?? [] {
        let auroc = run["imageAUROC"] as? Double ?? -1
        #expect(auroc >= 0 && auroc <= 1)
        #expect(run["shots"] as? Int == 2)
    }
    #expect((json?["summary"] as? [String: Any])?["image_auroc"] != nil)
}

@Test func evaluateRunsTheGaussianModeWithATopFractionScore() throws {
    let root = try temporaryFolder("mvtec-gaussian")
    defer { try? FileManager.default.removeItem(at: root) }
    for sub in ["train/good", "test/good", "test/scratch"] {
        try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    for i in 0..<5 { try partImage(seed: i, defect: false).write(toFile: root.appendingPathComponent("train/good/\(i).png").path) }
    for i in 0..<3 {
        try partImage(seed: 10 + i, defect: false).write(toFile: root.appendingPathComponent("test/good/\(i).png").path)
        try partImage(seed: 20 + i, defect: true).write(toFile: root.appendingPathComponent("test/scratch/\(i).png").path)
    }
    let result = try vinspect(["evaluate", root.path, "--seeds", "0", "--backbone", "compact", "--image-size", "48",
                               "--layers", "0,1", "--mode", "gaussian", "--gaussian-channels", "40", "--top-fraction", "0.01",
                               "--augment", "mirrors", "--json"])
    #expect(result.status == 0, "\(result.error)")
    let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
    let runs = json?["runs"] as? [[String: Any]]
    let options = (runs?.first?["settings"] as? [[String: Any]])?.first
    #expect(options?["mode"] as? String == "gaussian")
    #expect(options?["gaussianChannels"] as? Int == 40)
    #expect(runs?.first?["choice"] == nil, "scorer flags were given: nothing is chosen")
    #expect(runs?.first?["bankSize"] as? Int == 0)
    let auroc = runs?.first?["imageAUROC"] as? Double ?? -1
    #expect(auroc >= 0 && auroc <= 1)

    let help = try vinspect(["evaluate", "--help"])
    #expect(help.output.contains("--mode") && help.output.contains("gaussian") && help.output.contains("--top-fraction"))
    let bad = try vinspect(["evaluate", root.path, "--backbone", "compact", "--mode", "padim"])
    #expect(bad.status == 3)
    let badFraction = try vinspect(["evaluate", root.path, "--backbone", "compact", "--top-fraction", "1.5"])
    #expect(badFraction.status == 3)
    #expect(badFraction.error.contains("--top-fraction"))
}

@Test func evaluateRefusesAFolderThatIsNotADataSet() throws {
    let result = try vinspect(["evaluate", "Fixtures/codec", "--backbone", "compact"])
    #expect(result.status == 3)
    #expect(result.error.contains("unexpected folder layout"))
}

@Test func fewShotEvalRunsEpisodesOnGeneratedClasses() throws {
    let root = try temporaryFolder("classes")
    defer { try? FileManager.default.removeItem(at: root) }
    for (index, name) in ["scratch", "spot", "clean"].enumerated() {
        let folder = root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 0..<4 {
            let image = partImage(seed: i * 3 + index, defect: index == 0)
            try image.write(toFile: folder.appendingPathComponent("\(i).png").path)
        }
    }
    let result = try vinspect(["fewshot-eval", root.path, "--ways", "3", "--shots", "1", "--queries", "2",
                               "--episodes", "5", "--backbone", "compact", "--image-size", "48", "--json"])
    #expect(result.status == 0, "\(result.error)")
    let json = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
    #expect(json?["ways"] as? Int == 3)
    #expect(json?["episodes"] as? Int == 5)
    let accuracy = json?["accuracy"] as? Double ?? -1
    #expect(accuracy >= 0 && accuracy <= 1)
    let tooMany = try vinspect(["fewshot-eval", root.path, "--ways", "4", "--backbone", "compact"])
    #expect(tooMany.status == 3)
}

@Test func fewShotTrainWritesAHeadThatFewShotEvalUses() throws {
    let root = try temporaryFolder("head")
    defer { try? FileManager.default.removeItem(at: root) }
    let classes = root.appendingPathComponent("classes")
    for (index, name) in ["scratch", "spot", "clean"].enumerated() {
        let folder = classes.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in 0..<4 { try partImage(seed: i * 3 + index, defect: index == 0).write(toFile: folder.appendingPathComponent("\(i).png").path) }
    }
    let head = root.appendingPathComponent("head.vimodel").path
    let common = ["--backbone", "compact", "--image-size", "48"]
    let train = try vinspect(["fewshot-train", "--generated", "4", "--generated-images", "3", "--ways", "3", "--shots", "1",
                              "--queries", "2", "--episodes", "5", "--dimension", "4", "--output", head] + common)
    #expect(train.status == 0, "\(train.error)")
    #expect(train.output.contains("trained a residual head"))
    let eval = try vinspect(["fewshot-eval", classes.path, "--ways", "3", "--queries", "2", "--episodes", "5",
                             "--head", head, "--json"] + common)
    #expect(eval.status == 0, "\(eval.error)")
    #expect(eval.error.contains("head \(head)"))
    let accuracy = (try JSONSerialization.jsonObject(with: Data(eval.output.utf8)) as? [String: Any])?["accuracy"] as? Double ?? -1
    #expect(accuracy >= 0 && accuracy <= 1)
    // The head was trained on multi embeddings; asking for others is refused with a message.
    let mismatch = try vinspect(["fewshot-eval", classes.path, "--ways", "3", "--queries", "2", "--episodes", "5",
                                 "--head", head, "--embedding", "last"] + common)
    #expect(mismatch.status == 3)
    #expect(mismatch.error.contains("trained on --embedding multi"))
    let nothing = try vinspect(["fewshot-train", "--output", head] + common)
    #expect(nothing.status == 3)
}

@Test(.timeLimit(.minutes(3)))
func evaluateWithDefaultSettingsChoosesThemPerDrawAndTabulatesSeveralDataSets() throws {
    var roots: [URL] = []
    defer { for root in roots { try? FileManager.default.removeItem(at: root) } }
    for name in ["auto-a", "auto-b"] {
        let root = try temporaryFolder(name)
        roots.append(root)
        for sub in ["train/good", "test/good", "test/scratch"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for i in 0..<3 { try partImage(seed: i, defect: false).write(toFile: root.appendingPathComponent("train/good/\(i).png").path) }
        for i in 0..<2 {
            try partImage(seed: 10 + i, defect: false).write(toFile: root.appendingPathComponent("test/good/\(i).png").path)
            try partImage(seed: 20 + i, defect: true).write(toFile: root.appendingPathComponent("test/scratch/\(i).png").path)
        }
    }
    let text = try vinspect(["evaluate", roots[0].path, roots[1].path, "--shots", "2", "--seeds", "0", "--backbone", "compact"])
    #expect(text.status == 0, "\(text.error)")
    #expect(text.output.contains("settings chosen by the engine"))
    #expect(text.output.contains("| data | shots | image AUROC | verdicts (balanced accuracy) | best single threshold | pixel AUROC | good passed / defects flagged |"))
    #expect(text.output.contains("| vinspect-auto-a-") && text.output.contains("| vinspect-auto-b-"))
    let json = try vinspect(["evaluate", roots[0].path, "--shots", "2", "--seeds", "0", "--backbone", "compact", "--json"])
    #expect(json.status == 0, "\(json.error)")
    let document = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
    let run = (document?["runs"] as? [[String: Any]])?.first
    let choice = run?["choice"] as? [String: Any]
    #expect(["turning", "aligned"].contains(choice?["family"] as? String ?? "none"), "\(String(describing: choice))")
    #expect((choice?["rotationRatio"] as? Double ?? -1) > 0)
    #expect((run?["settings"] as? [Any])?.count == 1)
    let verdicts = run?["balancedAccuracy"] as? Double ?? -1, best = run?["bestBalancedAccuracy"] as? Double ?? -1
    #expect(verdicts >= 0 && verdicts <= best + 1e-9 && best <= 1)
}

@Test func listOptionsAreTypedAndRefusedBeforeAnythingRuns() throws {
    // Comma-separated options are parsed as lists of numbers (or names): a bad element is
    // refused with the option's name, exit 3, before any data set is read.
    let folder = try temporaryFolder("lists")
    defer { try? FileManager.default.removeItem(at: folder) }
    for (arguments, option) in [(["--seeds", "0,x"], "--seeds"), (["--seeds", "1,,2"], "--seeds"), (["--layers", "1,5"], "--layers"),
                                (["--layers", "one"], "--layers")] {
        let result = try vinspect(["evaluate", folder.path] + arguments)
        #expect(result.status == 3, "\(arguments): \(result.error)")
        #expect(result.error.contains(option) && result.error.contains("vinspect evaluate"), "\(arguments): \(result.error)")
    }
    let bad = try vinspect(["fewshot-train", folder.path, "--lr", "0.1", "--output", folder.appendingPathComponent("h").path])
    #expect(bad.status == 3 && bad.error.contains("--lr"), "one spelling: --learning-rate (\(bad.error))")
}

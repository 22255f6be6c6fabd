import Foundation
@_spi(Engine) import ImageIO
import Testing

// The fast PNG encoder (heat maps): its own deflate blocks, so every file must decode
// through libpng (which checks the CRCs and the Adler-32) to exactly the pixels given.

private func roundTrip(_ image: Image) throws -> (Image, Int) {
    let bytes = try image.pngData(fast: true)
    return (try Image.decode(bytes, source: "fast").image, bytes.count)
}

/// A grey image whose Sub-filtered bytes (the encoder's input after the row's filter
/// byte) are `differences`, row after row.
private func imageWithFilteredBytes(_ differences: [UInt8], width: Int) -> Image {
    let height = differences.count / width
    var pixels = [UInt8](repeating: 0, count: width * height)
    for y in 0..<height {
        for x in 0..<width {
            let d = differences[y * width + x]
            pixels[y * width + x] = x == 0 ? d : pixels[y * width + x - 1] &+ d
        }
    }
    return Image(width: width, height: height, channels: 1, pixels: pixels)
}

@Test(arguments: [1, 2, 3, 4])
func fastPNGRoundTripIsLossless(channels: Int) throws {
    for (width, height) in [(1, 1), (2, 3), (17, 9), (301, 7), (640, 480)] {
        for noise: UInt64 in [1, 16, 256] {
            let image = patternImage(width: width, height: height, channels: channels, seed: UInt64(width + channels), noise: noise)
            let (decoded, _) = try roundTrip(image)
            #expect(decoded == image, "\(width)x\(height)x\(channels), noise \(noise)")
        }
    }
}

@Test func fastPNGCodesRunsOfEveryLengthAndAcrossBlocks() throws {
    // Runs of 1 ... 700 equal filtered bytes (the 29 length codes with their extra bits,
    // runs longer than one match, runs cut at a block end), in an image of 1.2 MB of
    // filtered data (five of the encoder's blocks).
    var rng = TestRNG(seed: 11)
    var bytes = [UInt8]()
    var length = 1
    while bytes.count < 1_200_000 {
        let value = UInt8(truncatingIfNeeded: rng.next() % 7)
        bytes += [UInt8](repeating: value, count: length)
        bytes.append(UInt8(truncatingIfNeeded: rng.next()))
        length = length % 700 + 1
    }
    let width = 1000
    let image = imageWithFilteredBytes(Array(bytes.prefix(bytes.count / width * width)), width: width)
    let (decoded, size) = try roundTrip(image)
    #expect(decoded == image)
    #expect(size < image.pixels.count / 4, "\(size) bytes for \(image.pixels.count) samples of long runs")
}

@Test func fastPNGKeepsFlatImagesSmallAndNoiseNoLargerThanStored() throws {
    let flat = Image(width: 1000, height: 500, channels: 3, pixels: [UInt8](repeating: 77, count: 1_500_000))
    let (flatDecoded, flatSize) = try roundTrip(flat)
    #expect(flatDecoded == flat)
    #expect(flatSize < 15_000, "\(flatSize) bytes for a flat 1000x500 image")
    // Uniform noise cannot be compressed: blocks are stored, with a few bytes of framing.
    var rng = TestRNG(seed: 5)
    let noise = Image(width: 700, height: 500, channels: 3,
                      pixels: (0..<(700 * 500 * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
    let (noiseDecoded, noiseSize) = try roundTrip(noise)
    #expect(noiseDecoded == noise)
    let raw = (700 * 3 + 1) * 500
    #expect(noiseSize <= raw + 5 * (raw / 65535 + 1) + 64, "\(noiseSize) bytes for \(raw) bytes of noise")
}

@Test func fastPNGLimitsCodeLengthsOnSkewedData() throws {
    // Symbol k occurs Fibonacci(k) times (k = 0 ... 24): the optimal Huffman code is 24
    // levels deep, so the encoder's length limit and Kraft repair are exercised; order
    // shuffled so that few runs form.
    var fibonacci = [1, 1]
    while fibonacci.count < 25 { fibonacci.append(fibonacci[fibonacci.count - 1] + fibonacci[fibonacci.count - 2]) }
    var bytes = [UInt8]()
    for (k, count) in fibonacci.enumerated() { bytes += [UInt8](repeating: UInt8(k * 10), count: count) }
    var rng = TestRNG(seed: 3)
    bytes.shuffle(using: &rng)
    let width = 500
    let image = imageWithFilteredBytes(Array(bytes.prefix(bytes.count / width * width)), width: width)
    let (decoded, size) = try roundTrip(image)
    #expect(decoded == image)
    #expect(size < image.pixels.count / 2, "\(size) bytes: the skewed data should still compress")
}

@Test func fastPNGAdler32MatchesItsDefinition() {
    func definition(_ bytes: [UInt8], _ start: UInt32) -> UInt32 {
        var a = start & 0xffff, b = start >> 16
        for byte in bytes {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }
    var rng = TestRNG(seed: 9)
    let random = (0..<200_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    for count in [0, 1, 15, 16, 17, 5551, 5552, 5553, 11_104, 200_000] {
        let bytes = Array(random.prefix(count))
        #expect(Image.fastPNGAdler32(bytes) == definition(bytes, 1), "\(count) bytes")
    }
    // All 0xFF (the largest sums between reductions) and a running checksum.
    let ones = [UInt8](repeating: 0xFF, count: 100_003)
    #expect(Image.fastPNGAdler32(ones) == definition(ones, 1))
    #expect(Image.fastPNGAdler32(ones, continuing: 0xFFF0_FFF0) == definition(ones, 0xFFF0_FFF0))
}

@Test func fastPNGTakesRowsLongerThanItsBlocks() throws {
    // One 300 000-byte row is longer than the encoder's block of rows (262 140 bytes).
    var rng = TestRNG(seed: 21)
    for noise: UInt64 in [256, 3] {
        var pixels = [UInt8](repeating: 0, count: 100_000 * 3 * 3)
        for i in pixels.indices { pixels[i] = UInt8(truncatingIfNeeded: rng.next() % noise) &+ UInt8(truncatingIfNeeded: i / 5000) }
        let image = Image(width: 100_000, height: 3, channels: 3, pixels: pixels)
        let (decoded, _) = try roundTrip(image)
        #expect(decoded == image, "noise \(noise)")
    }
}

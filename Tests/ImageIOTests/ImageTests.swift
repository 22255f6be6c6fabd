import Foundation
@_spi(Engine) import ImageIO
import Testing

@Test(arguments: [1, 2, 3, 4])
func pngRoundTripIsLossless(channels: Int) throws {
    let image = patternImage(width: 17, height: 9, channels: channels)
    let decoded = try Image.decode(try image.pngData(), source: "round-trip").image
    #expect(decoded == image)
}

@Test func sixteenBitPNGRoundTripIsLossless() throws {
    var rng = TestRNG(seed: 4)
    let values = (0..<(13 * 7 * 3)).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
    let image = Image(width: 13, height: 7, channels: 3, pixels16: values)
    let decoded = try Image.decode(try image.pngData(compressionLevel: 1), source: "round-trip").image
    #expect(decoded == image)
}

@Test(arguments: [1, 3])
func jpegRoundTripIsClose(channels: Int) throws {
    // Smooth content: JPEG's error there is small and predictable.
    var pixels = [UInt8]()
    for y in 0..<48 {
        for x in 0..<64 {
            for c in 0..<channels { pixels.append(UInt8(100 + 60 * sin(Double(x + 2 * c) / 9) * cos(Double(y) / 11))) }
        }
    }
    let image = Image(width: 64, height: 48, channels: channels, pixels: pixels)
    let high = try Image.decode(try image.jpegData(quality: 95), source: "q95").image
    let low = try image.jpegData(quality: 20)
    #expect(high.width == 64 && high.height == 48 && high.channels == channels)
    let error = zip(high.pixels, image.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / image.pixels.count
    #expect(error <= 3)
    #expect(low.count < (try image.jpegData(quality: 95)).count)
}

@Test func jpegOfRGBADropsAlpha() throws {
    let image = patternImage(width: 16, height: 16, channels: 4)
    let decoded = try Image.decode(try image.jpegData(), source: "rgba").image
    #expect(decoded.channels == 3)
}

@Test func writeChoosesFormatByExtensionAndIsAtomic() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vinspect-write-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let image = patternImage(width: 8, height: 8, channels: 3)
    let png = folder.appendingPathComponent("a.png").path, jpg = folder.appendingPathComponent("a.JPG").path
    try image.write(toFile: png)
    try image.write(toFile: jpg)
    #expect(try Image(contentsOfFile: png) == image)
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: jpg)))
    #expect(ImageFormat.sniff(bytes) == .jpeg)
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["a.JPG", "a.png"])
    #expect(throws: ImageError.self) { try image.write(toFile: folder.path + "/missing/a.png") }
}

@Test func grayscaleUsesBT601Weights() {
    let image = Image(width: 3, height: 1, channels: 3, pixels: [255, 0, 0, 0, 255, 0, 10, 20, 30])
    let grey = image.grayscale()
    #expect(grey.channels == 1)
    // 0.299 * 255, 0.587 * 255, and 0.299*10 + 0.587*20 + 0.114*30 rounded.
    #expect(grey.pixels == [76, 150, 18])
    #expect(grey.rgb().pixels == [76, 76, 76, 150, 150, 150, 18, 18, 18])
}

@Test func cropTakesTheRectangle() {
    let image = Image(width: 4, height: 3, channels: 1, pixels: Array(0..<12))
    #expect(image.cropped(x: 1, y: 1, width: 2, height: 2).pixels == [5, 6, 9, 10])
    #expect(image.cropped(x: 0, y: 0, width: 4, height: 3) == image)
    #expect(image.cropped(x: 3, y: 2, width: 0, height: 0).pixels.isEmpty)
}

@Test func shrinkingAveragesAreas() {
    // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
    let image = Image(width: 4, height: 2, channels: 1, pixels: [0, 10, 100, 200, 20, 30, 50, 50])
    #expect(image.resized(width: 2, height: 1).pixels == [15, 100])
    // Non-integer factor: 3 -> 2, weights 1, 0.5 | 0.5, 1 (of 1.5).
    let row = Image(width: 3, height: 1, channels: 1, pixels: [30, 60, 90])
    #expect(row.resized(width: 2, height: 1).pixels == [40, 80])
}

@Test func enlargingInterpolatesBilinearly() {
    let image = Image(width: 2, height: 1, channels: 1, pixels: [0, 100])
    // Output centres at input 0.25-0.5=-0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    #expect(image.resized(width: 4, height: 1).pixels == [0, 25, 75, 100])
}

@Test func resizingKeepsConstantImagesConstantAndBitDepth() {
    let flat = Image(width: 37, height: 29, channels: 3, pixels: [UInt8](repeating: 77, count: 37 * 29 * 3))
    for (w, h) in [(224, 224), (10, 7), (37, 60), (1, 1)] {
        let out = flat.resized(width: w, height: h)
        #expect(out.width == w && out.height == h)
        #expect(out.pixels.allSatisfy { $0 == 77 })
    }
    let deep = Image(width: 5, height: 5, channels: 1, pixels16: [UInt16](repeating: 40000, count: 25))
    #expect(deep.resized(width: 3, height: 8).samples == .uint16([UInt16](repeating: 40000, count: 24)))
}

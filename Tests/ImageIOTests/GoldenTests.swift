import Foundation
@_spi(Engine) import ImageIO
import Testing

/// One line of Fixtures/golden/codec.json (written by Fixtures/Scripts/golden.py).
struct GoldenEntry: Decodable, Sendable, CustomTestStringConvertible {
    let file: String
    let mode: String
    let width: Int
    let height: Int
    let fnv1a64: String
    var testDescription: String { file }
}

struct GoldenDocument: Decodable {
    let generator: String
    let entries: [GoldenEntry]
}

let goldenEntries: [GoldenEntry] = {
    guard let data = FileManager.default.contents(atPath: fixture("golden/codec.json")),
          let document = try? JSONDecoder().decode(GoldenDocument.self, from: data) else { return [] }
    return document.entries
}()

/// Our decoded samples in the layout the reference used for `mode`.
func samples(of image: Image, inMode mode: String) -> [UInt8] {
    if mode == "I;16" {
        guard case .uint16(let values) = image.samples else { return [] }
        return values.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
    }
    let wanted: Int
    switch mode {
    case "L": wanted = 1
    case "LA": wanted = 2
    case "RGB", "CMYK->RGB": wanted = 3
    default: wanted = 4
    }
    let source = image.pixels  // 16-bit samples keep their high byte, as the reference does
    if wanted == image.channels { return source }
    // Only widening happens in the golden set: grey -> RGB(A), keeping alpha.
    var out = [UInt8]()
    out.reserveCapacity(image.width * image.height * wanted)
    for p in 0..<(image.width * image.height) {
        let base = p * image.channels
        let grey = source[base]
        let alpha: UInt8 = image.hasAlpha ? source[base + image.channels - 1] : 255
        switch wanted {
        case 2: out += [grey, alpha]
        case 3: out += [grey, grey, grey]
        default: out += image.channels >= 3 ? [source[base], source[base + 1], source[base + 2], alpha] : [grey, grey, grey, alpha]
        }
    }
    return out
}

@Test func goldenFileIsPresentAndCoversEveryVariant() {
    let files = Set(goldenEntries.map(\.file))
    #expect(goldenEntries.count >= 30)
    for required in ["grey1.png", "grey2.png", "grey4.png", "grey16.png", "grey-alpha8.png", "rgb16.png",
                     "rgba8.png", "palette4-trns.png", "rgb8-interlaced.png", "grey-progressive.jpg",
                     "rgb-progressive.jpg", "cmyk.jpg"] {
        #expect(files.contains(required), "golden.json lacks \(required)")
    }
}

@Test(arguments: goldenEntries)
func decodedPixelsMatchTheReferenceDecoder(_ entry: GoldenEntry) throws {
    let image = try Image(contentsOfFile: fixture("codec/\(entry.file)"))
    #expect(image.width == entry.width)
    #expect(image.height == entry.height)
    let hash = String(fnv1a64(samples(of: image, inMode: entry.mode)), radix: 16)
    let expected = String(UInt64(entry.fnv1a64, radix: 16) ?? 0, radix: 16)
    #expect(hash == expected, "\(entry.file) decoded as \(image) differs from the reference (\(entry.mode))")
}

@Test func sixteenBitFilesStaySixteenBit() throws {
    for name in ["grey16.png", "rgb16.png", "rgba16.png", "grey-alpha16.png", "rgba16-interlaced.png"] {
        let image = try Image(contentsOfFile: fixture("codec/\(name)"))
        #expect(image.bitDepth == 16, "\(name)")
    }
    let eight = try Image(contentsOfFile: fixture("codec/rgb8.png"))
    #expect(eight.bitDepth == 8)
}

@Test func fileInfoReportsInterlaceProgressiveAndStoredColour() throws {
    func info(_ name: String) throws -> ImageFileInfo {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("codec/\(name)"))))
        return try Image.decode(bytes, source: name).info
    }
    #expect(try info("rgb8-interlaced.png").isInterlacedOrProgressive)
    #expect(try !info("rgb8.png").isInterlacedOrProgressive)
    #expect(try info("rgb-progressive.jpg").isInterlacedOrProgressive)
    #expect(try !info("rgb-baseline-420.jpg").isInterlacedOrProgressive)
    #expect(try info("palette4.png").storedColor == "palette")
    #expect(try info("cmyk.jpg").storedColor == "CMYK")
    #expect(try info("grey-baseline.jpg").format == .jpeg)
}

@Test func cmykIsConvertedCloseToTheOriginalColours() throws {
    // cmyk.jpg and rgb-baseline-444.jpg were written from the same RGB array.
    let cmyk = try Image(contentsOfFile: fixture("codec/cmyk.jpg"))
    let rgb = try Image(contentsOfFile: fixture("codec/rgb-baseline-444.jpg"))
    #expect(cmyk.channels == 3 && cmyk.width == rgb.width && cmyk.height == rgb.height)
    let a = cmyk.pixels, b = rgb.pixels
    let meanDifference = zip(a, b).map { abs(Int($0) - Int($1)) }.reduce(0, +) / a.count
    #expect(meanDifference < 6, "CMYK conversion is off by \(meanDifference) on average")
}

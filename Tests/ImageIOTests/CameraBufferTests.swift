@_spi(Engine) import ImageIO
import Testing

@Test func cameraFramesWithPaddedRowsBecomeImagesInEveryFormat() throws {
    // A 3 x 2 frame, rows 16 bytes apart (the padding bytes are 0xEE and must be ignored).
    let width = 3, height = 2, stride = 16
    for format in PixelFormat.allCases {
        let bpp = format.bytesPerPixel
        var buffer = [UInt8](repeating: 0xEE, count: stride * (height - 1) + width * bpp)
        for y in 0..<height {
            for x in 0..<width {
                for b in 0..<bpp { buffer[y * stride + x * bpp + b] = UInt8(10 * (y * width + x) + b) }
            }
        }
        let image = try Image(pixels: buffer, width: width, height: height, rowStride: stride, format: format)
        #expect(image.width == width && image.height == height)
        switch format {
        case .mono16:
            #expect(image.channels == 1 && image.bitDepth == 16)
            guard case .uint16(let samples) = image.samples else { Issue.record("not 16-bit"); continue }
            // Native (little-endian on x86 and ARM) byte order: low byte first.
            let want: [UInt16] = (0..<6).map { (i: Int) -> UInt16 in
                let low = UInt16(10 * i), high = UInt16(10 * i + 1)
                return low | (high << 8)
            }
            #expect(samples == want)
        default:
            let channels = bpp
            #expect(image.channels == channels && image.bitDepth == 8)
            for pixel in 0..<(width * height) {
                let got = Array(image.pixels[(pixel * channels)..<((pixel + 1) * channels)])
                var want = (0..<channels).map { UInt8(10 * pixel + $0) }
                if format == .bgr8 || format == .bgra8 { want.swapAt(0, 2) }  // BGR(A) -> RGB(A)
                #expect(got == want, "\(format) pixel \(pixel)")
            }
        }
    }
    // Packed rows (no stride given).
    let packed = try Image(pixels: [1, 2, 3, 4], width: 2, height: 2, format: .mono8)
    #expect(packed.pixels == [1, 2, 3, 4])
}

@Test func cameraFramesThatDoNotAddUpAreErrorsNotTraps() {
    let frame = [UInt8](repeating: 0, count: 100)
    // Too short for 10 x 4 RGB (120 bytes); a stride shorter than a row; zero size; one byte short.
    #expect(throws: CameraBufferError.self) { try Image(pixels: frame, width: 10, height: 4, format: .rgb8) }
    #expect(throws: CameraBufferError.self) { try Image(pixels: frame, width: 10, height: 2, rowStride: 20, format: .rgb8) }
    #expect(throws: CameraBufferError.self) { try Image(pixels: frame, width: 0, height: 2, format: .mono8) }
    #expect(throws: CameraBufferError.self) { try Image(pixels: [UInt8](repeating: 0, count: 2 * 40 + 39), width: 10, height: 3,
                                                        rowStride: 40, format: .bgra8) }
    // Exactly enough: the last row needs no padding after it.
    #expect((try? Image(pixels: [UInt8](repeating: 0, count: 2 * 40 + 40), width: 10, height: 3, rowStride: 40, format: .bgra8)) != nil)
    do {
        _ = try Image(pixels: frame, width: 10, height: 4, format: .rgb8)
    } catch {
        #expect(error.description.contains("100 bytes") && error.description.contains("120 needed"), "\(error)")
    }
}

// Frames as camera SDKs hand them over: a pointer, a size, a row stride, a pixel format.

/// The pixel layouts of camera frames ``Image/init(pixels:width:height:rowStride:format:)``
/// accepts.
public enum PixelFormat: String, Sendable, CaseIterable {
    /// One 8-bit grey sample per pixel.
    case mono8
    /// One 16-bit grey sample per pixel, in the machine's byte order.
    case mono16
    /// Red, green, blue, 8 bits each.
    case rgb8
    /// Blue, green, red, 8 bits each (common on Windows and OpenCV).
    case bgr8
    /// Red, green, blue, alpha, 8 bits each.
    case rgba8
    /// Blue, green, red, alpha, 8 bits each.
    case bgra8

    /// Bytes one pixel takes.
    public var bytesPerPixel: Int {
        switch self {
        case .mono8: return 1
        case .mono16: return 2
        case .rgb8, .bgr8: return 3
        case .rgba8, .bgra8: return 4
        }
    }
}

/// A camera frame whose size, stride or format does not add up.
public struct CameraBufferError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What does not fit, with the numbers.
    public let detail: String

    public var description: String { "camera frame: \(detail)" }
}

extension Image {
    /// Copies a camera frame into an image: `height` rows of `width` pixels in `format`,
    /// each row starting `rowStride` bytes after the previous one (nil: rows are packed);
    /// bytes between the end of a row and the next row's start are ignored. BGR and BGRA
    /// frames become RGB and RGBA; mono16 stays 16-bit.
    ///
    /// ```swift
    /// let image = try Image(pixels: UnsafeRawBufferPointer(start: frame.data, count: frame.size),
    ///                       width: frame.width, height: frame.height, rowStride: frame.stride, format: .bgr8)
    /// ```
    ///
    /// - Throws: ``CameraBufferError`` when the width or height is not positive, the stride
    ///   is shorter than a row, or the buffer is shorter than the frame (it never reads
    ///   past the buffer).
    public init(pixels: UnsafeRawBufferPointer, width: Int, height: Int, rowStride: Int? = nil,
                format: PixelFormat) throws(CameraBufferError) {
        guard width > 0, height > 0 else {
            throw CameraBufferError(detail: "\(width) x \(height) pixels; width and height must be positive")
        }
        let rowBytes = width * format.bytesPerPixel
        let stride = rowStride ?? rowBytes
        guard stride >= rowBytes else {
            throw CameraBufferError(detail: "row stride \(stride) bytes is shorter than a row of \(width) \(format.rawValue) pixels (\(rowBytes) bytes)")
        }
        let needed = stride * (height - 1) + rowBytes
        guard pixels.count >= needed else {
            throw CameraBufferError(detail: "\(pixels.count) bytes for \(width) x \(height) \(format.rawValue) pixels with a row stride of \(stride) (at least \(needed) needed)")
        }
        switch format {
        case .mono16:
            var samples = [UInt16](repeating: 0, count: width * height)
            samples.withUnsafeMutableBytes { out in
                for y in 0..<height {
                    out.baseAddress!.advanced(by: y * rowBytes)
                        .copyMemory(from: pixels.baseAddress!.advanced(by: y * stride), byteCount: rowBytes)
                }
            }
            self.init(width: width, height: height, channels: 1, pixels16: samples)
        case .mono8, .rgb8, .rgba8, .bgr8, .bgra8:
            let channels = format.bytesPerPixel
            var samples = [UInt8](repeating: 0, count: width * height * channels)
            samples.withUnsafeMutableBytes { out in
                for y in 0..<height {
                    out.baseAddress!.advanced(by: y * rowBytes)
                        .copyMemory(from: pixels.baseAddress!.advanced(by: y * stride), byteCount: rowBytes)
                }
            }
            if format == .bgr8 || format == .bgra8 {
                // Blue and red change places.
                for pixel in 0..<(width * height) {
                    let i = pixel * channels
                    samples.swapAt(i, i + 2)
                }
            }
            self.init(width: width, height: height, channels: channels, pixels: samples)
        }
    }

    /// The same as ``init(pixels:width:height:rowStride:format:)`` for a frame held in an array.
    public init(pixels: [UInt8], width: Int, height: Int, rowStride: Int? = nil, format: PixelFormat) throws(CameraBufferError) {
        let result: Result<Image, CameraBufferError> = pixels.withUnsafeBytes { buffer in
            do throws(CameraBufferError) {
                return .success(try Image(pixels: buffer, width: width, height: height, rowStride: rowStride, format: format))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }
}

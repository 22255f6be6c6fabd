/// An image held in memory: interleaved samples, row-major, no row padding.
///
/// Layout: sample `c` of pixel `(x, y)` is at index `(y * width + x) * channels + c`.
/// Channels are 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA). Samples are 8-bit, or
/// 16-bit when the file had 16-bit samples (PNG only).
///
/// ```swift
/// let image = try Image(contentsOfFile: "part.png")
/// let small = image.grayscale().resized(width: 224, height: 224)
/// ```
public struct Image: Sendable, Equatable {
    /// The sample storage: one element per sample, at the image's bit depth.
    public enum Samples: Sendable, Equatable {
        /// 8-bit samples, 0...255.
        case uint8([UInt8])
        /// 16-bit samples, 0...65535, native byte order.
        case uint16([UInt16])
    }

    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Samples per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    public let channels: Int
    /// The samples, `width * height * channels` of them.
    public let samples: Samples

    /// Creates an 8-bit image from its samples.
    /// - Precondition: `pixels.count == width * height * channels` and `channels` is 1...4.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels),
                     "Image: invalid geometry \(width)x\(height)x\(channels)")
        precondition(pixels.count == width * height * channels,
                     "Image: \(pixels.count) samples for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.samples = .uint8(pixels)
    }

    /// Creates a 16-bit image from its samples.
    /// - Precondition: `pixels.count == width * height * channels` and `channels` is 1...4.
    public init(width: Int, height: Int, channels: Int, pixels16: [UInt16]) {
        precondition(width >= 0 && height >= 0 && (1...4).contains(channels),
                     "Image: invalid geometry \(width)x\(height)x\(channels)")
        precondition(pixels16.count == width * height * channels,
                     "Image: \(pixels16.count) samples for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.samples = .uint16(pixels16)
    }

    /// Bits per sample: 8 or 16.
    public var bitDepth: Int {
        if case .uint16 = samples { return 16 }
        return 8
    }

    /// Whether the last channel is alpha (2 or 4 channels).
    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// The samples as 8-bit values; 16-bit samples keep their high byte (as most readers
    /// do when they reduce 16-bit files).
    public var pixels: [UInt8] {
        switch samples {
        case .uint8(let values): return values
        case .uint16(let values): return values.map { UInt8(truncatingIfNeeded: $0 >> 8) }
        }
    }

    /// One sample, scaled to 0...255 for 16-bit images.
    public subscript(x: Int, y: Int, channel: Int) -> UInt8 {
        precondition(x >= 0 && x < width && y >= 0 && y < height && channel >= 0 && channel < channels,
                     "Image: sample (\(x), \(y), \(channel)) outside \(width)x\(height)x\(channels)")
        let index = (y * width + x) * channels + channel
        switch samples {
        case .uint8(let values): return values[index]
        case .uint16(let values): return UInt8(truncatingIfNeeded: values[index] >> 8)
        }
    }

    /// The same image with 8-bit samples (a no-op for 8-bit images).
    public func to8Bit() -> Image {
        if case .uint8 = samples { return self }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }
}

extension Image: CustomStringConvertible {
    /// E.g. `512x512 grey 8-bit`.
    public var description: String {
        let kind = ["grey", "grey+alpha", "RGB", "RGBA"][channels - 1]
        return "\(width)x\(height) \(kind) \(bitDepth)-bit"
    }
}

import Anomaly
@_spi(Engine) import ImageIO
import NeuralNet
import TensorCore

/// A rectangle of interest in image pixels: only this part of each image is inspected.
public struct RegionOfInterest: Sendable, Equatable, Codable {
    /// Left edge, in pixels.
    public var x: Int
    /// Top edge, in pixels.
    public var y: Int
    /// Width, in pixels.
    public var width: Int
    /// Height, in pixels.
    public var height: Int

    /// The rectangle `x..<x+width`, `y..<y+height`.
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }

    /// Parses `x,y,width,height`.
    public init?(_ text: String) {
        let parts = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, parts[0] >= 0, parts[1] >= 0, parts[2] > 0, parts[3] > 0 else { return nil }
        self.init(x: parts[0], y: parts[1], width: parts[2], height: parts[3])
    }

    /// The rectangle clipped to an image of the given size (nil when nothing is left).
    public func clipped(width imageWidth: Int, height imageHeight: Int) -> RegionOfInterest? {
        let x0 = min(x, imageWidth), y0 = min(y, imageHeight)
        let x1 = min(x + width, imageWidth), y1 = min(y + height, imageHeight)
        guard x1 > x0, y1 > y0 else { return nil }
        return RegionOfInterest(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }
}

/// How an image becomes network input: cropped to the region of interest (if any),
/// resized to the input size (a square, or an oblong of the training frames' aspect ratio,
/// see `InputGeometry`), grey replicated to RGB, normalised with the backbone's statistics.
public struct Preprocessing: Sendable, Equatable, Codable {
    /// Side of the square the image is resized to; the short side when ``aspectRatio`` is not 1.
    public var size: Int
    /// Width over height of the input; 1: square.
    public var aspectRatio: Double = 1
    /// The part of each image to inspect; nil: all of it.
    public var regionOfInterest: RegionOfInterest?
    /// Per-channel mean, in units of the full range.
    public var mean: [Float]
    /// Per-channel standard deviation, in units of the full range.
    public var std: [Float]

    /// Preprocessing to `size` pixels on the short side (see ``inputSize``).
    public init(size: Int, aspectRatio: Double = 1, mean: [Float], std: [Float]) {
        self.size = size; self.aspectRatio = aspectRatio; self.mean = mean; self.std = std
    }

    /// The input's width and height in pixels.
    public var inputSize: (width: Int, height: Int) { InputGeometry.size(shortSide: size, aspectRatio: aspectRatio) }

    private enum CodingKeys: String, CodingKey { case size, aspectRatio, regionOfInterest, mean, std }

    /// Decodes preprocessing; files written before oblong inputs existed are square.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        size = try c.decode(Int.self, forKey: .size)
        aspectRatio = try c.decodeIfPresent(Double.self, forKey: .aspectRatio) ?? 1
        regionOfInterest = try c.decodeIfPresent(RegionOfInterest.self, forKey: .regionOfInterest)
        mean = try c.decode([Float].self, forKey: .mean)
        std = try c.decode([Float].self, forKey: .std)
    }

    /// The image cropped to the region of interest (the whole image when there is none or
    /// it lies outside the image).
    public func cropped(_ image: Image) -> Image {
        guard let roi = regionOfInterest?.clipped(width: image.width, height: image.height) else { return image }
        return image.cropped(x: roi.x, y: roi.y, width: roi.width, height: roi.height)
    }

    /// The normalised `[height, width, 3]` tensor of an image (``inputSize``).
    package func tensor(_ image: Image) -> Tensor {
        let (width, height) = inputSize
        return cropped(image.droppingAlpha()).resized(width: width, height: height).tensor(channels: 3, mean: mean, std: std)
            .reshaped([height, width, 3])
    }

    /// Reads and preprocesses an image file.
    package func tensor(contentsOfFile path: String) throws(ImageError) -> Tensor {
        tensor(try Image(contentsOfFile: path))
    }

    /// A ground-truth mask file resized to ``inputSize`` (row-major): a pixel is defective
    /// when more than half of the area it covers is.
    public func mask(contentsOfFile path: String) throws(ImageError) -> [Bool] {
        let image = cropped(try Image(contentsOfFile: path).grayscale().to8Bit())
        let binary = Image(width: image.width, height: image.height, channels: 1,
                           pixels: image.pixels.map { $0 > 127 ? 255 : 0 })
        let (width, height) = inputSize
        return binary.resized(width: width, height: height).pixels.map { $0 > 127 }
    }
}

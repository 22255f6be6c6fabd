import ImageIO
import NeuralNet
import TensorCore

/// How an image becomes network input: resized to a square, grey replicated to RGB,
/// normalised with the backbone's statistics.
public struct Preprocessing: Sendable, Equatable, Codable {
    /// Side of the square the image is resized to.
    public var size: Int
    /// Per-channel mean and standard deviation, in units of the full range.
    public var mean: [Float]
    public var std: [Float]

    public init(size: Int, mean: [Float], std: [Float]) {
        self.size = size; self.mean = mean; self.std = std
    }

    /// The normalised `[size, size, 3]` tensor of an image.
    public func tensor(_ image: Image) -> Tensor {
        image.droppingAlpha().resized(width: size, height: size).tensor(channels: 3, mean: mean, std: std)
            .reshaped([size, size, 3])
    }

    /// Reads and preprocesses an image file.
    public func tensor(contentsOfFile path: String) throws(ImageError) -> Tensor {
        tensor(try Image(contentsOfFile: path))
    }

    /// A ground-truth mask file resized to `size x size`: a pixel is defective when more
    /// than half of the area it covers is.
    public func mask(contentsOfFile path: String) throws(ImageError) -> [Bool] {
        let image = try Image(contentsOfFile: path).grayscale().to8Bit()
        let binary = Image(width: image.width, height: image.height, channels: 1,
                           pixels: image.pixels.map { $0 > 127 ? 255 : 0 })
        return binary.resized(width: size, height: size).pixels.map { $0 > 127 }
    }
}

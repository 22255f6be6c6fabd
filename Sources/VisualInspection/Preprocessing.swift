import Anomaly
import ImageIO
import NeuralNet
import TensorCore

/// A rectangle of interest in image pixels: only this part of each image is inspected.
public struct RegionOfInterest: Sendable, Equatable, Codable {
    public var x: Int, y: Int, width: Int, height: Int

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
/// resized to a square (stretched, or padded by mirroring, see ``InputFit``), grey
/// replicated to RGB, normalised with the backbone's statistics.
public struct Preprocessing: Sendable, Equatable, Codable {
    /// Side of the square the image is resized to.
    public var size: Int
    /// How an image that is not square is brought to the square.
    public var fit: InputFit = .stretch
    /// The part of each image to inspect; nil: all of it.
    public var regionOfInterest: RegionOfInterest?
    /// Per-channel mean and standard deviation, in units of the full range.
    public var mean: [Float]
    public var std: [Float]

    public init(size: Int, mean: [Float], std: [Float], fit: InputFit = .stretch) {
        self.size = size; self.mean = mean; self.std = std; self.fit = fit
    }

    private enum CodingKeys: String, CodingKey { case size, fit, regionOfInterest, mean, std }

    /// Decodes; `fit` is missing from files written before it existed and then stays `stretch`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        size = try c.decode(Int.self, forKey: .size)
        fit = try c.decodeIfPresent(InputFit.self, forKey: .fit) ?? .stretch
        regionOfInterest = try c.decodeIfPresent(RegionOfInterest.self, forKey: .regionOfInterest)
        mean = try c.decode([Float].self, forKey: .mean)
        std = try c.decode([Float].self, forKey: .std)
    }

    /// Where an image (after the region-of-interest crop) of `width x height` pixels lies in
    /// the `size x size` input: the whole square when stretched, a centred rectangle with the
    /// image's proportions when padded.
    public func contentRect(width: Int, height: Int) -> RegionOfInterest {
        guard fit == .pad, width > 0, height > 0, width != height else { return RegionOfInterest(x: 0, y: 0, width: size, height: size) }
        let scale = Double(size) / Double(max(width, height))
        let w = min(size, max(1, Int((Double(width) * scale).rounded())))
        let h = min(size, max(1, Int((Double(height) * scale).rounded())))
        return RegionOfInterest(x: (size - w) / 2, y: (size - h) / 2, width: w, height: h)
    }

    /// A map over the whole input, cut to the image's part and stretched back to
    /// `size x size`: the frame of a stretched input, of ``mask(contentsOfFile:)`` and of the
    /// boxes. The same map when the input is stretched.
    public func imageFrame(of map: AnomalyMap, width: Int, height: Int) -> AnomalyMap {
        let r = contentRect(width: width, height: height)
        guard r.width < size || r.height < size else { return map }
        let sx = Double(map.width) / Double(size), sy = Double(map.height) / Double(size)
        let x0 = Int((Double(r.x) * sx).rounded()), y0 = Int((Double(r.y) * sy).rounded())
        let w = max(1, min(map.width - x0, Int((Double(r.width) * sx).rounded())))
        let h = max(1, min(map.height - y0, Int((Double(r.height) * sy).rounded())))
        var values = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w { values[y * w + x] = map.values[(y0 + y) * map.width + x0 + x] }
        }
        return AnomalyMap(width: w, height: h, values: values).resized(width: map.width, height: map.height)
    }

    /// The image cropped to the region of interest (the whole image when there is none or
    /// it lies outside the image).
    public func cropped(_ image: Image) -> Image {
        guard let roi = regionOfInterest?.clipped(width: image.width, height: image.height) else { return image }
        return image.cropped(x: roi.x, y: roi.y, width: roi.width, height: roi.height)
    }

    /// The normalised `[size, size, 3]` tensor of an image.
    public func tensor(_ image: Image) -> Tensor {
        let part = cropped(image.droppingAlpha())
        let r = contentRect(width: part.width, height: part.height)
        let content = part.resized(width: r.width, height: r.height).tensor(channels: 3, mean: mean, std: std)
            .reshaped([r.height, r.width, 3])
        return r.width == size && r.height == size ? content : mirrorPadded(content, to: size, at: r)
    }

    /// Reads and preprocesses an image file.
    public func tensor(contentsOfFile path: String) throws(ImageError) -> Tensor {
        tensor(try Image(contentsOfFile: path))
    }

    /// A ground-truth mask file resized to `size x size`: a pixel is defective when more
    /// than half of the area it covers is.
    public func mask(contentsOfFile path: String) throws(ImageError) -> [Bool] {
        let image = cropped(try Image(contentsOfFile: path).grayscale().to8Bit())
        let binary = Image(width: image.width, height: image.height, channels: 1,
                           pixels: image.pixels.map { $0 > 127 ? 255 : 0 })
        return binary.resized(width: size, height: size).pixels.map { $0 > 127 }
    }
}

/// `content` `[h, w, C]` placed at `r` in a `[size, size, C]` tensor whose other pixels
/// mirror the content at its edges (the edge pixel repeated once, as a reflection in a
/// mirror would); a margin wider than the content mirrors again, back and forth.
func mirrorPadded(_ content: Tensor, to size: Int, at r: RegionOfInterest) -> Tensor {
    let (h, w, c) = (content.shape[0], content.shape[1], content.shape[2])
    func mirror(_ i: Int, _ n: Int) -> Int {
        let period = 2 * n
        let m = ((i % period) + period) % period
        return m < n ? m : period - 1 - m
    }
    return content.withUnsafeBufferPointer { src in
        Tensor(uninitializedShape: [size, size, c]) { out in
            for y in 0..<size {
                let sy = mirror(y - r.y, h)
                for x in 0..<size {
                    let sx = mirror(x - r.x, w)
                    for ch in 0..<c { out[(y * size + x) * c + ch] = src[(sy * w + sx) * c + ch] }
                }
            }
        }
    }
}

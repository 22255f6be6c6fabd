import TensorCore

extension Image {
    /// The image as a normalised float tensor `[1, H, W, C]` (NHWC), each sample mapped to
    /// `(value / maximum - mean[c]) / std[c]` where `maximum` is 255 (or 65535 for
    /// 16-bit images).
    ///
    /// - Parameters:
    ///   - channels: the channel count the network expects: grey images are replicated to
    ///     3 channels, colour images reduced to grey for 1; alpha is always dropped.
    ///   - mean: per-channel mean, in units of the full range (e.g. 0.5).
    ///   - std: per-channel standard deviation, in the same units.
    @_spi(Engine) public func tensor(channels wanted: Int = 3, mean: [Float], std: [Float]) -> Tensor {
        precondition(wanted == 1 || wanted == 3, "Image.tensor: channels must be 1 or 3, got \(wanted)")
        precondition(mean.count == wanted && std.count == wanted, "Image.tensor: \(mean.count) means, \(std.count) stds for \(wanted) channels")
        let source = wanted == 3 ? rgb() : grayscale()
        let scale: Float = bitDepth == 16 ? 1 / 65535 : 1 / 255
        let multiplier = std.map { scale / $0 }, offset = zip(mean, std).map { -$0 / $1 }
        let count = width * height * wanted
        return Tensor(uninitializedShape: [1, height, width, wanted]) { out in
            switch source.samples {
            case .uint8(let values):
                values.withUnsafeBufferPointer { v in
                    for i in 0..<count { out[i] = Float(v[i]) * multiplier[i % wanted] + offset[i % wanted] }
                }
            case .uint16(let values):
                values.withUnsafeBufferPointer { v in
                    for i in 0..<count { out[i] = Float(v[i]) * multiplier[i % wanted] + offset[i % wanted] }
                }
            }
        }
    }
}

/// Channel conversions, cropping and resizing. All of them keep the bit depth, except
/// where a doc comment says otherwise.
extension Image {
    /// Applies `body` to the samples at their own type and wraps the result at the same depth.
    @inline(__always)
    private func mapSamples(
        channels newChannels: Int, width newWidth: Int? = nil, height newHeight: Int? = nil,
        _ body8: ([UInt8]) -> [UInt8], _ body16: ([UInt16]) -> [UInt16]
    ) -> Image {
        let w = newWidth ?? width, h = newHeight ?? height
        switch samples {
        case .uint8(let values): return Image(width: w, height: h, channels: newChannels, pixels: body8(values))
        case .uint16(let values): return Image(width: w, height: h, channels: newChannels, pixels16: body16(values))
        }
    }

    /// The image without its alpha channel (unchanged when it has none).
    public func droppingAlpha() -> Image {
        guard hasAlpha else { return self }
        let kept = channels - 1
        return mapSamples(channels: kept, { dropLast($0, from: channels) }, { dropLast($0, from: channels) })
    }

    /// A one-channel grey image. Colour is weighted by ITU-R BT.601 luma
    /// (0.299 R + 0.587 G + 0.114 B, in 16-bit fixed point with rounding); alpha is dropped.
    public func grayscale() -> Image {
        switch channels {
        case 1: return self
        case 2: return droppingAlpha()
        default:
            return mapSamples(channels: 1, { luma($0, channels: channels) }, { luma($0, channels: channels) })
        }
    }

    /// A three-channel RGB image: grey is replicated, alpha is dropped.
    public func rgb() -> Image {
        switch channels {
        case 3: return self
        case 4: return droppingAlpha()
        default:
            let source = droppingAlpha()
            return source.mapSamples(channels: 3, { replicate($0) }, { replicate($0) })
        }
    }

    /// The rectangle `x..<x+width`, `y..<y+height` of the image.
    /// - Precondition: the rectangle lies inside the image.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> Image {
        precondition(x >= 0 && y >= 0 && cropWidth >= 0 && cropHeight >= 0
                     && x + cropWidth <= width && y + cropHeight <= height,
                     "Image.cropped: (\(x), \(y), \(cropWidth)x\(cropHeight)) outside \(width)x\(height)")
        func crop<T>(_ values: [T]) -> [T] {
            var out = [T]()
            out.reserveCapacity(cropWidth * cropHeight * channels)
            for row in y..<(y + cropHeight) {
                let start = (row * width + x) * channels
                out.append(contentsOf: values[start..<(start + cropWidth * channels)])
            }
            return out
        }
        return mapSamples(channels: channels, width: cropWidth, height: cropHeight, crop, crop)
    }

    /// The image resized to `newWidth x newHeight`.
    ///
    /// Each axis is resampled on its own: where it grows, bilinear interpolation between
    /// pixel centres; where it shrinks, area averaging (each output pixel is the mean of
    /// the input area it covers, with fractional edge weights), which does not alias the
    /// way bilinear sampling does when shrinking by more than 2x.
    public func resized(width newWidth: Int, height newHeight: Int) -> Image {
        precondition(newWidth > 0 && newHeight > 0, "Image.resized: invalid size \(newWidth)x\(newHeight)")
        if newWidth == width && newHeight == height { return self }
        let horizontal = ResampleTable(from: width, to: newWidth)
        let vertical = ResampleTable(from: height, to: newHeight)
        let c = channels
        // Horizontal pass into Float rows [H, newW, C], then vertical into [newH, newW, C].
        func run<T: BinaryInteger>(_ values: [T], maxValue: Float, make: (Float) -> T) -> [T] {
            var rows = [Float](repeating: 0, count: height * newWidth * c)
            values.withUnsafeBufferPointer { src in
                rows.withUnsafeMutableBufferPointer { dst in
                    for y in 0..<height {
                        let srcRow = y * width * c, dstRow = y * newWidth * c
                        for ox in 0..<newWidth {
                            let taps = horizontal.taps(ox)
                            for channel in 0..<c {
                                var sum: Float = 0
                                for t in taps {
                                    sum += Float(src[srcRow + horizontal.index[t] * c + channel]) * horizontal.weight[t]
                                }
                                dst[dstRow + ox * c + channel] = sum
                            }
                        }
                    }
                }
            }
            var out = [T](repeating: 0, count: newHeight * newWidth * c)
            rows.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    let rowLength = newWidth * c
                    var accumulator = [Float](repeating: 0, count: rowLength)
                    for oy in 0..<newHeight {
                        for i in 0..<rowLength { accumulator[i] = 0 }
                        for t in vertical.taps(oy) {
                            let base = vertical.index[t] * rowLength, w = vertical.weight[t]
                            for i in 0..<rowLength { accumulator[i] += src[base + i] * w }
                        }
                        for i in 0..<rowLength {
                            dst[oy * rowLength + i] = make(min(max(accumulator[i], 0), maxValue))
                        }
                    }
                }
            }
            return out
        }
        return mapSamples(
            channels: c, width: newWidth, height: newHeight,
            { run($0, maxValue: 255) { UInt8($0 + 0.5) } },
            { run($0, maxValue: 65535) { UInt16($0 + 0.5) } })
    }
}

/// For one axis, the input indices and weights that make each output position.
struct ResampleTable {
    var start: [Int] = []   // first tap of output i
    var index: [Int] = []   // input index of each tap
    var weight: [Float] = []

    func taps(_ i: Int) -> Range<Int> { start[i]..<start[i + 1] }

    init(from inputSize: Int, to outputSize: Int) {
        let scale = Double(inputSize) / Double(outputSize)
        start.reserveCapacity(outputSize + 1)
        for o in 0..<outputSize {
            start.append(index.count)
            if scale > 1 {
                // Area averaging: output pixel o covers input [o*scale, (o+1)*scale).
                let lo = Double(o) * scale, hi = Double(o + 1) * scale
                var i = Int(lo)
                while Double(i) < hi && i < inputSize {
                    let covered = min(hi, Double(i + 1)) - max(lo, Double(i))
                    if covered > 1e-9 {
                        index.append(i)
                        weight.append(Float(covered / scale))
                    }
                    i += 1
                }
            } else {
                // Bilinear between pixel centres, edges clamped.
                let centre = (Double(o) + 0.5) * scale - 0.5
                let clamped = min(max(centre, 0), Double(inputSize - 1))
                let i0 = Int(clamped.rounded(.down))
                let i1 = min(i0 + 1, inputSize - 1)
                let f = clamped - Double(i0)
                index.append(i0)
                weight.append(Float(1 - f))
                if i1 != i0 && f > 0 {
                    index.append(i1)
                    weight.append(Float(f))
                }
            }
        }
        start.append(index.count)
    }
}

private func dropLast<T>(_ values: [T], from channels: Int) -> [T] {
    let pixels = values.count / channels
    var out = [T]()
    out.reserveCapacity(pixels * (channels - 1))
    for p in 0..<pixels {
        let base = p * channels
        for c in 0..<(channels - 1) { out.append(values[base + c]) }
    }
    return out
}

private func luma<T: FixedWidthInteger & UnsignedInteger>(_ values: [T], channels: Int) -> [T] {
    let pixels = values.count / channels
    return [T](unsafeUninitializedCapacity: pixels) { out, initialized in
        values.withUnsafeBufferPointer { src in
            for p in 0..<pixels {
                let r = UInt64(src[p * channels]), g = UInt64(src[p * channels + 1]), b = UInt64(src[p * channels + 2])
                out[p] = T(truncatingIfNeeded: (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
            }
        }
        initialized = pixels
    }
}

private func replicate<T: FixedWidthInteger>(_ values: [T]) -> [T] {
    [T](unsafeUninitializedCapacity: values.count * 3) { out, initialized in
        values.withUnsafeBufferPointer { source in
            guard let target = out.baseAddress else { return }
            for i in 0..<source.count {
                let v = source[i]
                (target + 3 * i).initialize(repeating: v, count: 3)
            }
        }
        initialized = values.count * 3
    }
}

// Pooling kernels, NHWC: [N, H, W, C] -> [N, OH, OW, C]. Windows are described by a
// ConvGeometry with inChannels == outChannels == C (groups unused).
import TensorCore

/// Max pooling forward. Padding never wins (padded taps are skipped, as in PyTorch).
/// Returns the output and, for backward, the flat input index that won each output.
func maxPoolForward(_ input: Tensor, geometry g: ConvGeometry) -> (Tensor, [Int32]) {
    let c = g.inChannels
    var output = Tensor(zeros: [g.batch, g.outHeight, g.outWidth, c])
    var winners = [Int32](repeating: -1, count: output.count)
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            for n in 0..<g.batch {
                for oy in 0..<g.outHeight {
                    for ox in 0..<g.outWidth {
                        let o = ((n * g.outHeight + oy) * g.outWidth + ox) * c
                        for ch in 0..<c {
                            var best = -Float.infinity, at = -1
                            for ky in 0..<g.kernelHeight {
                                let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                                if iy < 0 || iy >= g.height { continue }
                                for kx in 0..<g.kernelWidth {
                                    let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                                    if ix < 0 || ix >= g.width { continue }
                                    let i = ((n * g.height + iy) * g.width + ix) * c + ch
                                    if x[i] > best || at < 0 { best = x[i]; at = i }
                                }
                            }
                            y[o + ch] = at >= 0 ? best : 0
                            winners[o + ch] = Int32(at)
                        }
                    }
                }
            }
        }
    }
    return (output, winners)
}

/// Max pooling backward: each output's gradient goes to the input that won it.
func maxPoolBackward(_ gradOutput: Tensor, winners: [Int32], inputShape: [Int]) -> Tensor {
    var dx = Tensor(zeros: inputShape)
    gradOutput.withUnsafeBufferPointer { dy in
        dx.withUnsafeMutableBufferPointer { out in
            for (o, i) in winners.enumerated() where i >= 0 { out[Int(i)] += dy[o] }
        }
    }
    return dx
}

/// Average pooling forward. With `countPadding` the divisor is the full window (PyTorch's
/// `count_include_pad=True`), otherwise the number of taps inside the input.
func avgPoolForward(_ input: Tensor, geometry g: ConvGeometry, countPadding: Bool) -> Tensor {
    let c = g.inChannels
    var output = Tensor(zeros: [g.batch, g.outHeight, g.outWidth, c])
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            forEachWindow(g, countPadding: countPadding) { o, taps, divisor in
                for ch in 0..<c {
                    var sum: Float = 0
                    for i in taps { sum += x[i + ch] }
                    y[o + ch] = sum / divisor
                }
            }
        }
    }
    return output
}

/// Average pooling backward: each output's gradient is spread evenly over its taps.
func avgPoolBackward(_ gradOutput: Tensor, geometry g: ConvGeometry, countPadding: Bool) -> Tensor {
    let c = g.inChannels
    var dx = Tensor(zeros: [g.batch, g.height, g.width, c])
    gradOutput.withUnsafeBufferPointer { dy in
        dx.withUnsafeMutableBufferPointer { out in
            forEachWindow(g, countPadding: countPadding) { o, taps, divisor in
                for ch in 0..<c {
                    let share = dy[o + ch] / divisor
                    for i in taps { out[i + ch] += share }
                }
            }
        }
    }
    return dx
}

/// Calls `body(outputOffset, inputOffsets, divisor)` for every window; offsets point at
/// channel 0 of a pixel.
private func forEachWindow(_ g: ConvGeometry, countPadding: Bool, _ body: (Int, [Int], Float) -> Void) {
    let c = g.inChannels
    var taps: [Int] = []
    for n in 0..<g.batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                taps.removeAll(keepingCapacity: true)
                for ky in 0..<g.kernelHeight {
                    let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                    if iy < 0 || iy >= g.height { continue }
                    for kx in 0..<g.kernelWidth {
                        let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                        if ix < 0 || ix >= g.width { continue }
                        taps.append(((n * g.height + iy) * g.width + ix) * c)
                    }
                }
                let divisor = countPadding ? Float(g.kernelHeight * g.kernelWidth) : Float(Swift.max(taps.count, 1))
                body(((n * g.outHeight + oy) * g.outWidth + ox) * c, taps, divisor)
            }
        }
    }
}

/// The input rows `[start, end)` that adaptive pooling averages for output `i` of `outSize`
/// (PyTorch's rule: floor(i * in / out) to ceil((i + 1) * in / out)).
func adaptiveRange(_ i: Int, inSize: Int, outSize: Int) -> Range<Int> {
    let start = (i * inSize) / outSize
    let end = ((i + 1) * inSize + outSize - 1) / outSize
    return start..<end
}

/// Adaptive average pooling to `[N, outH, outW, C]`; `outH = outW = 1` is global pooling.
func adaptiveAvgPoolForward(_ input: Tensor, outHeight: Int, outWidth: Int) -> Tensor {
    let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    var output = Tensor(zeros: [n, outHeight, outWidth, c])
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            for b in 0..<n {
                for oy in 0..<outHeight {
                    let ys = adaptiveRange(oy, inSize: h, outSize: outHeight)
                    for ox in 0..<outWidth {
                        let xs = adaptiveRange(ox, inSize: w, outSize: outWidth)
                        let o = ((b * outHeight + oy) * outWidth + ox) * c
                        let scale = 1 / Float(ys.count * xs.count)
                        for iy in ys {
                            for ix in xs {
                                let i = ((b * h + iy) * w + ix) * c
                                for ch in 0..<c { y[o + ch] += x[i + ch] }
                            }
                        }
                        for ch in 0..<c { y[o + ch] *= scale }
                    }
                }
            }
        }
    }
    return output
}

/// Adaptive average pooling backward.
func adaptiveAvgPoolBackward(_ gradOutput: Tensor, inputShape: [Int]) -> Tensor {
    let (n, h, w, c) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (outHeight, outWidth) = (gradOutput.shape[1], gradOutput.shape[2])
    var dx = Tensor(zeros: inputShape)
    gradOutput.withUnsafeBufferPointer { dy in
        dx.withUnsafeMutableBufferPointer { out in
            for b in 0..<n {
                for oy in 0..<outHeight {
                    let ys = adaptiveRange(oy, inSize: h, outSize: outHeight)
                    for ox in 0..<outWidth {
                        let xs = adaptiveRange(ox, inSize: w, outSize: outWidth)
                        let o = ((b * outHeight + oy) * outWidth + ox) * c
                        let scale = 1 / Float(ys.count * xs.count)
                        for iy in ys {
                            for ix in xs {
                                let i = ((b * h + iy) * w + ix) * c
                                for ch in 0..<c { out[i + ch] += dy[o + ch] * scale }
                            }
                        }
                    }
                }
            }
        }
    }
    return dx
}

/// Max pooling for inference: no record of the winners, 16 channels per SIMD register,
/// split by output row. Padded taps are skipped, as in ``maxPoolForward(_:geometry:)``.
func maxPoolInference(_ input: Tensor, geometry g: ConvGeometry, pool: ThreadPool?) -> Tensor {
    let c = g.inChannels
    var output = Tensor(zeros: [g.batch, g.outHeight, g.outWidth, c])
    input.withUnsafeBufferPointer { xb in
        output.withUnsafeMutableBufferPointer { yb in
            let source = UnsafeSharedPointer(readOnly: xb.baseAddress!), target = UnsafeSharedPointer(yb.baseAddress!)
            let body: @Sendable (Range<Int>) -> Void = { rows in
                let x = source.pointer, y = target.pointer
                for rowIndex in rows {
                    let n = rowIndex / g.outHeight, oy = rowIndex % g.outHeight
                    for ox in 0..<g.outWidth {
                        let out = y + (rowIndex * g.outWidth + ox) * c
                        var first = true
                        for ky in 0..<g.kernelHeight {
                            let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                            if iy < 0 || iy >= g.height { continue }
                            for kx in 0..<g.kernelWidth {
                                let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                                if ix < 0 || ix >= g.width { continue }
                                let tap = x + ((n * g.height + iy) * g.width + ix) * c
                                if first {
                                    out.update(from: tap, count: c)
                                    first = false
                                    continue
                                }
                                var ch = 0
                                while ch + 16 <= c {
                                    let a = UnsafeRawPointer(out + ch).loadUnaligned(as: SIMD16<Float>.self)
                                    let b = UnsafeRawPointer(tap + ch).loadUnaligned(as: SIMD16<Float>.self)
                                    UnsafeMutableRawPointer(out + ch).storeBytes(of: a.replacing(with: b, where: b .> a),
                                                                                 as: SIMD16<Float>.self)
                                    ch += 16
                                }
                                // leftovers
                                while ch < c { if tap[ch] > out[ch] { out[ch] = tap[ch] }; ch += 1 }
                            }
                        }
                    }
                }
            }
            let rows = g.batch * g.outHeight
            if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
        }
    }
    return output
}

// Bilinear resizing of NHWC feature maps, PyTorch's `interpolate(mode="bilinear",
// align_corners=False)`: source coordinate (dst + 0.5) * in/out - 0.5, clamped at 0.
import TensorCore

/// For one axis: the two source indices and the weight of the second for each output.
struct BilinearAxis {
    var lower: [Int], upper: [Int], fraction: [Float]

    init(inSize: Int, outSize: Int) {
        lower = []; upper = []; fraction = []
        let scale = Double(inSize) / Double(outSize)
        for o in 0..<outSize {
            let source = Swift.max((Double(o) + 0.5) * scale - 0.5, 0)
            let i0 = Swift.min(Int(source), inSize - 1)
            lower.append(i0)
            upper.append(Swift.min(i0 + 1, inSize - 1))
            fraction.append(Float(source - Double(i0)))
        }
    }
}

/// Bilinear resize of `[N, H, W, C]` to `[N, outH, outW, C]`.
func bilinearResizeForward(_ input: Tensor, outHeight: Int, outWidth: Int) -> Tensor {
    let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let ay = BilinearAxis(inSize: h, outSize: outHeight), ax = BilinearAxis(inSize: w, outSize: outWidth)
    var output = Tensor(zeros: [n, outHeight, outWidth, c])
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            for b in 0..<n {
                for oy in 0..<outHeight {
                    let fy = ay.fraction[oy]
                    let r0 = (b * h + ay.lower[oy]) * w, r1 = (b * h + ay.upper[oy]) * w
                    for ox in 0..<outWidth {
                        let fx = ax.fraction[ox]
                        let p00 = (r0 + ax.lower[ox]) * c, p01 = (r0 + ax.upper[ox]) * c
                        let p10 = (r1 + ax.lower[ox]) * c, p11 = (r1 + ax.upper[ox]) * c
                        let o = ((b * outHeight + oy) * outWidth + ox) * c
                        for ch in 0..<c {
                            let top = x[p00 + ch] * (1 - fx) + x[p01 + ch] * fx
                            let bottom = x[p10 + ch] * (1 - fx) + x[p11 + ch] * fx
                            y[o + ch] = top * (1 - fy) + bottom * fy
                        }
                    }
                }
            }
        }
    }
    return output
}

/// Backward of ``bilinearResizeForward(_:outHeight:outWidth:)``.
func bilinearResizeBackward(_ gradOutput: Tensor, inputShape: [Int]) -> Tensor {
    let (n, h, w, c) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (outHeight, outWidth) = (gradOutput.shape[1], gradOutput.shape[2])
    let ay = BilinearAxis(inSize: h, outSize: outHeight), ax = BilinearAxis(inSize: w, outSize: outWidth)
    var dx = Tensor(zeros: inputShape)
    gradOutput.withUnsafeBufferPointer { dy in
        dx.withUnsafeMutableBufferPointer { out in
            for b in 0..<n {
                for oy in 0..<outHeight {
                    let fy = ay.fraction[oy]
                    let r0 = (b * h + ay.lower[oy]) * w, r1 = (b * h + ay.upper[oy]) * w
                    for ox in 0..<outWidth {
                        let fx = ax.fraction[ox]
                        let p00 = (r0 + ax.lower[ox]) * c, p01 = (r0 + ax.upper[ox]) * c
                        let p10 = (r1 + ax.lower[ox]) * c, p11 = (r1 + ax.upper[ox]) * c
                        let o = ((b * outHeight + oy) * outWidth + ox) * c
                        for ch in 0..<c {
                            let g = dy[o + ch]
                            out[p00 + ch] += g * (1 - fx) * (1 - fy)
                            out[p01 + ch] += g * fx * (1 - fy)
                            out[p10 + ch] += g * (1 - fx) * fy
                            out[p11 + ch] += g * fx * fy
                        }
                    }
                }
            }
        }
    }
    return dx
}

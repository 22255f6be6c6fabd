// Batch normalisation over the channel axis of NHWC tensors: statistics per channel over
// the M = N*H*W positions. Accumulation is in Double so that the statistics of large
// batches do not lose precision.
import TensorCore

/// Per-channel batch statistics of `[M, C]` values: mean and biased variance.
func channelStatistics(_ x: UnsafePointer<Float>, rows: Int, channels: Int) -> (mean: [Double], variance: [Double]) {
    var sum = [Double](repeating: 0, count: channels)
    var squares = [Double](repeating: 0, count: channels)
    for r in 0..<rows {
        let row = x + r * channels
        for c in 0..<channels {
            let v = Double(row[c])
            sum[c] += v
            squares[c] += v * v
        }
    }
    let count = Double(Swift.max(rows, 1))
    let mean = sum.map { $0 / count }
    let variance = (0..<channels).map { Swift.max(0, squares[$0] / count - mean[$0] * mean[$0]) }
    return (mean, variance)
}

/// The result of a training-mode batch-norm forward: the output and what backward needs.
struct BatchNormForward {
    var output: Tensor
    var normalized: Tensor     // x-hat, [M, C] as the input's shape
    var inverseStd: [Float]    // 1 / sqrt(var + eps), [C]
    var batchMean: [Double]
    var batchVariance: [Double]
}

/// Training-mode forward: normalise with the batch's own statistics.
func batchNormTrainForward(_ input: Tensor, gamma: Tensor, beta: Tensor, epsilon: Float) -> BatchNormForward {
    let c = input.shape.last!
    let rows = input.count / Swift.max(c, 1)
    let stats = input.withUnsafeBufferPointer { channelStatistics($0.baseAddress!, rows: rows, channels: c) }
    let inverseStd = stats.variance.map { Float(1 / ($0 + Double(epsilon)).squareRoot()) }
    let mean = stats.mean.map { Float($0) }
    var normalized = Tensor(zeros: input.shape)
    var output = Tensor(zeros: input.shape)
    let g = gamma.scalars, b = beta.scalars
    input.withUnsafeBufferPointer { x in
        normalized.withUnsafeMutableBufferPointer { xh in
            output.withUnsafeMutableBufferPointer { y in
                for r in 0..<rows {
                    for ch in 0..<c {
                        let i = r * c + ch
                        let v = (x[i] - mean[ch]) * inverseStd[ch]
                        xh[i] = v
                        y[i] = v * g[ch] + b[ch]
                    }
                }
            }
        }
    }
    return BatchNormForward(output: output, normalized: normalized, inverseStd: inverseStd,
                            batchMean: stats.mean, batchVariance: stats.variance)
}

/// Training-mode backward. Returns the gradients of input, gamma and beta.
func batchNormTrainBackward(_ gradOutput: Tensor, forward f: BatchNormForward, gamma: Tensor) -> (Tensor, Tensor, Tensor) {
    let c = gradOutput.shape.last!
    let rows = gradOutput.count / Swift.max(c, 1)
    var dGamma = [Double](repeating: 0, count: c), dBeta = [Double](repeating: 0, count: c)
    gradOutput.withUnsafeBufferPointer { dy in
        f.normalized.withUnsafeBufferPointer { xh in
            for r in 0..<rows {
                for ch in 0..<c {
                    let i = r * c + ch
                    dGamma[ch] += Double(dy[i]) * Double(xh[i])
                    dBeta[ch] += Double(dy[i])
                }
            }
        }
    }
    let g = gamma.scalars
    let m = Float(rows)
    var dx = Tensor(zeros: gradOutput.shape)
    gradOutput.withUnsafeBufferPointer { dy in
        f.normalized.withUnsafeBufferPointer { xh in
            dx.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows {
                    for ch in 0..<c {
                        let i = r * c + ch
                        let scale = g[ch] * f.inverseStd[ch] / m
                        out[i] = scale * (m * dy[i] - Float(dBeta[ch]) - xh[i] * Float(dGamma[ch]))
                    }
                }
            }
        }
    }
    return (dx, Tensor(dGamma.map { Float($0) }, shape: [c]), Tensor(dBeta.map { Float($0) }, shape: [c]))
}

/// The affine form of an inference-mode batch norm: `y = x * scale + shift` per channel.
func batchNormAffine(gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVariance: Tensor,
                     epsilon: Float) -> (scale: [Float], shift: [Float]) {
    let g = gamma.scalars, b = beta.scalars, mu = runningMean.scalars, v = runningVariance.scalars
    var scale = [Float](repeating: 0, count: g.count), shift = scale
    for c in 0..<g.count {
        let s = Double(g[c]) / (Double(v[c]) + Double(epsilon)).squareRoot()
        scale[c] = Float(s)
        shift[c] = Float(Double(b[c]) - Double(mu[c]) * s)
    }
    return (scale, shift)
}

/// `y[r, c] = x[r, c] * scale[c] + shift[c]` over the last axis.
func channelAffine(_ input: Tensor, scale: [Float], shift: [Float]) -> Tensor {
    let c = scale.count
    precondition(input.shape.last == c, "channelAffine: input \(input.shape) for \(c) channels")
    var output = Tensor(zeros: input.shape)
    input.withUnsafeBufferPointer { x in
        output.withUnsafeMutableBufferPointer { y in
            for r in 0..<(input.count / Swift.max(c, 1)) {
                for ch in 0..<c { y[r * c + ch] = x[r * c + ch] * scale[ch] + shift[ch] }
            }
        }
    }
    return output
}

/// Sums `[M, C]` values over M: `[C]`, accumulated in Double.
func columnSums(_ tensor: Tensor) -> Tensor {
    let c = tensor.shape.last ?? 1
    var sums = [Double](repeating: 0, count: c)
    tensor.withUnsafeBufferPointer { x in
        for r in 0..<(tensor.count / Swift.max(c, 1)) {
            for ch in 0..<c { sums[ch] += Double(x[r * c + ch]) }
        }
    }
    return Tensor(sums.map { Float($0) }, shape: [c])
}

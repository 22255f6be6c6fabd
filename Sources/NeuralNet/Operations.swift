// Differentiable operations on Variables. Each computes its value with the kernels in
// Kernels/ and records the pullback that the gradient tests check against finite
// differences.
import TensorCore

// MARK: - Convolution, normalisation, activation

/// 2-D convolution, NHWC.
///
/// - Parameters:
///   - input: `[N, H, W, Cin]`.
///   - weight: `[KH, KW, Cin/groups, Cout]`.
///   - bias: `[Cout]` or nil.
///   - stride: (vertical, horizontal).
///   - padding: see ``Padding``.
///   - dilation: (vertical, horizontal).
///   - groups: channel groups; `groups == Cin == Cout` is a depthwise convolution.
/// - Returns: `[N, OH, OW, Cout]`.
public func conv2d(
    _ input: Variable, weight: Variable, bias: Variable? = nil, stride: (Int, Int) = (1, 1),
    padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1
) -> Variable {
    let s = input.shape, w = weight.shape
    precondition(s.count == 4 && w.count == 4, "conv2d: input \(s) and weight \(w) must be 4-D (NHWC, HWIO)")
    precondition(w[2] * groups == s[3], "conv2d: weight \(w) with \(groups) groups does not fit input \(s)")
    let geometry = ConvGeometry(
        batch: s[0], height: s[1], width: s[2], inChannels: s[3], outChannels: w[3],
        kernelHeight: w[0], kernelWidth: w[1], stride: stride, padding: padding, dilation: dilation, groups: groups)
    let output = conv2dForward(input.value, weight: weight.value, bias: bias?.value, geometry: geometry)
    let x = input.value, k = weight.value
    var parents = [input, weight]
    if let bias { parents.append(bias) }
    return Variable(output, parents: parents) { grad in
        let (dx, dw, db) = conv2dBackward(x, weight: k, gradOutput: grad, geometry: geometry)
        return bias == nil ? [dx, dw] : [dx, dw, db]
    }
}

/// Running statistics of a batch-norm layer, updated in training mode.
///
/// Held as non-trainable ``Variable``s so that they are saved, loaded and named like the
/// parameters.
public final class BatchNormStatistics {
    /// The running mean, `[C]`.
    public let mean: Variable
    /// The running (unbiased) variance, `[C]`.
    public let variance: Variable
    /// The weight of the current batch in the running average (PyTorch's `momentum`).
    public var momentum: Float

    public init(channels: Int, momentum: Float = 0.1) {
        mean = Variable(Tensor(zeros: [channels]))
        variance = Variable(Tensor(ones: [channels]))
        self.momentum = momentum
    }
}

/// Batch normalisation over the last (channel) axis.
///
/// In training mode, normalises with the batch's statistics and updates `statistics`;
/// otherwise uses the running statistics.
/// - Parameters:
///   - input: `[..., C]` (e.g. NHWC).
///   - gamma: `[C]` scale.
///   - beta: `[C]` shift.
public func batchNorm(
    _ input: Variable, gamma: Variable, beta: Variable, statistics: BatchNormStatistics,
    training: Bool, epsilon: Float = 1e-5
) -> Variable {
    let c = gamma.shape[0]
    precondition(input.shape.last == c && beta.shape == [c], "batchNorm: input \(input.shape), gamma \(gamma.shape), beta \(beta.shape)")
    if training {
        let forward = batchNormTrainForward(input.value, gamma: gamma.value, beta: beta.value, epsilon: epsilon)
        let rows = Double(input.value.count / Swift.max(c, 1))
        let correction = rows > 1 ? rows / (rows - 1) : 1
        let m = Double(statistics.momentum)
        statistics.mean.value = Tensor(zip(statistics.mean.value.scalars, forward.batchMean).map {
            Float((1 - m) * Double($0) + m * $1)
        }, shape: [c])
        statistics.variance.value = Tensor(zip(statistics.variance.value.scalars, forward.batchVariance).map {
            Float((1 - m) * Double($0) + m * $1 * correction)
        }, shape: [c])
        let g = gamma.value
        return Variable(forward.output, parents: [input, gamma, beta]) { grad in
            let (dx, dg, db) = batchNormTrainBackward(grad, forward: forward, gamma: g)
            return [dx, dg, db]
        }
    }
    let (scale, shift) = batchNormAffine(gamma: gamma.value, beta: beta.value, runningMean: statistics.mean.value,
                                          runningVariance: statistics.variance.value, epsilon: epsilon)
    let x = input.value
    let inverseStd = statistics.variance.value.scalars.map { 1 / ($0 + epsilon).squareRoot() }
    let mean = statistics.mean.value.scalars
    return Variable(channelAffine(x, scale: scale, shift: shift), parents: [input, gamma, beta]) { grad in
        let dx = channelAffine(grad, scale: scale, shift: [Float](repeating: 0, count: c))
        let normalized = channelAffine(x, scale: inverseStd, shift: zip(mean, inverseStd).map { -$0 * $1 })
        return [dx, columnSums(grad * normalized), columnSums(grad)]
    }
}

/// A pointwise activation.
public func activation(_ input: Variable, _ kind: Activation) -> Variable {
    if kind == .none { return input }
    let x = input.value
    return Variable(x.map { kind.apply($0) }, parents: [input]) { grad in
        var dx = grad
        dx.withUnsafeMutableBufferPointer { g in
            x.withUnsafeBufferPointer { v in
                for i in 0..<g.count { g[i] *= kind.derivative(v[i]) }
            }
        }
        return [dx]
    }
}

/// `max(x, 0)`.
public func relu(_ x: Variable) -> Variable { activation(x, .relu) }
/// `min(max(x, 0), 6)`.
public func relu6(_ x: Variable) -> Variable { activation(x, .relu6) }
/// `x * sigmoid(x)`.
public func silu(_ x: Variable) -> Variable { activation(x, .silu) }
/// `x` for positive `x`, `slope * x` otherwise.
public func leakyRelu(_ x: Variable, slope: Float = 0.01) -> Variable { activation(x, .leakyRelu(slope: slope)) }

// MARK: - Pooling and resizing

/// Max pooling over `[N, H, W, C]`.
public func maxPool2d(_ input: Variable, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid) -> Variable {
    let s = input.shape
    let g = ConvGeometry(batch: s[0], height: s[1], width: s[2], inChannels: s[3], outChannels: s[3],
                         kernelHeight: kernel.0, kernelWidth: kernel.1, stride: stride, padding: padding)
    let (output, winners) = maxPoolForward(input.value, geometry: g)
    return Variable(output, parents: [input]) { grad in [maxPoolBackward(grad, winners: winners, inputShape: s)] }
}

/// Average pooling over `[N, H, W, C]`.
/// - Parameter countPadding: divide by the whole window even where it covers padding.
public func avgPool2d(_ input: Variable, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                      countPadding: Bool = true) -> Variable {
    let g = poolGeometry(input.shape, kernel: kernel, stride: stride, padding: padding)
    let output = avgPoolForward(input.value, geometry: g, countPadding: countPadding)
    return Variable(output, parents: [input]) { grad in [avgPoolBackward(grad, geometry: g, countPadding: countPadding)] }
}

/// ``avgPool2d(_:kernel:stride:padding:countPadding:)`` on a tensor, for inference: no
/// autograd graph is built.
public func avgPool2d(_ input: Tensor, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                      countPadding: Bool = true) -> Tensor {
    avgPoolForward(input, geometry: poolGeometry(input.shape, kernel: kernel, stride: stride, padding: padding),
                   countPadding: countPadding)
}

private func poolGeometry(_ s: [Int], kernel: (Int, Int), stride: (Int, Int), padding: Padding) -> ConvGeometry {
    ConvGeometry(batch: s[0], height: s[1], width: s[2], inChannels: s[3], outChannels: s[3],
                 kernelHeight: kernel.0, kernelWidth: kernel.1, stride: stride, padding: padding)
}

/// Adaptive average pooling of `[N, H, W, C]` to `[N, outHeight, outWidth, C]`.
public func adaptiveAvgPool2d(_ input: Variable, outHeight: Int, outWidth: Int) -> Variable {
    let s = input.shape
    let output = adaptiveAvgPoolForward(input.value, outHeight: outHeight, outWidth: outWidth)
    return Variable(output, parents: [input]) { grad in [adaptiveAvgPoolBackward(grad, inputShape: s)] }
}

/// Global average pooling: `[N, H, W, C]` to `[N, C]`.
public func globalAvgPool(_ input: Variable) -> Variable {
    let s = input.shape
    return adaptiveAvgPool2d(input, outHeight: 1, outWidth: 1).reshaped([s[0], s[3]])
}

/// ``globalAvgPool(_:)`` on a tensor, for inference: `[N, H, W, C]` to `[N, C]`, no autograd
/// graph.
public func globalAvgPool(_ input: Tensor) -> Tensor {
    let s = input.shape
    return adaptiveAvgPoolForward(input, outHeight: 1, outWidth: 1).reshaped([s[0], s[3]])
}

/// Bilinear resize of `[N, H, W, C]` (align_corners = false).
public func bilinearResize(_ input: Variable, height: Int, width: Int) -> Variable {
    let s = input.shape
    let output = bilinearResizeForward(input.value, outHeight: height, outWidth: width)
    return Variable(output, parents: [input]) { grad in [bilinearResizeBackward(grad, inputShape: s)] }
}

/// ``bilinearResize(_:height:width:)`` on a tensor, for inference: no autograd graph.
public func bilinearResize(_ input: Tensor, height: Int, width: Int) -> Tensor {
    bilinearResizeForward(input, outHeight: height, outWidth: width)
}

// MARK: - Shape

extension Variable {
    /// The same values with another shape of equal element count.
    public func reshaped(_ shape: [Int]) -> Variable {
        let original = self.shape
        return Variable(value.reshaped(shape), parents: [self]) { grad in [grad.reshaped(original)] }
    }

    /// `[N, ...]` to `[N, product of the rest]`.
    public func flattened() -> Variable {
        let n = shape.first ?? 1
        return reshaped([n, value.count / Swift.max(n, 1)])
    }
}

/// Concatenation along the last (channel) axis; all other axes must agree.
public func concatChannels(_ inputs: [Variable]) -> Variable {
    let output = concatChannels(inputs.map(\.value))
    let lead = Array(inputs[0].shape.dropLast()), widths = inputs.map { $0.shape.last! }
    let total = widths.reduce(0, +), rows = lead.reduce(1, *)
    return Variable(output, parents: inputs) { grad in
        var offset = 0
        return widths.map { width in
            var part = Tensor(zeros: lead + [width])
            part.withUnsafeMutableBufferPointer { dst in
                grad.withUnsafeBufferPointer { src in
                    for r in 0..<rows { (dst.baseAddress! + r * width).update(from: src.baseAddress! + r * total + offset, count: width) }
                }
            }
            offset += width
            return part
        }
    }
}

/// `concatChannels(_:)` on tensors, for inference: no autograd graph.
public func concatChannels(_ inputs: [Tensor]) -> Tensor {
    precondition(!inputs.isEmpty, "concatChannels: no inputs")
    let lead = Array(inputs[0].shape.dropLast())
    for v in inputs {
        precondition(Array(v.shape.dropLast()) == lead, "concatChannels: shapes \(inputs.map(\.shape)) differ outside the last axis")
    }
    let widths = inputs.map { $0.shape.last! }
    let total = widths.reduce(0, +)
    let rows = lead.reduce(1, *)
    var output = Tensor(zeros: lead + [total])
    output.withUnsafeMutableBufferPointer { out in
        var offset = 0
        for (v, width) in zip(inputs, widths) {
            v.withUnsafeBufferPointer { src in
                for r in 0..<rows { (out.baseAddress! + r * total + offset).update(from: src.baseAddress! + r * width, count: width) }
            }
            offset += width
        }
    }
    return output
}

// MARK: - Arithmetic

/// Element-wise sum of two variables of the same shape (residual connections).
public func + (lhs: Variable, rhs: Variable) -> Variable {
    precondition(lhs.shape == rhs.shape, "Variable +: shapes \(lhs.shape) and \(rhs.shape) differ")
    return Variable(lhs.value + rhs.value, parents: [lhs, rhs]) { grad in [grad, grad] }
}

/// Element-wise difference of two variables of the same shape.
public func - (lhs: Variable, rhs: Variable) -> Variable {
    precondition(lhs.shape == rhs.shape, "Variable -: shapes \(lhs.shape) and \(rhs.shape) differ")
    return Variable(lhs.value - rhs.value, parents: [lhs, rhs]) { grad in [grad, -grad] }
}

/// Element-wise product of two variables of the same shape.
public func * (lhs: Variable, rhs: Variable) -> Variable {
    precondition(lhs.shape == rhs.shape, "Variable *: shapes \(lhs.shape) and \(rhs.shape) differ")
    let a = lhs.value, b = rhs.value
    return Variable(a * b, parents: [lhs, rhs]) { grad in [grad * b, grad * a] }
}

/// A variable scaled by a constant.
public func * (lhs: Float, rhs: Variable) -> Variable {
    Variable(lhs * rhs.value, parents: [rhs]) { grad in [lhs * grad] }
}

/// Matrix product of 2-D variables, `op(a) x op(b)`.
public func matmul(_ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false) -> Variable {
    let x = a.value, y = b.value
    let output = TensorCore.matmul(x, y, transposeA: transposeA, transposeB: transposeB)
    return Variable(output, parents: [a, b]) { grad in
        // C = op(A) op(B): dA = dC op(B)^T (transposed back if A was), likewise dB.
        let da = transposeA ? TensorCore.matmul(y, grad, transposeA: transposeB, transposeB: true)
                            : TensorCore.matmul(grad, y, transposeB: !transposeB)
        let db = transposeB ? TensorCore.matmul(grad, x, transposeA: true, transposeB: transposeA)
                            : TensorCore.matmul(x, grad, transposeA: !transposeA)
        return [da, db]
    }
}

/// A fully connected layer: `x W^T + b`, PyTorch's layout.
/// - Parameters:
///   - input: `[N, in]`.
///   - weight: `[out, in]`.
///   - bias: `[out]` or nil.
public func linear(_ input: Variable, weight: Variable, bias: Variable?) -> Variable {
    let product = matmul(input, weight, transposeB: true)
    guard let bias else { return product }
    return addRowVector(product, bias)
}

/// `x[r, :] + v` for every row of a `[N, D]` variable.
public func addRowVector(_ x: Variable, _ v: Variable) -> Variable {
    let d = v.shape[0]
    precondition(x.shape.last == d, "addRowVector: \(x.shape) + \(v.shape)")
    var output = x.value
    let values = v.value.scalars
    output.withUnsafeMutableBufferPointer { out in
        for r in 0..<(out.count / Swift.max(d, 1)) { for c in 0..<d { out[r * d + c] += values[c] } }
    }
    return Variable(output, parents: [x, v]) { grad in [grad, columnSums(grad)] }
}

/// `x[r, c] * s[c]` for every row of a `[N, D]` variable: a per-feature scale `s` `[D]`
/// (the diagonal part of a projection head, without building a `[D, D]` matrix).
public func scaledColumns(_ x: Variable, _ s: Variable) -> Variable {
    let d = s.shape[0]
    precondition(s.shape.count == 1 && x.shape.count == 2 && x.shape[1] == d, "scaledColumns: \(x.shape) * \(s.shape)")
    let rows = x.shape[0]
    let xv = x.value, sv = s.value.scalars
    var output = xv
    output.withUnsafeMutableBufferPointer { out in
        for r in 0..<rows { for c in 0..<d { out[r * d + c] *= sv[c] } }
    }
    return Variable(output, parents: [x, s]) { grad in
        var dx = grad
        var ds = [Float](repeating: 0, count: d)
        dx.withUnsafeMutableBufferPointer { g in
            xv.withUnsafeBufferPointer { v in
                for r in 0..<rows {
                    for c in 0..<d {
                        ds[c] += g[r * d + c] * v[r * d + c]
                        g[r * d + c] *= sv[c]
                    }
                }
            }
        }
        return [dx, Tensor(ds, shape: [d])]
    }
}

/// Inverted dropout: in training, zeroes each element with probability `rate` and scales
/// the rest by `1 / (1 - rate)`; the identity otherwise.
public func dropout<G: RandomNumberGenerator>(_ input: Variable, rate: Float, training: Bool, using generator: inout G) -> Variable {
    guard training, rate > 0 else { return input }
    precondition(rate < 1, "dropout: rate \(rate) must be below 1")
    let keep = 1 / (1 - rate)
    let mask = Tensor((0..<input.value.count).map { _ in Float.random(in: 0..<1, using: &generator) < rate ? 0 : keep },
                      shape: input.shape)
    return Variable(input.value * mask, parents: [input]) { grad in [grad * mask] }
}

// MARK: - Reductions and losses

extension Variable {
    /// The sum of all elements, as a scalar variable of shape `[]`.
    public func sum() -> Variable {
        let shape = self.shape
        let total = value.withUnsafeBufferPointer { $0.reduce(0.0) { $0 + Double($1) } }
        return Variable(Tensor([Float(total)], shape: []), parents: [self]) { grad in
            [Tensor(repeating: grad.scalars[0], shape: shape)]
        }
    }

    /// The mean of all elements, as a scalar variable.
    public func mean() -> Variable { (1 / Float(Swift.max(value.count, 1))) * sum() }
}

/// Row-wise log-softmax of `[N, K]` logits.
public func logSoftmax(_ logits: Variable) -> Variable {
    let (n, k) = (logits.shape[0], logits.shape[1])
    var output = logits.value
    output.withUnsafeMutableBufferPointer { y in
        for r in 0..<n {
            let row = y.baseAddress! + r * k
            var top = -Float.infinity
            for j in 0..<k { top = Swift.max(top, row[j]) }
            var total: Double = 0
            for j in 0..<k { total += Double(_exp(row[j] - top)) }
            let shift = top + Float(_log(total))
            for j in 0..<k { row[j] -= shift }
        }
    }
    let logProbabilities = output
    return Variable(output, parents: [logits]) { grad in
        // d/dx_j = g_j - softmax_j * sum(g)
        var dx = grad
        dx.withUnsafeMutableBufferPointer { d in
            logProbabilities.withUnsafeBufferPointer { lp in
                for r in 0..<n {
                    var total: Float = 0
                    for j in 0..<k { total += d[r * k + j] }
                    for j in 0..<k { d[r * k + j] -= _exp(lp[r * k + j]) * total }
                }
            }
        }
        return [dx]
    }
}

/// Mean negative log-likelihood of the true classes: `-mean(logProbabilities[i, label_i])`.
public func negativeLogLikelihood(_ logProbabilities: Variable, labels: [Int]) -> Variable {
    let (n, k) = (logProbabilities.shape[0], logProbabilities.shape[1])
    precondition(labels.count == n && labels.allSatisfy { (0..<k).contains($0) },
                 "negativeLogLikelihood: \(labels.count) labels in 0..<\(k) for \(n) rows")
    let lp = logProbabilities.value.scalars
    let loss = -labels.enumerated().reduce(0.0) { $0 + Double(lp[$1.offset * k + $1.element]) } / Double(n)
    return Variable(Tensor([Float(loss)], shape: []), parents: [logProbabilities]) { grad in
        var d = [Float](repeating: 0, count: n * k)
        for (i, label) in labels.enumerated() { d[i * k + label] = -grad.scalars[0] / Float(n) }
        return [Tensor(d, shape: [n, k])]
    }
}

/// Cross-entropy of `[N, K]` logits against integer labels, averaged over the batch.
public func crossEntropy(_ logits: Variable, labels: [Int]) -> Variable {
    negativeLogLikelihood(logSoftmax(logits), labels: labels)
}

/// Squared Euclidean distances between the rows of `a` `[N, D]` and `b` `[M, D]`: `[N, M]`.
public func squaredDistances(_ a: Variable, _ b: Variable) -> Variable {
    let (n, d) = (a.shape[0], a.shape[1]), m = b.shape[0]
    precondition(b.shape == [m, d], "squaredDistances: \(a.shape) against \(b.shape)")
    let x = a.value.scalars, y = b.value.scalars
    var out = [Float](repeating: 0, count: n * m)
    for i in 0..<n {
        for j in 0..<m {
            var s: Float = 0
            for t in 0..<d { let diff = x[i * d + t] - y[j * d + t]; s += diff * diff }
            out[i * m + j] = s
        }
    }
    return Variable(Tensor(out, shape: [n, m]), parents: [a, b]) { grad in
        let g = grad.scalars
        var da = [Float](repeating: 0, count: n * d), db = [Float](repeating: 0, count: m * d)
        for i in 0..<n {
            for j in 0..<m {
                let w = 2 * g[i * m + j]
                if w == 0 { continue }
                for t in 0..<d {
                    let diff = w * (x[i * d + t] - y[j * d + t])
                    da[i * d + t] += diff
                    db[j * d + t] -= diff
                }
            }
        }
        return [Tensor(da, shape: [n, d]), Tensor(db, shape: [m, d])]
    }
}

/// The mean row of each class: `[N, D]` rows with labels in `0..<classes` to `[classes, D]`
/// (the prototypes of a prototypical network). Every class must have a row.
public func classMeans(_ x: Variable, labels: [Int], classes: Int) -> Variable {
    let (n, d) = (x.shape[0], x.shape[1])
    precondition(labels.count == n, "classMeans: \(labels.count) labels for \(n) rows")
    var counts = [Int](repeating: 0, count: classes)
    for label in labels { counts[label] += 1 }
    precondition(counts.allSatisfy { $0 > 0 }, "classMeans: a class has no rows (counts \(counts))")
    let v = x.value.scalars
    var out = [Float](repeating: 0, count: classes * d)
    for (i, label) in labels.enumerated() { for t in 0..<d { out[label * d + t] += v[i * d + t] } }
    for c in 0..<classes { for t in 0..<d { out[c * d + t] /= Float(counts[c]) } }
    return Variable(Tensor(out, shape: [classes, d]), parents: [x]) { grad in
        let g = grad.scalars
        var dx = [Float](repeating: 0, count: n * d)
        for (i, label) in labels.enumerated() {
            for t in 0..<d { dx[i * d + t] = g[label * d + t] / Float(counts[label]) }
        }
        return [Tensor(dx, shape: [n, d])]
    }
}

/// Each row of `[N, D]` divided by its Euclidean norm (plus `epsilon`).
public func l2Normalized(_ x: Variable, epsilon: Float = 1e-8) -> Variable {
    let (n, d) = (x.shape[0], x.shape[1])
    let v = x.value.scalars
    var norms = [Float](repeating: 0, count: n)
    var out = v
    for i in 0..<n {
        var s: Float = 0
        for t in 0..<d { s += v[i * d + t] * v[i * d + t] }
        norms[i] = s.squareRoot() + epsilon
        for t in 0..<d { out[i * d + t] /= norms[i] }
    }
    let y = out
    return Variable(Tensor(out, shape: [n, d]), parents: [x]) { grad in
        let g = grad.scalars
        var dx = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            var dot: Float = 0
            for t in 0..<d { dot += g[i * d + t] * y[i * d + t] }
            for t in 0..<d { dx[i * d + t] = (g[i * d + t] - y[i * d + t] * dot) / norms[i] }
        }
        return [Tensor(dx, shape: [n, d])]
    }
}

/// The sum of squared differences between a variable and a constant target of the same
/// shape, `sum((x - target)^2)`, as a scalar variable: the distillation loss, in one pass
/// instead of a difference, a product and a sum, each holding a tensor as large as a
/// feature map.
///
/// - Parameters:
///   - x: any shape.
///   - target: the same shape as `x`; no gradient flows to it.
public func sumOfSquaredErrors(_ x: Variable, target: Tensor) -> Variable {
    precondition(x.shape == target.shape, "sumOfSquaredErrors: \(x.shape) against target \(target.shape)")
    let difference = x.value - target
    let total = difference.withUnsafeBufferPointer { d in d.reduce(0.0) { $0 + Double($1) * Double($1) } }
    return Variable(Tensor([Float(total)], shape: []), parents: [x]) { grad in
        [(2 * grad.scalars[0]) * difference]
    }
}

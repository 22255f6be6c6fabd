// 2-D convolution kernels, NHWC.
//
// Layouts:
//   input    [N, H, W, Cin]
//   weight   [KH, KW, Cin / groups, Cout]    (HWIO; PyTorch's OIHW is transposed at import)
//   bias     [Cout]
//   output   [N, OH, OW, Cout]
//
// Why NHWC: a 1x1 convolution is then a plain GEMM over [N*H*W, Cin] x [Cin, Cout] with
// no data movement at all, depthwise convolutions vectorise over the contiguous channel
// axis, and im2col copies whole runs of Cin floats per kernel tap. EfficientNet-Lite0 is
// mostly 1x1 and depthwise convolutions, ResNet-18 mostly 3x3 with 64-512 channels: both
// favour channel-contiguous storage.
//
// General convolutions are im2col + GEMM: the patch matrix [N*OH*OW, KH*KW*Cg] (Cg =
// Cin / groups; column (ky * KW + kx) * Cg + ci) times the weight [KH*KW*Cg, Cout].
// Depthwise convolutions (groups == Cin == Cout) use a direct kernel. Every kernel has a
// plain reference in ReferenceConv2d.swift that the tests compare against.
import TensorCore

/// The geometry of one 2-D convolution (or pooling window): sizes, stride, padding,
/// dilation and groups, with the output size derived from them.
public struct ConvGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int
    public var kernelHeight: Int, kernelWidth: Int
    public var strideY: Int, strideX: Int
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    public var dilationY: Int, dilationX: Int
    public var groups: Int

    /// Output height: `(H + padTop + padBottom - dilation*(KH-1) - 1) / stride + 1`.
    public var outHeight: Int { (height + padTop + padBottom - dilationY * (kernelHeight - 1) - 1) / strideY + 1 }
    /// Output width, as ``outHeight``.
    public var outWidth: Int { (width + padLeft + padRight - dilationX * (kernelWidth - 1) - 1) / strideX + 1 }
    /// Input channels per group.
    public var groupInChannels: Int { inChannels / groups }
    /// Output channels per group.
    public var groupOutChannels: Int { outChannels / groups }
    /// Whether this is a depthwise convolution with one filter per channel.
    public var isDepthwise: Bool { groups == inChannels && groups == outChannels && groups > 1 }
    /// Whether the convolution is a pointwise GEMM with no patch extraction.
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideY == 1 && strideX == 1
            && padTop == 0 && padLeft == 0 && padBottom == 0 && padRight == 0 && groups == 1
    }

    public init(
        batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int,
        kernelHeight: Int, kernelWidth: Int, stride: (Int, Int) = (1, 1),
        padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1
    ) {
        precondition(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                     "ConvGeometry: channels \(inChannels) -> \(outChannels) not divisible by groups \(groups)")
        precondition(kernelHeight >= 1 && kernelWidth >= 1 && stride.0 >= 1 && stride.1 >= 1
                     && dilation.0 >= 1 && dilation.1 >= 1, "ConvGeometry: invalid kernel, stride or dilation")
        self.batch = batch; self.height = height; self.width = width
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideY = stride.0; self.strideX = stride.1
        self.dilationY = dilation.0; self.dilationX = dilation.1
        self.groups = groups
        let pads = padding.resolve(height: height, width: width, kernel: (kernelHeight, kernelWidth),
                                   stride: stride, dilation: dilation)
        (padTop, padLeft, padBottom, padRight) = pads
        precondition(outHeight >= 1 && outWidth >= 1,
                     "ConvGeometry: \(height)x\(width) input too small for kernel \(kernelHeight)x\(kernelWidth)")
    }

    public var description: String {
        "conv \(batch)x\(height)x\(width)x\(inChannels) -> \(outChannels), kernel \(kernelHeight)x\(kernelWidth), "
            + "stride \(strideY)x\(strideX), pad (\(padTop),\(padLeft),\(padBottom),\(padRight)), "
            + "dilation \(dilationY)x\(dilationX), groups \(groups)"
    }
}

/// How a convolution or pooling window pads its input.
public enum Padding: Sendable, Equatable, Hashable {
    /// No padding.
    case valid
    /// The same padding on every side.
    case symmetric(Int)
    /// Explicit padding per side.
    case explicit(top: Int, left: Int, bottom: Int, right: Int)
    /// TensorFlow's "SAME": output size `ceil(input / stride)`; when the total padding is
    /// odd, the extra row/column goes at the bottom/right (what EfficientNet-Lite expects).
    case same

    /// The padding of each side for an input of the given size.
    public func resolve(height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int),
                        dilation: (Int, Int) = (1, 1)) -> (Int, Int, Int, Int) {
        switch self {
        case .valid: return (0, 0, 0, 0)
        case .symmetric(let p): return (p, p, p, p)
        case .explicit(let t, let l, let b, let r): return (t, l, b, r)
        case .same:
            func total(_ size: Int, _ k: Int, _ s: Int, _ d: Int) -> Int {
                let out = (size + s - 1) / s
                return Swift.max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            }
            let ph = total(height, kernel.0, stride.0, dilation.0)
            let pw = total(width, kernel.1, stride.1, dilation.1)
            return (ph / 2, pw / 2, ph - ph / 2, pw - pw / 2)
        }
    }
}

// MARK: - Forward

/// Convolution forward with the epilogue fused: `act(conv(x) + bias + residual)`.
///
/// - Parameters:
///   - input: `[N, H, W, Cin]`.
///   - weight: `[KH, KW, Cin/groups, Cout]`.
///   - bias: `[Cout]` or nil.
///   - geometry: sizes, stride, padding, dilation and groups; must match the tensors.
///   - activation: applied last.
///   - residual: `[N, OH, OW, Cout]` added before the activation, or nil.
///   - pool: threads for the GEMM and the patch extraction.
///   - packed: `weight` already packed for ``directConvForward`` (a frozen network keeps
///     it); packed here when nil. Used when `groups == 1`.
/// - Returns: `[N, OH, OW, Cout]`.
public func conv2dForward(
    _ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry,
    activation: Activation = .none, residual: Tensor? = nil, pool: ThreadPool? = .shared,
    packed: PackedConvWeights? = nil
) -> Tensor {
    precondition(input.shape == [g.batch, g.height, g.width, g.inChannels],
                 "conv2dForward: input \(input.shape) does not match \(g)")
    precondition(weight.shape == [g.kernelHeight, g.kernelWidth, g.groupInChannels, g.outChannels],
                 "conv2dForward: weight \(weight.shape) does not match \(g)")
    precondition(bias == nil || bias!.shape == [g.outChannels], "conv2dForward: bias \(bias!.shape) for \(g.outChannels) channels")
    let outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels]
    precondition(residual == nil || residual!.shape == outShape,
                 "conv2dForward: residual \(residual!.shape) does not match output \(outShape)")
    if g.isDepthwise {
        // Direct kernel with the epilogue fused (Depthwise.swift).
        return depthwiseConv2dForward(input, weight: weight, bias: bias, geometry: g, activation: activation,
                                      residual: residual, pool: pool)
    }
    if g.groups == 1 {
        // Every convolution with one group (1x1 included): the direct kernel over packed
        // weights, epilogue fused, every output element written once.
        let weights = packed ?? PackedConvWeights(weight)
        return Tensor(uninitializedShape: outShape) { out in
            input.withUnsafeBufferPointer { x in
                withOptionalPointer(bias) { biasPointer in
                    withOptionalPointer(residual) { residualPointer in
                        directConvForward(x.baseAddress!, weights: weights, bias: biasPointer, residual: residualPointer,
                                          output: out.baseAddress!, geometry: g, activation: activation, pool: pool)
                    }
                }
            }
        }
    }
    return conv2dForwardGEMM(input, weight: weight, bias: bias, geometry: g, activation: activation, residual: residual,
                             pool: pool)
}

/// Convolution forward through im2col and the general ``sgemm`` (any groups), the epilogue
/// as a second pass. ``conv2dForward`` uses it for grouped convolutions that are not
/// depthwise; public so that benchmarks can compare it with the direct kernels.
public func conv2dForwardGEMM(
    _ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry,
    activation: Activation = .none, residual: Tensor? = nil, pool: ThreadPool? = .shared
) -> Tensor {
    let outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels]
    var output = Tensor(zeros: outShape)
    let m = g.batch * g.outHeight * g.outWidth
    output.withUnsafeMutableBufferPointer { out in
        input.withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { w in
                if g.isPointwise {
                    sgemm(transposeA: false, transposeB: false, m: m, n: g.outChannels, k: g.inChannels,
                          alpha: 1, a: x.baseAddress, lda: g.inChannels, b: w.baseAddress, ldb: g.outChannels,
                          beta: 0, c: out.baseAddress, ldc: g.outChannels, pool: pool)
                } else {
                    // Implicit GEMM: the patch matrix goes straight into the GEMM's packed
                    // panels, a cache-sized block at a time, never materialised whole.
                    let k = g.kernelHeight * g.kernelWidth * g.groupInChannels
                    for group in 0..<g.groups {
                        let patches = PatchRows(input: UnsafeSharedPointer(readOnly: x.baseAddress!), geometry: g, group: group)
                        sgemm(m: m, n: g.groupOutChannels, k: k, alpha: 1, rows: patches,
                              b: w.baseAddress! + group * g.groupOutChannels, ldb: g.outChannels,
                              beta: 0, c: out.baseAddress! + group * g.groupOutChannels, ldc: g.outChannels, pool: pool)
                    }
                }
            }
        }
        applyEpilogue(out.baseAddress!, rows: m, channels: g.outChannels, bias: bias,
                      residual: residual, activation: activation, pool: pool)
    }
    return output
}

/// Calls `body` with the tensor's elements, or with nil when there is no tensor.
@inline(__always)
func withOptionalPointer<R>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let tensor else { return body(nil) }
    return tensor.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// `out[r, c] = act(out[r, c] + bias[c] + residual[r, c])` over `[rows, channels]`.
///
/// One pass over the output, 16 channels per SIMD register, pointers bound once per
/// participant: this pass runs after every convolution, so it must cost no more than a
/// memory sweep.
func applyEpilogue(
    _ out: UnsafeMutablePointer<Float>, rows: Int, channels: Int, bias: Tensor?, residual: Tensor?,
    activation: Activation, pool: ThreadPool?
) {
    if bias == nil && residual == nil && activation == .none { return }
    let zeros = bias == nil ? Tensor(zeros: [channels]) : nil
    let biasTensor = bias ?? zeros!
    biasTensor.withUnsafeBufferPointer { biasBuffer in
        let biasPointer = UnsafeSharedPointer(readOnly: biasBuffer.baseAddress!)
        let target = UnsafeSharedPointer(out)
        let run = { (residualPointer: UnsafeSharedPointer<Float>?) in
            let body: @Sendable (Range<Int>) -> Void = { range in
                epilogueRows(target.pointer, range: range, channels: channels, bias: biasPointer.pointer,
                             residual: residualPointer?.pointer, activation: activation)
            }
            if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
        }
        if let residual {
            residual.withUnsafeBufferPointer { run(UnsafeSharedPointer(readOnly: $0.baseAddress!)) }
        } else {
            run(nil)
        }
    }
}

@inline(__always)
private func epilogueRows(_ out: UnsafeMutablePointer<Float>, range: Range<Int>, channels: Int,
                          bias: UnsafeMutablePointer<Float>, residual: UnsafeMutablePointer<Float>?,
                          activation: Activation) {
    let vectorizable: Bool
    let lower: SIMD16<Float>, upper: SIMD16<Float>
    switch activation {
    case .none: (vectorizable, lower, upper) = (true, SIMD16(repeating: -.infinity), SIMD16(repeating: .infinity))
    case .relu: (vectorizable, lower, upper) = (true, SIMD16(repeating: 0), SIMD16(repeating: .infinity))
    case .relu6: (vectorizable, lower, upper) = (true, SIMD16(repeating: 0), SIMD16(repeating: 6))
    default: (vectorizable, lower, upper) = (false, SIMD16(repeating: 0), SIMD16(repeating: 0))
    }
    for r in range {
        let row = out + r * channels
        let res = residual.map { $0 + r * channels }
        var c = 0
        if vectorizable {
            while c + 16 <= channels {
                var v = UnsafeRawPointer(row + c).loadUnaligned(as: SIMD16<Float>.self)
                    + UnsafeRawPointer(bias + c).loadUnaligned(as: SIMD16<Float>.self)
                if let res { v += UnsafeRawPointer(res + c).loadUnaligned(as: SIMD16<Float>.self) }
                // Compare-and-blend: SIMD's `clamped` and `pointwiseMin` lower to a scalar
                // loop per lane (they handle NaN lane by lane); this is two vector ops.
                v = v.replacing(with: lower, where: v .< lower).replacing(with: upper, where: v .> upper)
                UnsafeMutableRawPointer(row + c).storeBytes(of: v, as: SIMD16<Float>.self)
                c += 16
            }
        }
        // leftovers (and the activations without a vector form)
        while c < channels {
            var v = row[c] + bias[c]
            if let res { v += res[c] }
            row[c] = activation.apply(v)
            c += 1
        }
    }
}

/// The patch matrix of one group as a ``GEMMRowSource``: row `m` is output pixel
/// `(n, oy, ox)`, column `(ky * KW + kx) * Cg + ci` is input channel `group * Cg + ci` at the
/// kernel tap `(ky, kx)`; taps in the padding read zero.
struct PatchRows: GEMMRowSource {
    let input: UnsafeSharedPointer<Float>   // [N, H, W, Cin], read only
    let geometry: ConvGeometry
    let group: Int

    func copy(row: Int, column: Int, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let g = geometry
        let cg = g.groupInChannels
        let rowWidth = g.kernelWidth * cg   // one kernel row's columns
        let ox = row % g.outWidth, rest = row / g.outWidth
        let oy = rest % g.outHeight, n = rest / g.outHeight
        let ix0 = ox * g.strideX - g.padLeft
        // With one group and no horizontal dilation, the taps of one kernel row are
        // contiguous in memory wherever they are inside the image: copy them as one run.
        let runs = g.groups == 1 && g.dilationX == 1
        let first = runs ? Swift.max(0, -ix0) : 0
        let last = runs ? Swift.min(g.kernelWidth, g.width - ix0) : 0
        var p = column, out = destination, remaining = count
        while remaining > 0 {
            let ky = p / rowWidth, q = p % rowWidth
            let iy = oy * g.strideY - g.padTop + ky * g.dilationY
            let rowBase = input.pointer + ((n * g.height + iy) * g.width) * g.inChannels + group * cg
            var run: Int
            if iy < 0 || iy >= g.height {
                run = Swift.min(remaining, rowWidth - q)
                out.update(repeating: 0, count: run)
            } else if runs {
                let kx = q / cg
                if kx < first {
                    run = Swift.min(remaining, first * cg - q)
                    out.update(repeating: 0, count: run)
                } else if kx >= last {
                    run = Swift.min(remaining, rowWidth - q)
                    out.update(repeating: 0, count: run)
                } else {
                    run = Swift.min(remaining, last * cg - q)
                    out.update(from: rowBase + ix0 * g.inChannels + q, count: run)
                }
            } else {
                let kx = q / cg, ci = q % cg
                run = Swift.min(remaining, cg - ci)
                let ix = ix0 + kx * g.dilationX
                if ix < 0 || ix >= g.width {
                    out.update(repeating: 0, count: run)
                } else {
                    out.update(from: rowBase + ix * g.inChannels + ci, count: run)
                }
            }
            p += run; out += run; remaining -= run
        }
    }
}

/// Writes the patch matrix of one group: `columns[m, (ky*KW + kx)*Cg + ci]`, zero where the
/// window falls in the padding. Rows are independent, so the work splits by output row.
func im2col(_ x: UnsafePointer<Float>, _ columns: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
            group: Int, pool: ThreadPool?) {
    let cg = g.groupInChannels
    let k = g.kernelHeight * g.kernelWidth * cg
    let rows = g.batch * g.outHeight
    let source = UnsafeSharedPointer(readOnly: x), target = UnsafeSharedPointer(columns)
    // With one group and no horizontal dilation, the taps kx = 0..<KW of one kernel row
    // read KW consecutive pixels, i.e. KW*Cin contiguous floats: copy them as one run
    // (this matters for stems, where Cin = 3 would otherwise mean copies of 3 floats).
    let runs = g.groups == 1 && g.dilationX == 1
    let body: @Sendable (Range<Int>) -> Void = { range in
        let x = source.pointer, col = target.pointer
        for rowIndex in range {
            let n = rowIndex / g.outHeight, oy = rowIndex % g.outHeight
            for ox in 0..<g.outWidth {
                let m = rowIndex * g.outWidth + ox
                var dst = col + m * k
                let ix0 = ox * g.strideX - g.padLeft
                for ky in 0..<g.kernelHeight {
                    let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                    if iy < 0 || iy >= g.height {
                        dst.update(repeating: 0, count: g.kernelWidth * cg)
                        dst += g.kernelWidth * cg
                        continue
                    }
                    let rowBase = x + ((n * g.height + iy) * g.width) * g.inChannels + group * cg
                    if runs {
                        // Taps left of the image, the in-bounds run, taps right of it.
                        let first = Swift.max(0, -ix0), last = Swift.min(g.kernelWidth, g.width - ix0)
                        if first > 0 { dst.update(repeating: 0, count: first * cg) }
                        if last > first {
                            dst.advanced(by: first * cg).update(from: rowBase + (ix0 + first) * g.inChannels,
                                                                count: (last - first) * cg)
                        }
                        let tail = g.kernelWidth - Swift.max(last, first)
                        if tail > 0 { dst.advanced(by: Swift.max(last, first) * cg).update(repeating: 0, count: tail * cg) }
                        dst += g.kernelWidth * cg
                        continue
                    }
                    for kx in 0..<g.kernelWidth {
                        let ix = ix0 + kx * g.dilationX
                        if ix < 0 || ix >= g.width {
                            dst.update(repeating: 0, count: cg)
                        } else {
                            dst.update(from: rowBase + ix * g.inChannels, count: cg)
                        }
                        dst += cg
                    }
                }
            }
        }
    }
    if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
}

// MARK: - Backward

/// Gradients of a convolution (without epilogue) with respect to its input, weight and bias.
///
/// - Parameters:
///   - input: the forward input `[N, H, W, Cin]`.
///   - weight: `[KH, KW, Cin/groups, Cout]`.
///   - gradOutput: `[N, OH, OW, Cout]`, the gradient of the convolution's output (after
///     the caller has taken the activation's derivative).
/// - Returns: the input gradient (`[N, H, W, Cin]`), weight gradient (weight's shape) and
///   bias gradient (`[Cout]`).
public func conv2dBackward(
    _ input: Tensor, weight: Tensor, gradOutput: Tensor, geometry g: ConvGeometry, pool: ThreadPool? = .shared
) -> (input: Tensor, weight: Tensor, bias: Tensor) {
    precondition(gradOutput.shape == [g.batch, g.outHeight, g.outWidth, g.outChannels],
                 "conv2dBackward: gradient \(gradOutput.shape) does not match \(g)")
    let m = g.batch * g.outHeight * g.outWidth
    var gradInput = Tensor(zeros: input.shape)
    var gradWeight = Tensor(zeros: weight.shape)
    let gradBias = gradOutput.reshaped([m, g.outChannels]).sum(alongAxis: 0)
    input.withUnsafeBufferPointer { x in
        weight.withUnsafeBufferPointer { w in
            gradOutput.withUnsafeBufferPointer { dy in
                gradInput.withUnsafeMutableBufferPointer { dx in
                    gradWeight.withUnsafeMutableBufferPointer { dw in
                        if g.isDepthwise {
                            depthwiseBackward(x.baseAddress!, w.baseAddress!, dy.baseAddress!,
                                              dx.baseAddress!, dw.baseAddress!, g, pool: pool)
                        } else if g.isPointwise {
                            // dW [Cin, Cout] = X^T [Cin, M] x dY [M, Cout]; dX [M, Cin] = dY x W^T.
                            sgemm(transposeA: true, transposeB: false, m: g.inChannels, n: g.outChannels, k: m,
                                  alpha: 1, a: x.baseAddress, lda: g.inChannels, b: dy.baseAddress, ldb: g.outChannels,
                                  beta: 0, c: dw.baseAddress, ldc: g.outChannels, pool: pool)
                            sgemm(transposeA: false, transposeB: true, m: m, n: g.inChannels, k: g.outChannels,
                                  alpha: 1, a: dy.baseAddress, lda: g.outChannels, b: w.baseAddress, ldb: g.outChannels,
                                  beta: 0, c: dx.baseAddress, ldc: g.inChannels, pool: pool)
                        } else {
                            let k = g.kernelHeight * g.kernelWidth * g.groupInChannels
                            var columns = [Float](repeating: 0, count: m * k)
                            columns.withUnsafeMutableBufferPointer { col in
                                for group in 0..<g.groups {
                                    let co = group * g.groupOutChannels
                                    im2col(x.baseAddress!, col.baseAddress!, g, group: group, pool: pool)
                                    // dW_g [K, Cout_g] = col^T [K, M] x dY_g [M, Cout_g]
                                    sgemm(transposeA: true, transposeB: false, m: k, n: g.groupOutChannels, k: m,
                                          alpha: 1, a: col.baseAddress, lda: k, b: dy.baseAddress! + co, ldb: g.outChannels,
                                          beta: 0, c: dw.baseAddress! + co, ldc: g.outChannels, pool: pool)
                                    // dcol [M, K] = dY_g [M, Cout_g] x W_g^T [Cout_g, K]
                                    sgemm(transposeA: false, transposeB: true, m: m, n: k, k: g.groupOutChannels,
                                          alpha: 1, a: dy.baseAddress! + co, lda: g.outChannels,
                                          b: w.baseAddress! + co, ldb: g.outChannels,
                                          beta: 0, c: col.baseAddress, ldc: k, pool: pool)
                                    col2im(col.baseAddress!, dx.baseAddress!, g, group: group, pool: pool)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return (gradInput, gradWeight, gradBias)
}

/// Adds the patch-matrix gradient back onto the input gradient of one group. Written as a
/// gather (each input pixel sums the patch entries that read it), so that every input
/// element has one writer and the work splits by input row.
func col2im(_ columns: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
            group: Int, pool: ThreadPool?) {
    let cg = g.groupInChannels
    let k = g.kernelHeight * g.kernelWidth * cg
    let rows = g.batch * g.height
    let source = UnsafeSharedPointer(readOnly: columns), target = UnsafeSharedPointer(dx)
    let body: @Sendable (Range<Int>) -> Void = { range in
        let col = source.pointer, dx = target.pointer
        for rowIndex in range {
            let n = rowIndex / g.height, iy = rowIndex % g.height
            for ky in 0..<g.kernelHeight {
                let ty = iy + g.padTop - ky * g.dilationY
                if ty < 0 || ty % g.strideY != 0 { continue }
                let oy = ty / g.strideY
                if oy >= g.outHeight { continue }
                for ix in 0..<g.width {
                    let dst = dx + ((n * g.height + iy) * g.width + ix) * g.inChannels + group * cg
                    for kx in 0..<g.kernelWidth {
                        let tx = ix + g.padLeft - kx * g.dilationX
                        if tx < 0 || tx % g.strideX != 0 { continue }
                        let ox = tx / g.strideX
                        if ox >= g.outWidth { continue }
                        let src = col + ((n * g.outHeight + oy) * g.outWidth + ox) * k + (ky * g.kernelWidth + kx) * cg
                        for c in 0..<cg { dst[c] += src[c] }
                    }
                }
            }
        }
    }
    if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
}

/// Depthwise backward: the input gradient as a gather (one writer per input pixel, split
/// by input row), the weight gradient split by channel (one writer per channel).
func depthwiseBackward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                       _ dx: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                       _ g: ConvGeometry, pool: ThreadPool?) {
    let c = g.inChannels
    let xs = UnsafeSharedPointer(readOnly: x), ws = UnsafeSharedPointer(readOnly: w)
    let dys = UnsafeSharedPointer(readOnly: dy), dxs = UnsafeSharedPointer(dx), dws = UnsafeSharedPointer(dw)
    let inputBody: @Sendable (Range<Int>) -> Void = { range in
        let w = ws.pointer, dy = dys.pointer, dx = dxs.pointer
        for rowIndex in range {
            let n = rowIndex / g.height, iy = rowIndex % g.height
            for ky in 0..<g.kernelHeight {
                let ty = iy + g.padTop - ky * g.dilationY
                if ty < 0 || ty % g.strideY != 0 { continue }
                let oy = ty / g.strideY
                if oy >= g.outHeight { continue }
                for ix in 0..<g.width {
                    let dst = dx + ((n * g.height + iy) * g.width + ix) * c
                    for kx in 0..<g.kernelWidth {
                        let tx = ix + g.padLeft - kx * g.dilationX
                        if tx < 0 || tx % g.strideX != 0 { continue }
                        let ox = tx / g.strideX
                        if ox >= g.outWidth { continue }
                        let grad = dy + ((n * g.outHeight + oy) * g.outWidth + ox) * c
                        let wt = w + (ky * g.kernelWidth + kx) * c
                        for ch in 0..<c { dst[ch] = dst[ch].addingProduct(grad[ch], wt[ch]) }
                    }
                }
            }
        }
    }
    let weightBody: @Sendable (Range<Int>) -> Void = { channels in
        let x = xs.pointer, dy = dys.pointer, dw = dws.pointer
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth {
                let target = dw + (ky * g.kernelWidth + kx) * c
                for n in 0..<g.batch {
                    for oy in 0..<g.outHeight {
                        let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                        if iy < 0 || iy >= g.height { continue }
                        for ox in 0..<g.outWidth {
                            let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                            if ix < 0 || ix >= g.width { continue }
                            let src = x + ((n * g.height + iy) * g.width + ix) * c
                            let grad = dy + ((n * g.outHeight + oy) * g.outWidth + ox) * c
                            for ch in channels { target[ch] = target[ch].addingProduct(src[ch], grad[ch]) }
                        }
                    }
                }
            }
        }
    }
    if let pool {
        pool.parallelRanges(g.batch * g.height, inputBody)
        pool.parallelRanges(c, weightBody)
    } else {
        inputBody(0..<(g.batch * g.height))
        weightBody(0..<c)
    }
}

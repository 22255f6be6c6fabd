// Depthwise convolution forward (inference), NHWC, with the epilogue fused.
//
// Layouts:
//   input    [N, H, W, C]
//   weight   [KH, KW, 1, C]     (HWIO with one input channel per group)
//   bias     [C]
//   residual [N, OH, OW, C]
//   output   [N, OH, OW, C]
//
// The plain reference is `referenceConv2d` (ReferenceConv2d.swift) followed by bias,
// residual and activation; DepthwiseKernelTests compares the two.
//
// Why it is written this way. A depthwise convolution does KH*KW multiply-adds per output
// element and nothing else, so the per-tap overhead of a naive loop (bounds checks, index
// arithmetic) and a second pass over the output for the epilogue cost as much as the
// arithmetic itself. Here:
//   - Each output row first works out which kernel rows fall inside the image (a
//     contiguous range of ky, whatever the dilation), and each output column which kernel
//     columns do; no tap is ever tested inside the multiply-add loops.
//   - Columns whose whole window is inside the image (the interior, nearly all of them)
//     go four at a time through a blocked kernel that loads each weight vector once for
//     the four. For 3x3 and 5x5 at stride 1 and 2 (all of EfficientNet) the taps are
//     written out so that each input vector is loaded once and feeds every accumulator
//     that needs it: on this AVX2 machine a 256-bit load and a 256-bit FMA each issue
//     once per cycle, so a kernel that loads an input per FMA is load-bound. Other
//     widths, strides and dilations use a generic version (specialised for widths 3 and
//     5). Border columns take a per-pixel path with their own tap ranges, except at
//     stride 1, where the sliding kernels also run on border groups, skipping the input
//     columns outside the image (on the 7x7 layers with 5x5 kernels every column is a
//     border column).
//   - Channels go 8 at a time (one ymm on AVX2; SIMD16 would be two registers and halve
//     the pixels we can keep in flight), leftover channels one at a time.
//   - Accumulators start at the bias; residual and the clamp of relu/relu6 are applied
//     before the single store, so the output is written once and may start uninitialised.
//     leakyRelu and silu fall back to a scalar loop over the 8 lanes.
//   - Every output element is computed by the same chain of FMAs (bias, then ky-major,
//     kx-minor taps) whichever path handles it, so results do not depend on the blocking
//     or on the thread split.
//   - Work splits over (output row, channel chunk) units: on the 7x7 and 14x14 layers there
//     are too few rows to keep two threads equally busy with rows alone.
import TensorCore

/// The fused depthwise convolution: `output = act(depthwise(x) + bias + residual)`.
///
/// Writes every element of `output`, which may be uninitialised. Each output element has
/// exactly one writer and is computed the same way whatever the thread count, so the
/// result is bitwise identical for any `pool`.
///
/// - Parameters:
///   - x: `[N, H, W, C]`.
///   - weight: `[KH, KW, 1, C]`.
///   - bias: `[C]` or nil.
///   - residual: `[N, OH, OW, C]` or nil, added before the activation.
///   - output: `[N, OH, OW, C]`.
///   - geometry: must describe a depthwise convolution (`groups == inChannels == outChannels`).
///   - activation: applied last.
///   - pool: threads to split the output over, or nil for the calling thread only.
@_spi(Benchmarks)
public func depthwiseConvForward(
    _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
    geometry g: ConvGeometry, activation: Activation, pool: ThreadPool?
) {
    precondition(g.groups == g.inChannels && g.groups == g.outChannels,
                 "depthwiseConvForward: \(g) is not depthwise")
    let c = g.inChannels
    let blocks = c / 8
    let rows = g.batch * g.outHeight
    // Enough units for an even split over a few threads, chunks of whole 8-channel blocks;
    // the leftover channels (C % 8) belong to the last chunk. The unit count is a multiple
    // of the thread count where the blocks allow (7 rows at batch 1 in 3 chunks made 21
    // units, 11 and 10 on 2 threads; in 4 chunks, 14 and 14).
    let threads = pool?.threadCount ?? 1
    let least = max(1, min(blocks, (16 + rows - 1) / rows))
    let chunks = (least...max(least, min(blocks, 2 * least))).first { (rows * $0) % threads == 0 } ?? least
    // Accumulators start at the bias: a zero bias keeps the inner code free of optionals.
    let zeros: UnsafeMutablePointer<Float>? = bias == nil ? .allocate(capacity: c) : nil
    zeros?.initialize(repeating: 0, count: c)
    defer { zeros?.deallocate() }
    let kernel = DepthwiseKernel(
        x: UnsafeSharedPointer(readOnly: x), w: UnsafeSharedPointer(readOnly: weight),
        bias: UnsafeSharedPointer(readOnly: bias ?? UnsafePointer(zeros!)),
        residual: residual.map { UnsafeSharedPointer(readOnly: $0) }, y: UnsafeSharedPointer(output),
        g: g, epilogue: DepthwiseEpilogue(activation))
    let body: @Sendable (Range<Int>) -> Void = { range in
        for unit in range {
            let row = unit / chunks, chunk = unit % chunks
            let first = chunk * blocks / chunks, last = (chunk + 1) * blocks / chunks
            kernel.row(row, blocks: first..<last, leftovers: chunk == chunks - 1)
        }
    }
    if let pool { pool.parallelRanges(rows * chunks, body) } else { body(0..<(rows * chunks)) }
}

/// ``depthwiseConvForward(_:weight:bias:residual:output:geometry:activation:pool:)`` on
/// tensors, for `conv2dForward`: shapes as there, checked by the caller.
func depthwiseConv2dForward(
    _ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry,
    activation: Activation, residual: Tensor?, pool: ThreadPool?
) -> Tensor {
    // Uninitialised: the kernel writes every element exactly once.
    Tensor(uninitializedShape: [g.batch, g.outHeight, g.outWidth, g.outChannels]) { out in
        input.withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { w in
                withOptionalPointer(bias) { b in
                    withOptionalPointer(residual) { r in
                        depthwiseConvForward(x.baseAddress!, weight: w.baseAddress!, bias: b, residual: r,
                                             output: out.baseAddress!, geometry: g, activation: activation, pool: pool)
                    }
                }
            }
        }
    }
}

/// The fused epilogue, split so that the hot loops never call out: relu, relu6 and none are
/// a clamp to [lower, upper] at the store (compare-and-blend: SIMD's `clamped` and
/// `pointwiseMin` lower to a scalar loop per lane); the other activations store
/// `acc + residual` unclamped and `DepthwiseKernel.row` applies them to the finished row.
private struct DepthwiseEpilogue: Sendable {
    let activation: Activation
    let lower: SIMD8<Float>, upper: SIMD8<Float>
    let vectorized: Bool

    init(_ activation: Activation) {
        self.activation = activation
        switch activation {
        case .none: (vectorized, lower, upper) = (true, SIMD8(repeating: -.infinity), SIMD8(repeating: .infinity))
        case .relu: (vectorized, lower, upper) = (true, SIMD8(repeating: 0), SIMD8(repeating: .infinity))
        case .relu6: (vectorized, lower, upper) = (true, SIMD8(repeating: 0), SIMD8(repeating: 6))
        default: (vectorized, lower, upper) = (false, SIMD8(repeating: -.infinity), SIMD8(repeating: .infinity))
        }
    }
}

/// `y[0..<8] = clamp(acc + r[0..<8], lower, upper)`; small on purpose, so that it inlines.
@inline(__always)
private func finish(_ acc: SIMD8<Float>, _ y: UnsafeMutablePointer<Float>, _ r: UnsafeMutablePointer<Float>?,
                    _ lower: SIMD8<Float>, _ upper: SIMD8<Float>) {
    var v = acc
    if let r { v += load8(r) }
    v = v.replacing(with: lower, where: v .< lower).replacing(with: upper, where: v .> upper)
    UnsafeMutableRawPointer(y).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// A kernel width known at compile time (3, 5) or at run time (`nil`): the blocked interior
/// loop is generic over it, and specialisation turns the fixed widths into unrolled code.
private protocol KernelWidth { static var fixed: Int? { get } }
private enum Width3: KernelWidth { static var fixed: Int? { 3 } }
private enum Width5: KernelWidth { static var fixed: Int? { 5 } }
private enum WidthAny: KernelWidth { static var fixed: Int? { nil } }

/// Whether the sliding kernels test each input column against the image (groups that
/// reach into the padding) or not (interior groups: the tests fold away).
private protocol ColumnBounds { static var checked: Bool { get } }
private enum Unchecked: ColumnBounds { static var checked: Bool { false } }
private enum Checked: ColumnBounds { static var checked: Bool { true } }

/// The pointers and geometry of one call; `row` does the work of one output row.
private struct DepthwiseKernel: Sendable {
    let x: UnsafeSharedPointer<Float>          // [N, H, W, C], read only
    let w: UnsafeSharedPointer<Float>          // [KH, KW, 1, C], read only
    let bias: UnsafeSharedPointer<Float>       // [C], read only
    let residual: UnsafeSharedPointer<Float>?  // [N, OH, OW, C], read only
    let y: UnsafeSharedPointer<Float>          // [N, OH, OW, C], one writer per element
    let g: ConvGeometry
    let epilogue: DepthwiseEpilogue

    /// Output row `row` (= n * OH + oy), channel blocks `blocks` (8 channels each) and,
    /// when `leftovers`, the channels past the last whole block.
    func row(_ row: Int, blocks: Range<Int>, leftovers: Bool) {
        let g = self.g
        let c = g.inChannels
        let n = row / g.outHeight, oy = row % g.outHeight
        // Kernel rows inside the image: iy = iy0 + ky * dilationY in 0..<H.
        let iy0 = oy * g.strideY - g.padTop
        let kyLo = Swift.max(0, ceilDivide(-iy0, g.dilationY))
        let kyHi = Swift.min(g.kernelHeight, floorDivide(g.height - 1 - iy0, g.dilationY) + 1)
        let rows = kyLo..<Swift.max(kyLo, kyHi)
        // Image n, moved to kernel row 0 (which may be outside the image; only rows
        // kyLo..<kyHi are read).
        let image = x.pointer + n * g.height * g.width * c + iy0 * g.width * c
        let out = y.pointer + row * g.outWidth * c
        let res = residual.map { $0.pointer + row * g.outWidth * c }
        // Interior columns: the whole window inside the image, ix0 >= 0 and
        // ix0 + (KW-1) * dilationX <= W - 1, with ix0 = ox * strideX - padLeft.
        let span = (g.kernelWidth - 1) * g.dilationX
        let oxLo = Swift.min(g.outWidth, ceilDivide(g.padLeft, g.strideX))
        let oxHi = Swift.max(oxLo, Swift.min(g.outWidth, floorDivide(g.width - 1 - span + g.padLeft, g.strideX) + 1))
        var ox = 0
        // Stride-1 3x3 and 5x5 rows of four pixels or more: border pixels go through the
        // sliding kernels too, in groups of four that skip the input columns outside the
        // image (the last group starts at OW - 4, overlapping its neighbour: the overlapped
        // pixels get the same bits from the same call). Each accumulator still adds exactly
        // its in-image taps in kx order, the FMA chain of `pixel`.
        let sliding = g.strideX == 1 && g.dilationX == 1, strided = g.strideX == 2 && g.dilationX == 1
        let edgeGroups = sliding && (g.kernelWidth == 3 || g.kernelWidth == 5) && g.outWidth >= 4
        func border(_ from: Int) {
            let start = Swift.min(from, g.outWidth - 4)
            if g.kernelWidth == 3 {
                _ = slidingInterior3(Checked.self, start, start + 4, image, out, res, rows, blocks, leftovers)
            } else {
                _ = slidingInterior5(Checked.self, start, start + 4, image, out, res, rows, blocks, leftovers)
            }
        }
        if edgeGroups {
            while ox < oxLo { border(ox); ox = Swift.min(ox, g.outWidth - 4) + 4 }
        } else {
            while ox < oxLo { pixel(ox, image, out, res, rows, blocks, leftovers); ox += 1 }
        }
        func interiors(_ from: Int) -> Int {
            switch g.kernelWidth {
            case 3 where sliding: slidingInterior3(Unchecked.self, from, oxHi, image, out, res, rows, blocks, leftovers)
            case 5 where sliding: slidingInterior5(Unchecked.self, from, oxHi, image, out, res, rows, blocks, leftovers)
            case 3 where strided: stridedInterior3(from, oxHi, image, out, res, rows, blocks, leftovers)
            case 5 where strided: stridedInterior5(from, oxHi, image, out, res, rows, blocks, leftovers)
            case 3: interior(Width3.self, from, oxHi, image, out, res, rows, blocks, leftovers)
            case 5: interior(Width5.self, from, oxHi, image, out, res, rows, blocks, leftovers)
            default: interior(WidthAny.self, from, oxHi, image, out, res, rows, blocks, leftovers)
            }
        }
        let first = Swift.max(ox, oxLo)
        ox = interiors(first)
        if ox < oxHi && oxHi - first >= 4 {
            // 1-3 interior pixels left: one more group of four ending at oxHi, overlapping
            // the last one, beats the per-pixel path (the 7x7 and 14x14 layers have short
            // interiors). The overlapped pixels are written twice, by this same call, with
            // the same bits.
            ox = interiors(oxHi - 4)
        }
        if edgeGroups {
            while ox < g.outWidth { border(ox); ox = Swift.min(ox, g.outWidth - 4) + 4 }
        } else {
            while ox < g.outWidth { pixel(ox, image, out, res, rows, blocks, leftovers); ox += 1 }
        }
        if !epilogue.vectorized {
            // leakyRelu, silu: lane by lane over what this call wrote (still in L1).
            let first = blocks.lowerBound * 8, last = leftovers ? c : blocks.upperBound * 8
            for ox in 0..<g.outWidth {
                for ch in first..<last { out[ox * c + ch] = epilogue.activation.apply(out[ox * c + ch]) }
            }
        }
    }

    /// Stride 1, no dilation, 3 taps per kernel row: four neighbouring output pixels read
    /// six neighbouring input pixels, so each input vector is loaded once and used by up to
    /// three accumulators, each weight vector once for four (9 loads for 12 FMAs per kernel
    /// row, against 15 when every tap loads its input). Each accumulator still adds its taps
    /// in kx order, the same chain of FMAs as `pixel`. Returns the first pixel not done.
    @inline(never)
    func slidingInterior3<Bounds: ColumnBounds>(_: Bounds.Type, _ oxLo: Int, _ oxHi: Int, _ image: UnsafeMutablePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>, _ res: UnsafeMutablePointer<Float>?,
                          _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool) -> Int {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let rowStride = g.dilationY * g.width * c
        var ox = oxLo
        while ox + 4 <= oxHi {
            let ix0 = ox - g.padLeft
            // Input columns ix0 + j inside the image (all of them for interior pixels).
            let jLo = Swift.max(0, -ix0), jHi = Swift.min(6, g.width - ix0)
            for block in blocks {
                let c0 = block * 8
                let b = load8(bias + c0)
                var a0 = b, a1 = b, a2 = b, a3 = b
                var src = image + rows.lowerBound * rowStride + ix0 * c + c0
                var wt = w + rows.lowerBound * 3 * c + c0
                for _ in rows {
                    let w0 = load8(wt), w1 = load8(wt + c), w2 = load8(wt + 2 * c)
                    if !Bounds.checked || (jLo <= 0 && 0 < jHi) {
                        let v = load8(src)
                        a0 = a0.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 1 && 1 < jHi) {
                        let v = load8(src + c)
                        a0 = a0.addingProduct(v, w1); a1 = a1.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 2 && 2 < jHi) {
                        let v = load8(src + 2 * c)
                        a0 = a0.addingProduct(v, w2); a1 = a1.addingProduct(v, w1); a2 = a2.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 3 && 3 < jHi) {
                        let v = load8(src + 3 * c)
                        a1 = a1.addingProduct(v, w2); a2 = a2.addingProduct(v, w1); a3 = a3.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 4 && 4 < jHi) {
                        let v = load8(src + 4 * c)
                        a2 = a2.addingProduct(v, w2); a3 = a3.addingProduct(v, w1)
                    }
                    if !Bounds.checked || (jLo <= 5 && 5 < jHi) {
                        let v = load8(src + 5 * c)
                        a3 = a3.addingProduct(v, w2)
                    }
                    src += rowStride
                    wt += 3 * c
                }
                let o = ox * c + c0
                finish(a0, out + o, res.map { $0 + o }, lower, upper)
                finish(a1, out + o + c, res.map { $0 + o + c }, lower, upper)
                finish(a2, out + o + 2 * c, res.map { $0 + o + 2 * c }, lower, upper)
                finish(a3, out + o + 3 * c, res.map { $0 + o + 3 * c }, lower, upper)
            }
            if leftovers {
                for p in 0..<4 { leftoverChannels(ox + p, image, out, res, rows, taps(ox + p)) }
            }
            ox += 4
        }
        return ox
    }

    /// As ``slidingInterior3`` for 5 taps per kernel row: eight input loads and five weight
    /// loads for 20 FMAs (against 25 loads).
    @inline(never)
    func slidingInterior5<Bounds: ColumnBounds>(_: Bounds.Type, _ oxLo: Int, _ oxHi: Int, _ image: UnsafeMutablePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>, _ res: UnsafeMutablePointer<Float>?,
                          _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool) -> Int {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let rowStride = g.dilationY * g.width * c
        var ox = oxLo
        while ox + 4 <= oxHi {
            let ix0 = ox - g.padLeft
            // Input columns ix0 + j inside the image (all of them for interior pixels).
            let jLo = Swift.max(0, -ix0), jHi = Swift.min(8, g.width - ix0)
            for block in blocks {
                let c0 = block * 8
                let b = load8(bias + c0)
                var a0 = b, a1 = b, a2 = b, a3 = b
                var src = image + rows.lowerBound * rowStride + ix0 * c + c0
                var wt = w + rows.lowerBound * 5 * c + c0
                for _ in rows {
                    let w0 = load8(wt), w1 = load8(wt + c), w2 = load8(wt + 2 * c)
                    let w3 = load8(wt + 3 * c), w4 = load8(wt + 4 * c)
                    if !Bounds.checked || (jLo <= 0 && 0 < jHi) {
                        let v = load8(src)
                        a0 = a0.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 1 && 1 < jHi) {
                        let v = load8(src + c)
                        a0 = a0.addingProduct(v, w1); a1 = a1.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 2 && 2 < jHi) {
                        let v = load8(src + 2 * c)
                        a0 = a0.addingProduct(v, w2); a1 = a1.addingProduct(v, w1); a2 = a2.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 3 && 3 < jHi) {
                        let v = load8(src + 3 * c)
                        a0 = a0.addingProduct(v, w3); a1 = a1.addingProduct(v, w2); a2 = a2.addingProduct(v, w1)
                        a3 = a3.addingProduct(v, w0)
                    }
                    if !Bounds.checked || (jLo <= 4 && 4 < jHi) {
                        let v = load8(src + 4 * c)
                        a0 = a0.addingProduct(v, w4); a1 = a1.addingProduct(v, w3); a2 = a2.addingProduct(v, w2)
                        a3 = a3.addingProduct(v, w1)
                    }
                    if !Bounds.checked || (jLo <= 5 && 5 < jHi) {
                        let v = load8(src + 5 * c)
                        a1 = a1.addingProduct(v, w4); a2 = a2.addingProduct(v, w3); a3 = a3.addingProduct(v, w2)
                    }
                    if !Bounds.checked || (jLo <= 6 && 6 < jHi) {
                        let v = load8(src + 6 * c)
                        a2 = a2.addingProduct(v, w4); a3 = a3.addingProduct(v, w3)
                    }
                    if !Bounds.checked || (jLo <= 7 && 7 < jHi) {
                        let v = load8(src + 7 * c)
                        a3 = a3.addingProduct(v, w4)
                    }
                    src += rowStride
                    wt += 5 * c
                }
                let o = ox * c + c0
                finish(a0, out + o, res.map { $0 + o }, lower, upper)
                finish(a1, out + o + c, res.map { $0 + o + c }, lower, upper)
                finish(a2, out + o + 2 * c, res.map { $0 + o + 2 * c }, lower, upper)
                finish(a3, out + o + 3 * c, res.map { $0 + o + 3 * c }, lower, upper)
            }
            if leftovers {
                for p in 0..<4 { leftoverChannels(ox + p, image, out, res, rows, taps(ox + p)) }
            }
            ox += 4
        }
        return ox
    }

    /// Stride 2, no dilation, 3 taps per kernel row: four output pixels read nine input
    /// pixels, output p taking columns 2p..2p+2; each input vector is loaded once (12 loads
    /// for 12 FMAs per kernel row, against 15). Taps in kx order per accumulator, as `pixel`.
    @inline(never)
    func stridedInterior3(_ oxLo: Int, _ oxHi: Int, _ image: UnsafeMutablePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>, _ res: UnsafeMutablePointer<Float>?,
                          _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool) -> Int {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let rowStride = g.dilationY * g.width * c
        var ox = oxLo
        while ox + 4 <= oxHi {
            let ix0 = 2 * ox - g.padLeft
            for block in blocks {
                let c0 = block * 8
                let b = load8(bias + c0)
                var a0 = b, a1 = b, a2 = b, a3 = b
                var src = image + rows.lowerBound * rowStride + ix0 * c + c0
                var wt = w + rows.lowerBound * 3 * c + c0
                for _ in rows {
                    let w0 = load8(wt), w1 = load8(wt + c), w2 = load8(wt + 2 * c)
                    a0 = a0.addingProduct(load8(src), w0)
                    a0 = a0.addingProduct(load8(src + c), w1)
                    var v = load8(src + 2 * c)
                    a0 = a0.addingProduct(v, w2); a1 = a1.addingProduct(v, w0)
                    a1 = a1.addingProduct(load8(src + 3 * c), w1)
                    v = load8(src + 4 * c)
                    a1 = a1.addingProduct(v, w2); a2 = a2.addingProduct(v, w0)
                    a2 = a2.addingProduct(load8(src + 5 * c), w1)
                    v = load8(src + 6 * c)
                    a2 = a2.addingProduct(v, w2); a3 = a3.addingProduct(v, w0)
                    a3 = a3.addingProduct(load8(src + 7 * c), w1)
                    a3 = a3.addingProduct(load8(src + 8 * c), w2)
                    src += rowStride
                    wt += 3 * c
                }
                let o = ox * c + c0
                finish(a0, out + o, res.map { $0 + o }, lower, upper)
                finish(a1, out + o + c, res.map { $0 + o + c }, lower, upper)
                finish(a2, out + o + 2 * c, res.map { $0 + o + 2 * c }, lower, upper)
                finish(a3, out + o + 3 * c, res.map { $0 + o + 3 * c }, lower, upper)
            }
            if leftovers {
                for p in 0..<4 { leftoverChannels(ox + p, image, out, res, rows, 0..<3) }
            }
            ox += 4
        }
        return ox
    }

    /// As ``stridedInterior3`` for 5 taps per kernel row: eleven input loads and five
    /// weight loads for 20 FMAs (against 25 loads).
    @inline(never)
    func stridedInterior5(_ oxLo: Int, _ oxHi: Int, _ image: UnsafeMutablePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>, _ res: UnsafeMutablePointer<Float>?,
                          _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool) -> Int {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let rowStride = g.dilationY * g.width * c
        var ox = oxLo
        while ox + 4 <= oxHi {
            let ix0 = 2 * ox - g.padLeft
            for block in blocks {
                let c0 = block * 8
                let b = load8(bias + c0)
                var a0 = b, a1 = b, a2 = b, a3 = b
                var src = image + rows.lowerBound * rowStride + ix0 * c + c0
                var wt = w + rows.lowerBound * 5 * c + c0
                for _ in rows {
                    let w0 = load8(wt), w1 = load8(wt + c), w2 = load8(wt + 2 * c)
                    let w3 = load8(wt + 3 * c), w4 = load8(wt + 4 * c)
                    a0 = a0.addingProduct(load8(src), w0)
                    a0 = a0.addingProduct(load8(src + c), w1)
                    var v = load8(src + 2 * c)
                    a0 = a0.addingProduct(v, w2); a1 = a1.addingProduct(v, w0)
                    v = load8(src + 3 * c)
                    a0 = a0.addingProduct(v, w3); a1 = a1.addingProduct(v, w1)
                    v = load8(src + 4 * c)
                    a0 = a0.addingProduct(v, w4); a1 = a1.addingProduct(v, w2); a2 = a2.addingProduct(v, w0)
                    v = load8(src + 5 * c)
                    a1 = a1.addingProduct(v, w3); a2 = a2.addingProduct(v, w1)
                    v = load8(src + 6 * c)
                    a1 = a1.addingProduct(v, w4); a2 = a2.addingProduct(v, w2); a3 = a3.addingProduct(v, w0)
                    v = load8(src + 7 * c)
                    a2 = a2.addingProduct(v, w3); a3 = a3.addingProduct(v, w1)
                    v = load8(src + 8 * c)
                    a2 = a2.addingProduct(v, w4); a3 = a3.addingProduct(v, w2)
                    a3 = a3.addingProduct(load8(src + 9 * c), w3)
                    a3 = a3.addingProduct(load8(src + 10 * c), w4)
                    src += rowStride
                    wt += 5 * c
                }
                let o = ox * c + c0
                finish(a0, out + o, res.map { $0 + o }, lower, upper)
                finish(a1, out + o + c, res.map { $0 + o + c }, lower, upper)
                finish(a2, out + o + 2 * c, res.map { $0 + o + 2 * c }, lower, upper)
                finish(a3, out + o + 3 * c, res.map { $0 + o + 3 * c }, lower, upper)
            }
            if leftovers {
                for p in 0..<4 { leftoverChannels(ox + p, image, out, res, rows, 0..<5) }
            }
            ox += 4
        }
        return ox
    }

    /// Interior pixels four at a time for any stride and dilation: for each channel block,
    /// four accumulators, and each weight vector loaded once for the four. With a fixed
    /// width the tap loop unrolls. Returns the first pixel not done.
    @inline(never)
    func interior<Width: KernelWidth>(
        _: Width.Type, _ oxLo: Int, _ oxHi: Int, _ image: UnsafeMutablePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, _ res: UnsafeMutablePointer<Float>?,
        _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool
    ) -> Int {
        let g = self.g
        let c = g.inChannels
        let kw = Width.fixed ?? g.kernelWidth
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let rowStride = g.dilationY * g.width * c     // next kernel row in the input
        let pixelStride = g.strideX * c               // next output pixel in the input
        let tapStride = g.dilationX * c               // next kernel column in the input
        var ox = oxLo
        while ox + 4 <= oxHi {
            let ix0 = ox * g.strideX - g.padLeft
            for block in blocks {
                let c0 = block * 8
                let b = load8(bias + c0)
                var a0 = b, a1 = b, a2 = b, a3 = b
                var src = image + rows.lowerBound * rowStride + ix0 * c + c0
                var wt = w + rows.lowerBound * kw * c + c0
                for _ in rows {
                    for kx in 0..<kw {
                        let wv = load8(wt + kx * c)
                        let s = src + kx * tapStride
                        a0 = a0.addingProduct(load8(s), wv)
                        a1 = a1.addingProduct(load8(s + pixelStride), wv)
                        a2 = a2.addingProduct(load8(s + 2 * pixelStride), wv)
                        a3 = a3.addingProduct(load8(s + 3 * pixelStride), wv)
                    }
                    src += rowStride
                    wt += kw * c
                }
                let o = ox * c + c0
                finish(a0, out + o, res.map { $0 + o }, lower, upper)
                finish(a1, out + o + c, res.map { $0 + o + c }, lower, upper)
                finish(a2, out + o + 2 * c, res.map { $0 + o + 2 * c }, lower, upper)
                finish(a3, out + o + 3 * c, res.map { $0 + o + 3 * c }, lower, upper)
            }
            if leftovers {
                for p in 0..<4 { leftoverChannels(ox + p, image, out, res, rows, 0..<kw) }
            }
            ox += 4
        }
        return ox
    }

    /// The kernel columns of output column `ox` that fall inside the image.
    @inline(__always)
    func taps(_ ox: Int) -> Range<Int> {
        let ix0 = ox * g.strideX - g.padLeft
        let kxLo = Swift.max(0, ceilDivide(-ix0, g.dilationX))
        return kxLo..<Swift.max(kxLo, Swift.min(g.kernelWidth, floorDivide(g.width - 1 - ix0, g.dilationX) + 1))
    }

    /// One output pixel with its own in-image tap ranges (border pixels, interior leftovers,
    /// and any geometry the blocked paths do not cover).
    @inline(never)
    func pixel(_ ox: Int, _ image: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
               _ res: UnsafeMutablePointer<Float>?, _ rows: Range<Int>, _ blocks: Range<Int>, _ leftovers: Bool) {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let lower = epilogue.lower, upper = epilogue.upper
        let ix0 = ox * g.strideX - g.padLeft
        let kxLo = Swift.max(0, ceilDivide(-ix0, g.dilationX))
        let kxHi = Swift.max(kxLo, Swift.min(g.kernelWidth, floorDivide(g.width - 1 - ix0, g.dilationX) + 1))
        for block in blocks {
            let c0 = block * 8
            var acc = load8(bias + c0)
            for ky in rows {
                let src = image + ky * g.dilationY * g.width * c + ix0 * c + c0
                let wt = w + ky * g.kernelWidth * c + c0
                for kx in kxLo..<kxHi {
                    acc = acc.addingProduct(load8(src + kx * g.dilationX * c), load8(wt + kx * c))
                }
            }
            let o = ox * c + c0
            finish(acc, out + o, res.map { $0 + o }, lower, upper)
        }
        if leftovers { leftoverChannels(ox, image, out, res, rows, kxLo..<kxHi) }
    }

    /// The channels past the last whole block of 8, one at a time (none in EfficientNet).
    /// Same FMA chain per element as the vector paths.
    @inline(never)
    func leftoverChannels(_ ox: Int, _ image: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                          _ res: UnsafeMutablePointer<Float>?, _ rows: Range<Int>, _ taps: Range<Int>) {
        let g = self.g
        let c = g.inChannels
        let w = self.w.pointer, bias = self.bias.pointer
        let ix0 = ox * g.strideX - g.padLeft
        for ch in (c / 8 * 8)..<c {
            var acc = bias[ch]
            for ky in rows {
                let src = image + ky * g.dilationY * g.width * c + ix0 * c + ch
                let wt = w + ky * g.kernelWidth * c + ch
                for kx in taps {
                    acc = acc.addingProduct(src[kx * g.dilationX * c], wt[kx * c])
                }
            }
            if let res { acc += res[ox * c + ch] }
            // Clamp as the vector paths do; the other activations are applied by `row`.
            if epilogue.vectorized { acc = Swift.min(Swift.max(acc, epilogue.lower[0]), epilogue.upper[0]) }
            out[ox * c + ch] = acc
        }
    }
}

/// `ceil(a / b)` for `b > 0` and any sign of `a`.
@inline(__always)
private func ceilDivide(_ a: Int, _ b: Int) -> Int { -floorDivide(-a, b) }

/// `floor(a / b)` for `b > 0` and any sign of `a` (Swift's `/` truncates toward zero).
@inline(__always)
private func floorDivide(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

// Winograd F(2x2, 3x3) convolution for 3x3, stride 1, dilation 1, one-group convolutions,
// NHWC, with the epilogue (bias, residual, activation) fused into the output transform.
//
// The algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
// each 2x2 block of outputs ("tile") is computed from the 4x4 input patch d under it as
//
//     Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (.) = elementwise, 16 elements
//
//     B^T = | 1  0 -1  0 |     G = |  1    0    0  |     A^T = | 1  1  1  0 |
//           | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
//           | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//           | 0  1  0 -1 |         |  0    0    1  |
//
// (checked by hand in one dimension: m1 = (d0-d2) g0, m2 = (d1+d2)(g0+g1+g2)/2,
// m3 = (d2-d1)(g0-g1+g2)/2, m4 = (d1-d3) g2 give y0 = m1+m2+m3 = d0g0+d1g1+d2g2 and
// y1 = m2-m3-m4 = d1g0+d2g1+d3g2; the tests check the 2-D result against the reference).
// Summed over input channels, the 16 elementwise products become 16 independent GEMMs
//
//     M[e] = V[e] x U[e]      V[e]: [tiles, Cin]   U[e]: [Cin, Cout]   M[e]: [tiles, Cout]
//
// which do 16 * Cin * Cout multiply-adds per tile of 4 outputs instead of 36 * Cin * Cout:
// 2.25x fewer. F(2x2, 3x3) rather than F(4x4, 3x3) (4x fewer): its transforms only add and
// subtract (B, A) or halve (G), so the error stays at the level of direct fp32 summation,
// whereas F(4x4) multiplies by up to 4 and 8 and loses 1-2 more digits; and on the 7x7
// layers of ResNet-18, 4x4 tiles cover 8x8 (30 % wasted) where 2x2 tiles cover 8x8 as well
// but with 4x smaller transforms per tile.
//
// Structure of one call:
//   for each block of T tiles (and, when there are too few blocks to keep every thread busy,
//   each group of output-channel panels):
//     input transform   -> V [16][Tpad][Cin]      (per participant scratch, stays in L2/L3)
//     16 GEMMs          -> M [16][Tpad][CoutP]    with a 4 x 24 register-tiled micro-kernel
//                                                 over U pre-packed in 24-column panels
//     output transform + bias + residual + activation -> output
// NHWC makes the channel axis contiguous, so both transforms run 8 channels per SIMD8
// (one ymm) with plain loads and stores.
//
// Determinism: every output element is computed by the same sequence of operations
// (K is chunked by a constant, tiles are independent rows of the GEMM) whatever block,
// panel group or thread computes it, and it has exactly one writer: results are bitwise
// identical for any thread count.
import TensorCore

/// The 3x3 filters of a convolution transformed for ``winogradConv3x3(_:weights:bias:residual:output:geometry:activation:pool:)``:
/// `U[e] = G g G^T` for each of the 16 tile elements `e`, packed for the GEMM micro-kernel.
///
/// Build it once per layer (the transform costs about as much as one small convolution).
///
/// Layout of the storage: `[16][panel][Cin][width]`, where the output channels, padded with
/// zeros to `CoutP` (a multiple of 8), are cut into panels of 24 columns, the last panel
/// being 8, 16 or 24 wide; panel `p` of element `e` starts at `(e * CoutP + 24 * p) * Cin`.
///
/// ```swift
/// let u = WinogradWeights(weight)               // weight [3, 3, Cin, Cout]
/// ```
public struct WinogradWeights: Sendable {
    /// The output tile of the algorithm.
    public let tile: WinogradTile
    /// Input channels `Cin`.
    public let inChannels: Int
    /// Output channels `Cout`.
    public let outChannels: Int
    /// `Cout` rounded up to a multiple of 8.
    let paddedOutChannels: Int
    /// `[16][panel][Cin][width]`, see the type's documentation.
    let storage: [Float]

    /// The panel width of the GEMM micro-kernel (3 SIMD8 columns).
    static let panelWidth = 24

    /// The number of 24-column panels (the last may be narrower).
    var panelCount: Int { (paddedOutChannels + WinogradWeights.panelWidth - 1) / WinogradWeights.panelWidth }

    /// Transforms the filters of a 3x3 convolution.
    ///
    /// - Parameters:
    ///   - weight: `[3, 3, Cin, Cout]` (HWIO, as ``conv2dForward(_:weight:bias:geometry:activation:residual:pool:)``).
    ///   - tile: F(2x2, 3x3) (the default, accurate to fp32 summation) or F(4x4, 3x3).
    public init(_ weight: Tensor, tile: WinogradTile = .f2x2) {
        precondition(weight.rank == 4 && weight.shape[0] == 3 && weight.shape[1] == 3,
                     "WinogradWeights: weight \(weight.shape) is not [3, 3, Cin, Cout]")
        let cin = weight.shape[2], cout = weight.shape[3]
        let coutP = (cout + 7) / 8 * 8
        self.tile = tile
        inChannels = cin
        outChannels = cout
        paddedOutChannels = coutP
        let w = weight.scalars
        let n = tile.patch, elements = tile.elements
        var u = [Float](repeating: 0, count: elements * cin * coutP)
        // G g G^T in Double, rounded once: the filter transform is outside the hot path, but
        // flat buffers hoisted out of the loops keep it at a few ms per 512 x 512 layer
        // (nested arrays per filter took ~0.3 s).
        let gm = tile.g.flatMap { $0 }                       // [n][3]
        let width = WinogradWeights.panelWidth
        var g = [Double](repeating: 0, count: 9)             // [3][3]
        var t = [Double](repeating: 0, count: n * 3)         // G g  [n][3]
        for ci in 0..<cin {
            for co in 0..<cout {
                for k in 0..<9 { g[k] = Double(w[(k * cin + ci) * cout + co]) }
                for i in 0..<n {
                    for j in 0..<3 { t[i * 3 + j] = gm[i * 3] * g[j] + gm[i * 3 + 1] * g[3 + j] + gm[i * 3 + 2] * g[6 + j] }
                }
                let panel = co / width, column = co % width
                let panelWidth = min(width, coutP - panel * width)
                for i in 0..<n {
                    for j in 0..<n {
                        let value = t[i * 3] * gm[j * 3] + t[i * 3 + 1] * gm[j * 3 + 1] + t[i * 3 + 2] * gm[j * 3 + 2]
                        let e = i * n + j
                        u[(e * coutP + panel * width) * cin + ci * panelWidth + column] = Float(value)
                    }
                }
            }
        }
        storage = u
    }
}

/// The output tile of a Winograd convolution F(m x m, 3x3).
public enum WinogradTile: Sendable, Equatable, Hashable {
    /// F(2x2, 3x3): 16 products per 4 outputs (2.25x fewer multiplications than direct);
    /// transforms with coefficients 0, +-1, +-1/2 only, as accurate as direct fp32 summation.
    case f2x2
    /// F(4x4, 3x3): 36 products per 16 outputs (4x fewer), interpolation points 0, +-1,
    /// +-2; its transforms scale by up to 8 (A) and 1/24 (G), so the error is about 10x
    /// that of direct summation (measured 1e-6 to 5e-6 of the output's max magnitude).
    case f4x4

    /// The tile to use for `inChannels` input channels: F(4x4) from 64 channels on, where
    /// its error measured 5e-6 to 6e-6 of the output's max magnitude on ResNet-18's layers
    /// (within the 1e-5 the engine accepts) and it ran 1.2-1.6x faster than F(2x2); F(2x2)
    /// below, where F(4x4)'s error reached 4e-5 on 3-5 channel tests.
    public static func preferred(inChannels: Int) -> WinogradTile { inChannels >= 64 ? .f4x4 : .f2x2 }

    /// Outputs per tile side, m.
    var size: Int { self == .f2x2 ? 2 : 4 }
    /// Input patch side, m + 2.
    var patch: Int { size + 2 }
    /// Elements of the transformed patch: the number of GEMMs.
    var elements: Int { patch * patch }

    /// G, the [m + 2][3] filter transform.
    var g: [[Double]] {
        switch self {
        case .f2x2: return [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        case .f4x4:
            return [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                    [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        }
    }
}

/// Winograd F(2x2, 3x3) or F(4x4, 3x3) convolution with the epilogue fused:
/// `output = act(conv(input) + bias + residual)`.
///
/// Only for 3x3 kernels, stride 1, dilation 1, one group; any padding per side. Writes every
/// output element (the output may be uninitialised). Bitwise identical for any thread count.
/// Accuracy: about that of direct fp32 summation (see WinogradTests for the bound).
///
/// - Parameters:
///   - input: `[N, H, W, Cin]`.
///   - weights: the transformed `[3, 3, Cin, Cout]` filters.
///   - bias: `[Cout]` or nil.
///   - residual: `[N, OH, OW, Cout]` added after the bias, before the activation, or nil.
///   - output: `[N, OH, OW, Cout]`.
///   - geometry: sizes and padding; `kernelHeight == kernelWidth == 3`, stride, dilation
///     and groups 1.
///   - activation: applied last.
///   - pool: threads to use, nil for the calling thread only.
public func winogradConv3x3(
    _ input: UnsafePointer<Float>, weights: WinogradWeights, bias: UnsafePointer<Float>?,
    residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
    activation: Activation, pool: ThreadPool?
) {
    precondition(g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideY == 1 && g.strideX == 1
                 && g.dilationY == 1 && g.dilationX == 1 && g.groups == 1,
                 "winogradConv3x3: \(g) is not a 3x3 stride-1 undilated one-group convolution")
    precondition(weights.inChannels == g.inChannels && weights.outChannels == g.outChannels,
                 "winogradConv3x3: weights \(weights.inChannels) -> \(weights.outChannels) for \(g)")
    let plan = WinogradPlan(geometry: g, coutP: weights.paddedOutChannels, tile: weights.tile,
                            threads: pool?.threadCount ?? 1)
    let items = plan.blocks * plan.panelGroups
    weights.storage.withUnsafeBufferPointer { u in
        let shared = WinogradShared(
            input: UnsafeSharedPointer(readOnly: input), u: UnsafeSharedPointer(readOnly: u.baseAddress!),
            bias: bias.map { UnsafeSharedPointer(readOnly: $0) },
            residual: residual.map { UnsafeSharedPointer(readOnly: $0) },
            output: UnsafeSharedPointer(output))
        let body: @Sendable (Range<Int>) -> Void = { range in
            winogradParticipant(range, plan: plan, shared: shared, activation: activation)
        }
        if let pool { pool.parallelRanges(items, body) } else { body(0..<items) }
    }
}

/// Convenience over tensors: allocates the output and checks the shapes.
///
/// - Parameters: as ``winogradConv3x3(_:weights:bias:residual:output:geometry:activation:pool:)``,
///   with `input [N, H, W, Cin]`, `bias [Cout]`, `residual [N, OH, OW, Cout]`.
/// - Returns: `[N, OH, OW, Cout]`.
public func winogradConv3x3(
    _ input: Tensor, weights: WinogradWeights, bias: Tensor?, geometry g: ConvGeometry,
    activation: Activation = .none, residual: Tensor? = nil, pool: ThreadPool? = .shared
) -> Tensor {
    precondition(input.shape == [g.batch, g.height, g.width, g.inChannels],
                 "winogradConv3x3: input \(input.shape) does not match \(g)")
    precondition(bias == nil || bias!.shape == [g.outChannels],
                 "winogradConv3x3: bias \(bias!.shape) for \(g.outChannels) channels")
    let outShape = [g.batch, g.outHeight, g.outWidth, g.outChannels]
    precondition(residual == nil || residual!.shape == outShape,
                 "winogradConv3x3: residual \(residual!.shape) does not match output \(outShape)")
    return Tensor(uninitializedShape: outShape) { out in
        input.withUnsafeBufferPointer { x in
            func run(_ b: UnsafePointer<Float>?, _ r: UnsafePointer<Float>?) {
                winogradConv3x3(x.baseAddress!, weights: weights, bias: b, residual: r, output: out.baseAddress!,
                                geometry: g, activation: activation, pool: pool)
            }
            func withResidual(_ b: UnsafePointer<Float>?) {
                if let residual { residual.withUnsafeBufferPointer { run(b, $0.baseAddress!) } } else { run(b, nil) }
            }
            if let bias { bias.withUnsafeBufferPointer { withResidual($0.baseAddress!) } } else { withResidual(nil) }
        }
    }
}

// MARK: - Plan

/// The pointers every participant reads (input, U, bias, residual) or writes (output,
/// disjoint per tile and panel group: one writer per element).
private struct WinogradShared: Sendable {
    let input: UnsafeSharedPointer<Float>         // [N, H, W, Cin], read only
    let u: UnsafeSharedPointer<Float>             // [16][panel][Cin][width], read only
    let bias: UnsafeSharedPointer<Float>?         // [Cout], read only
    let residual: UnsafeSharedPointer<Float>?     // [N, OH, OW, Cout], read only
    let output: UnsafeSharedPointer<Float>        // [N, OH, OW, Cout]
}

/// How the tiles are cut into blocks and the output channels into panel groups.
private struct WinogradPlan: Sendable {
    let g: ConvGeometry
    let coutP: Int
    /// Outputs per tile side and GEMMs per block (16 or 36).
    let m: Int, elements: Int
    let tilesH: Int, tilesW: Int, tiles: Int
    /// Tiles per block (the last block may have fewer) and that rounded up to 4 rows.
    let blockTiles: Int, paddedBlockTiles: Int
    let blocks: Int
    /// Output-channel panel groups per block: more than 1 only when there are fewer blocks
    /// than threads (the deep 7x7 layers at batch 1), at the price of one input transform
    /// per group.
    let panelGroups: Int
    let panelCount: Int

    /// The largest block, in tiles; see `init`.
    static let maxBlockTiles = 64

    init(geometry g: ConvGeometry, coutP: Int, tile: WinogradTile, threads: Int) {
        self.g = g
        self.coutP = coutP
        m = tile.size
        elements = tile.elements
        tilesH = (g.outHeight + m - 1) / m
        tilesW = (g.outWidth + m - 1) / m
        tiles = g.batch * tilesH * tilesW
        panelCount = (coutP + WinogradWeights.panelWidth - 1) / WinogradWeights.panelWidth
        // Block size: U (17 MB at 512 channels) is streamed once per block, so a block must
        // reuse it many times, while the 4-row A panels of one K chunk (T x 256 floats) should
        // stay in L2. Swept with winograd-bench (interleaved, 1 and 2 threads, batch 1 and 8):
        // fixed T = 32, 64, 128, 256 were all within +-5 % on every ResNet-18 shape; budgets
        // that shrank T below 32 for wide layers cost up to 30 % on 7x7x512.
        let maxTiles = WinogradPlan.maxBlockTiles
        var blocks = (tiles + maxTiles - 1) / maxTiles
        if blocks >= threads {
            // Whole rounds of blocks for the threads, then spread the tiles evenly over them.
            blocks = (blocks + threads - 1) / threads * threads
            panelGroups = 1
        } else {
            // Too few tiles to give every thread a block (the deep layers at batch 1): keep
            // the tiles together, so each U element is still reused by all of them, and
            // split the output channels instead, at the price of one input transform per
            // group. (Splitting the 4 tiles of 7x7x512 F(4x4) over 2 threads made each
            // stream all 38 MB of U and ran slower than one thread.)
            panelGroups = min(panelCount, (threads + blocks - 1) / blocks)
        }
        let per = (tiles + blocks - 1) / blocks
        blockTiles = per
        paddedBlockTiles = (per + 3) / 4 * 4
        self.blocks = (tiles + per - 1) / per
    }
}


/// K is cut into chunks of this many input channels so that a B micro-panel (256 x 24
/// floats = 24 KiB) stays in the 32 KiB L1 while the 4-row A panels stream past it. It is
/// a constant, not a function of the block, so the summation order never changes.
private let kChunk = 256

// MARK: - Participant

private func winogradParticipant(_ range: Range<Int>, plan: WinogradPlan, shared: WinogradShared,
                                 activation: Activation) {
    let g = plan.g
    let cin = g.inChannels, coutP = plan.coutP, tpad = plan.paddedBlockTiles
    // Scratch, 64-byte aligned: V [16][Tpad][Cin], M [16][Tpad][CoutP], a row of zeros that
    // stands in for input pixels in the padding.
    let elements = plan.elements
    let vCount = elements * tpad * cin, mCount = elements * tpad * coutP
    let raw = UnsafeMutableRawPointer.allocate(byteCount: (vCount + mCount + cin + 16) * 4, alignment: 64)
    defer { raw.deallocate() }
    let v = raw.bindMemory(to: Float.self, capacity: vCount + mCount + cin + 16)
    let m = v + vCount
    let zeros = m + mCount
    zeros.initialize(repeating: 0, count: cin + 16)
    // Rows past the end of a short last block must hold numbers (their results are dropped).
    v.initialize(repeating: 0, count: vCount)

    for item in range {
        let block = item / plan.panelGroups, group = item % plan.panelGroups
        let firstTile = block * plan.blockTiles
        let count = min(plan.blockTiles, plan.tiles - firstTile)
        let panels = ThreadPool.range(of: group, participants: plan.panelGroups, count: plan.panelCount)
        if count < tpad {
            for e in 0..<elements { (v + e * tpad * cin + count * cin).update(repeating: 0, count: (tpad - count) * cin) }
        }
        if plan.m == 2 {
            inputTransform(plan: plan, input: shared.input.pointer, zeros: zeros, firstTile: firstTile, count: count,
                           v: v, tpad: tpad)
        } else {
            inputTransform4(plan: plan, input: shared.input.pointer, zeros: zeros, firstTile: firstTile, count: count,
                            v: v, tpad: tpad)
        }
        let rows = (count + 3) / 4 * 4
        for e in 0..<elements {
            let ve = v + e * tpad * cin, me = m + e * tpad * coutP
            let ue = shared.u.pointer + e * coutP * cin
            var k0 = 0
            while k0 < cin {
                let kc = min(kChunk, cin - k0)
                let accumulate = k0 > 0
                for p in panels {
                    let col = p * WinogradWeights.panelWidth
                    let width = min(WinogradWeights.panelWidth, coutP - col)
                    let b = ue + col * cin + k0 * width
                    var r = 0
                    while r < rows {
                        let a = ve + r * cin + k0
                        let c = me + r * coutP + col
                        switch width {
                        case 24: kernel4x24(kc: kc, a: a, lda: cin, b: b, c: c, ldc: coutP, accumulate: accumulate)
                        case 16: kernel4x16(kc: kc, a: a, lda: cin, b: b, c: c, ldc: coutP, accumulate: accumulate)
                        default: kernel4x8(kc: kc, a: a, lda: cin, b: b, c: c, ldc: coutP, accumulate: accumulate)
                        }
                        r += 4
                    }
                }
                k0 += kc
            }
        }
        let c0 = panels.lowerBound * WinogradWeights.panelWidth
        let c1 = min(g.outChannels, panels.upperBound * WinogradWeights.panelWidth)
        if plan.m == 2 {
            outputTransform(plan: plan, m: m, tpad: tpad, firstTile: firstTile, count: count, channels: c0..<c1,
                            shared: shared, activation: activation)
        } else {
            outputTransform4(plan: plan, m: m, tpad: tpad, firstTile: firstTile, count: count, channels: c0..<c1,
                             shared: shared, activation: activation)
        }
    }
}


// MARK: - Input transform

/// V[e][t][c] = (B^T d B)[e] for the tiles `firstTile ..< firstTile + count`, where d is the
/// 4x4 input patch at `(2 ty - padTop, 2 tx - padLeft)`. Pixels outside the image read from
/// `zeros`, so the channel loop has no bounds checks.
private func inputTransform(plan: WinogradPlan, input: UnsafePointer<Float>, zeros: UnsafePointer<Float>,
                            firstTile: Int, count: Int, v: UnsafeMutablePointer<Float>, tpad: Int) {
    let g = plan.g
    let cin = g.inChannels
    let eStride = tpad * cin
    // Pointers to the 16 pixels of the patch, row-major.
    var pointers = [UnsafePointer<Float>](repeating: zeros, count: 16)
    pointers.withUnsafeMutableBufferPointer { d in
        for t in 0..<count {
            let tile = firstTile + t
            let tx = tile % plan.tilesW, rest = tile / plan.tilesW
            let ty = rest % plan.tilesH, n = rest / plan.tilesH
            let iy0 = 2 * ty - g.padTop, ix0 = 2 * tx - g.padLeft
            for r in 0..<4 {
                let iy = iy0 + r
                for c in 0..<4 {
                    let ix = ix0 + c
                    d[r * 4 + c] = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                        ? input + ((n * g.height + iy) * g.width + ix) * cin : zeros
                }
            }
            let out = v + t * cin
            var ch = 0
            while ch + 8 <= cin {
                transformPatch(d, ch, out + ch, eStride, SIMD8<Float>.self)
                ch += 8
            }
            // leftovers
            while ch < cin {
                transformPatch(d, ch, out + ch, eStride, Float.self)
                ch += 1
            }
        }
    }
}

/// Vectors the input transform runs on: SIMD8 for the body, Float for the leftovers.
private protocol WinogradLane {
    static var zero: Self { get }
    static func + (lhs: Self, rhs: Self) -> Self
    static func - (lhs: Self, rhs: Self) -> Self
    static func * (lhs: Self, rhs: Float) -> Self
    static func load(_ p: UnsafePointer<Float>) -> Self
    func store(_ p: UnsafeMutablePointer<Float>)
}

extension SIMD8: WinogradLane where Scalar == Float {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { load8(p) }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) { store8(self, p) }
}

extension Float: WinogradLane {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Float { p.pointee }
    @inline(__always) func store(_ p: UnsafeMutablePointer<Float>) { p.pointee = self }
}

/// B^T d B for one lane group: rows first (4 loads, 4 add/sub per row), then columns.
@inline(__always)
private func transformPatch<L: WinogradLane>(
    _ d: UnsafeMutableBufferPointer<UnsafePointer<Float>>, _ ch: Int, _ out: UnsafeMutablePointer<Float>,
    _ eStride: Int, _: L.Type
) {
    // t[r][j] = (d B)[r][j]
    var t0 = (L.zero, L.zero, L.zero, L.zero), t1 = t0, t2 = t0, t3 = t0
    @inline(__always) func row(_ r: Int) -> (L, L, L, L) {
        let a = L.load(d[r * 4] + ch), b = L.load(d[r * 4 + 1] + ch)
        let c = L.load(d[r * 4 + 2] + ch), e = L.load(d[r * 4 + 3] + ch)
        return (a - c, b + c, c - b, b - e)
    }
    t0 = row(0); t1 = row(1); t2 = row(2); t3 = row(3)
    // V[i][j] = (B^T t)[i][j]
    (t0.0 - t2.0).store(out); (t0.1 - t2.1).store(out + eStride)
    (t0.2 - t2.2).store(out + 2 * eStride); (t0.3 - t2.3).store(out + 3 * eStride)
    (t1.0 + t2.0).store(out + 4 * eStride); (t1.1 + t2.1).store(out + 5 * eStride)
    (t1.2 + t2.2).store(out + 6 * eStride); (t1.3 + t2.3).store(out + 7 * eStride)
    (t2.0 - t1.0).store(out + 8 * eStride); (t2.1 - t1.1).store(out + 9 * eStride)
    (t2.2 - t1.2).store(out + 10 * eStride); (t2.3 - t1.3).store(out + 11 * eStride)
    (t1.0 - t3.0).store(out + 12 * eStride); (t1.1 - t3.1).store(out + 13 * eStride)
    (t1.2 - t3.2).store(out + 14 * eStride); (t1.3 - t3.3).store(out + 15 * eStride)
}

// MARK: - GEMM micro-kernels

// C[4][w] (=|+=) A[4][kc] x B[kc][w], A rows `lda` apart (V is not repacked: a broadcast
// from any address costs the same as from a packed panel), B a packed panel of width w,
// C rows `ldc` apart. 4 x 24 keeps 12 SIMD8 accumulators + 3 B vectors + 1 broadcast in the
// 16 ymm registers, 4 broadcasts per 12 FMAs (the shape that reached 98 % of peak in
// GEMM.swift); the 16- and 8-wide variants only serve the last panel.

@inline(__always)
private func finish(_ acc: SIMD8<Float>, _ c: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
    store8(accumulate ? acc + load8(c) : acc, c)
}

private func kernel4x24(kc: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var t = Tile4x24()
    t.multiply(a, a + lda, a + 2 * lda, a + 3 * lda, depth: kc, b: b)
    var row = c
    finish(t.c00, row, accumulate); finish(t.c01, row + 8, accumulate); finish(t.c02, row + 16, accumulate)
    row += ldc
    finish(t.c10, row, accumulate); finish(t.c11, row + 8, accumulate); finish(t.c12, row + 16, accumulate)
    row += ldc
    finish(t.c20, row, accumulate); finish(t.c21, row + 8, accumulate); finish(t.c22, row + 16, accumulate)
    row += ldc
    finish(t.c30, row, accumulate); finish(t.c31, row + 8, accumulate); finish(t.c32, row + 16, accumulate)
}

private func kernel4x16(kc: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var t = Tile4x16()
    t.multiply(a, a + lda, a + 2 * lda, a + 3 * lda, depth: kc, b: b)
    finish(t.c00, c, accumulate); finish(t.c01, c + 8, accumulate)
    finish(t.c10, c + ldc, accumulate); finish(t.c11, c + ldc + 8, accumulate)
    finish(t.c20, c + 2 * ldc, accumulate); finish(t.c21, c + 2 * ldc + 8, accumulate)
    finish(t.c30, c + 3 * ldc, accumulate); finish(t.c31, c + 3 * ldc + 8, accumulate)
}

private func kernel4x8(kc: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                       c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    var t = Tile4x8()
    t.multiply(a, a + lda, a + 2 * lda, a + 3 * lda, depth: kc, b: b)
    finish(t.c0, c, accumulate); finish(t.c1, c + ldc, accumulate)
    finish(t.c2, c + 2 * ldc, accumulate); finish(t.c3, c + 3 * ldc, accumulate)
}

// MARK: - Output transform and epilogue

/// Y = A^T m A for each tile of the block, then `act(Y + bias + residual)` stored to the
/// output pixels that exist (a tile past an odd output edge drops its last row/column).
/// The epilogue adds in the order of conv2dForward's (conv + bias, then + residual).
private func outputTransform(plan: WinogradPlan, m: UnsafePointer<Float>, tpad: Int, firstTile: Int, count: Int,
                             channels: Range<Int>, shared: WinogradShared, activation: Activation) {
    let g = plan.g
    let cout = g.outChannels, coutP = plan.coutP
    let eStride = tpad * coutP
    let oh = g.outHeight, ow = g.outWidth
    let bias = shared.bias?.pointer, residual = shared.residual?.pointer
    let output = shared.output.pointer
    for t in 0..<count {
        let tile = firstTile + t
        let tx = tile % plan.tilesW, rest = tile / plan.tilesW
        let ty = rest % plan.tilesH, n = rest / plan.tilesH
        let oy = 2 * ty, ox = 2 * tx
        let hasRow1 = oy + 1 < oh, hasCol1 = ox + 1 < ow
        // Output offsets of the tile's four pixels (y00, y01, y10, y11).
        let o00 = ((n * oh + oy) * ow + ox) * cout
        let o01 = o00 + cout, o10 = o00 + ow * cout, o11 = o10 + cout
        let src = m + t * coutP
        var ch = channels.lowerBound
        while ch + 8 <= channels.upperBound {
            let y = untransform(src + ch, eStride, SIMD8<Float>.self)
            let b = bias.map { load8($0 + ch) } ?? SIMD8<Float>()
            @inline(__always) func emit(_ value: SIMD8<Float>, _ offset: Int) {
                var v = value + b
                if let residual { v += load8(residual + offset + ch) }
                store8(activate(v, activation), output + offset + ch)
            }
            emit(y.0, o00)
            if hasCol1 { emit(y.1, o01) }
            if hasRow1 { emit(y.2, o10) }
            if hasRow1 && hasCol1 { emit(y.3, o11) }
            ch += 8
        }
        // leftovers
        while ch < channels.upperBound {
            let y = untransform(src + ch, eStride, Float.self)
            let b = bias?[ch] ?? 0
            @inline(__always) func emit(_ value: Float, _ offset: Int) {
                var v = value + b
                if let residual { v += residual[offset + ch] }
                output[offset + ch] = activation.apply(v)
            }
            emit(y.0, o00)
            if hasCol1 { emit(y.1, o01) }
            if hasRow1 { emit(y.2, o10) }
            if hasRow1 && hasCol1 { emit(y.3, o11) }
            ch += 1
        }
    }
}

/// A^T m A for one lane group of one tile: the 2x2 outputs (y00, y01, y10, y11).
@inline(__always)
private func untransform<L: WinogradLane>(_ m: UnsafePointer<Float>, _ eStride: Int, _: L.Type) -> (L, L, L, L) {
    @inline(__always) func at(_ e: Int) -> L { L.load(m + e * eStride) }
    // s[i][j] = (A^T m)[i][j]: row 0 = m0 + m1 + m2, row 1 = m1 - m2 - m3 (rows of m).
    var s0 = (L.zero, L.zero, L.zero, L.zero), s1 = s0
    @inline(__always) func column(_ j: Int) -> (L, L) {
        let a = at(j), b = at(4 + j), c = at(8 + j), d = at(12 + j)
        return (a + b + c, b - c - d)
    }
    var p = column(0); s0.0 = p.0; s1.0 = p.1
    p = column(1); s0.1 = p.0; s1.1 = p.1
    p = column(2); s0.2 = p.0; s1.2 = p.1
    p = column(3); s0.3 = p.0; s1.3 = p.1
    return (s0.0 + s0.1 + s0.2, s0.1 - s0.2 - s0.3, s1.0 + s1.1 + s1.2, s1.1 - s1.2 - s1.3)
}

/// The activation of 8 lanes: compare-and-blend for the piecewise-linear ones (SIMD's
/// `clamped` is scalar per lane), lane by lane for SiLU's exponential.
@inline(__always)
private func activate(_ v: SIMD8<Float>, _ activation: Activation) -> SIMD8<Float> {
    switch activation {
    case .none: return v
    case .relu: return v.replacing(with: 0, where: v .< 0)
    case .relu6: return v.replacing(with: 0, where: v .< 0).replacing(with: 6, where: v .> 6)
    case .leakyRelu(let slope): return v.replacing(with: v * slope, where: .!(v .> 0))
    case .silu:
        var r = v
        for i in 0..<8 { r[i] = activation.apply(v[i]) }
        return r
    }
}

// MARK: - F(4x4, 3x3) transforms
//
//     B^T = | 4  0 -5  0  1  0 |     A^T = | 1  1  1  1  1  0 |
//           | 0 -4 -4  1  1  0 |           | 0  1 -1  2 -2  0 |
//           | 0  4 -4 -1  1  0 |           | 0  1  1  4  4  0 |
//           | 0 -2 -1  2  1  0 |           | 0  1 -1  8 -8  1 |
//           | 0  2 -1 -2  1  0 |
//           | 0  4  0 -5  0  1 |     G: see WinogradTile.g
//
// (interpolation points 0, 1, -1, 2, -2 and infinity; checked in Double against direct
// summation before use, to 2e-16, and by the tests in fp32.)

/// One 6-point B^T product: applied to the rows, then to the columns of the patch.
@inline(__always)
private func bt6<L: WinogradLane>(_ d0: L, _ d1: L, _ d2: L, _ d3: L, _ d4: L, _ d5: L) -> (L, L, L, L, L, L) {
    // Shared subexpressions: rows 1/2 and 3/4 differ only in the sign of their odd part.
    let a = d4 - d2 * 4, b = d3 - d1 * 4          // rows 1, 2: a + b, a - b
    let c = d4 - d2, e = (d3 - d1) * 2            // rows 3, 4: c + e, c - e
    return (d0 * 4 - d2 * 5 + d4, a + b, a - b, c + e, c - e, d1 * 4 - d3 * 5 + d5)
}

/// V = B^T d B for 6x6 patches at `(4 ty - padTop, 4 tx - padLeft)`; as ``inputTransform``.
private func inputTransform4(plan: WinogradPlan, input: UnsafePointer<Float>, zeros: UnsafePointer<Float>,
                             firstTile: Int, count: Int, v: UnsafeMutablePointer<Float>, tpad: Int) {
    let g = plan.g
    let cin = g.inChannels
    let eStride = tpad * cin
    var pointers = [UnsafePointer<Float>](repeating: zeros, count: 36)
    pointers.withUnsafeMutableBufferPointer { d in
        for t in 0..<count {
            let tile = firstTile + t
            let tx = tile % plan.tilesW, rest = tile / plan.tilesW
            let ty = rest % plan.tilesH, n = rest / plan.tilesH
            let iy0 = 4 * ty - g.padTop, ix0 = 4 * tx - g.padLeft
            for r in 0..<6 {
                let iy = iy0 + r
                for c in 0..<6 {
                    let ix = ix0 + c
                    d[r * 6 + c] = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                        ? input + ((n * g.height + iy) * g.width + ix) * cin : zeros
                }
            }
            let out = v + t * cin
            var ch = 0
            while ch + 8 <= cin {
                transformPatch4(d, ch, out + ch, eStride, SIMD8<Float>.self)
                ch += 8
            }
            // leftovers
            while ch < cin {
                transformPatch4(d, ch, out + ch, eStride, Float.self)
                ch += 1
            }
        }
    }
}

@inline(__always)
private func transformPatch4<L: WinogradLane>(
    _ d: UnsafeMutableBufferPointer<UnsafePointer<Float>>, _ ch: Int, _ out: UnsafeMutablePointer<Float>,
    _ eStride: Int, _: L.Type
) {
    // Rows first into a 6x6 scratch (36 vectors do not fit in 16 registers anyway), then
    // columns straight to V.
    withUnsafeTemporaryAllocation(of: L.self, capacity: 36) { t in
        for r in 0..<6 {
            @inline(__always) func x(_ c: Int) -> L { L.load(d[r * 6 + c] + ch) }
            let y = bt6(x(0), x(1), x(2), x(3), x(4), x(5))
            t[r * 6] = y.0; t[r * 6 + 1] = y.1; t[r * 6 + 2] = y.2
            t[r * 6 + 3] = y.3; t[r * 6 + 4] = y.4; t[r * 6 + 5] = y.5
        }
        for j in 0..<6 {
            let y = bt6(t[j], t[6 + j], t[12 + j], t[18 + j], t[24 + j], t[30 + j])
            y.0.store(out + j * eStride); y.1.store(out + (6 + j) * eStride)
            y.2.store(out + (12 + j) * eStride); y.3.store(out + (18 + j) * eStride)
            y.4.store(out + (24 + j) * eStride); y.5.store(out + (30 + j) * eStride)
        }
    }
}

/// One 6-point A^T product.
@inline(__always)
private func at6<L: WinogradLane>(_ m0: L, _ m1: L, _ m2: L, _ m3: L, _ m4: L, _ m5: L) -> (L, L, L, L) {
    let p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4
    return (m0 + p + r, q + s * 2, p + r * 4, q + s * 8 + m5)
}

/// Y = A^T m A for 4x4 tiles, then the epilogue; as ``outputTransform``.
private func outputTransform4(plan: WinogradPlan, m: UnsafePointer<Float>, tpad: Int, firstTile: Int, count: Int,
                              channels: Range<Int>, shared: WinogradShared, activation: Activation) {
    let g = plan.g
    let cout = g.outChannels, coutP = plan.coutP
    let eStride = tpad * coutP
    let oh = g.outHeight, ow = g.outWidth
    let bias = shared.bias?.pointer, residual = shared.residual?.pointer
    let output = shared.output.pointer
    for t in 0..<count {
        let tile = firstTile + t
        let tx = tile % plan.tilesW, rest = tile / plan.tilesW
        let ty = rest % plan.tilesH, n = rest / plan.tilesH
        let oy = 4 * ty, ox = 4 * tx
        let rowsHere = min(4, oh - oy), colsHere = min(4, ow - ox)
        let base = ((n * oh + oy) * ow + ox) * cout
        let src = m + t * coutP
        var ch = channels.lowerBound
        while ch + 8 <= channels.upperBound {
            untransform4(src + ch, eStride, SIMD8<Float>.self) { i, j, value in
                guard i < rowsHere && j < colsHere else { return }
                let offset = base + (i * ow + j) * cout + ch
                var v = value
                if let bias { v += load8(bias + ch) }
                if let residual { v += load8(residual + offset) }
                store8(activate(v, activation), output + offset)
            }
            ch += 8
        }
        // leftovers
        while ch < channels.upperBound {
            untransform4(src + ch, eStride, Float.self) { i, j, value in
                guard i < rowsHere && j < colsHere else { return }
                let offset = base + (i * ow + j) * cout + ch
                var v = value
                if let bias { v += bias[ch] }
                if let residual { v += residual[offset] }
                output[offset] = activation.apply(v)
            }
            ch += 1
        }
    }
}

/// A^T m A for one lane group of one 4x4 tile, handing each output (row i, column j) to `emit`.
@inline(__always)
private func untransform4<L: WinogradLane>(_ m: UnsafePointer<Float>, _ eStride: Int, _: L.Type,
                                           _ emit: (Int, Int, L) -> Void) {
    withUnsafeTemporaryAllocation(of: L.self, capacity: 24) { s in
        // s[i][j] = (A^T m)[i][j], one column j of m at a time.
        for j in 0..<6 {
            @inline(__always) func x(_ i: Int) -> L { L.load(m + (i * 6 + j) * eStride) }
            let y = at6(x(0), x(1), x(2), x(3), x(4), x(5))
            s[j] = y.0; s[6 + j] = y.1; s[12 + j] = y.2; s[18 + j] = y.3
        }
        for i in 0..<4 {
            let y = at6(s[i * 6], s[i * 6 + 1], s[i * 6 + 2], s[i * 6 + 3], s[i * 6 + 4], s[i * 6 + 5])
            emit(i, 0, y.0); emit(i, 1, y.1); emit(i, 2, y.2); emit(i, 3, y.3)
        }
    }
}

// Single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, row-major.
//
// Structure (the usual Goto/BLIS scheme):
//   for jc in N by NC          -- a packed B block [KC, NC] is reused by every ic block
//     for pc in K by KC
//       for ic in M by MC      -- pack op(A)[ic.., pc..] into MR-row panels      [KC, MR]...
//         for jr in NC by NR   -- one B micro-panel stays in L1; during the first ic block
//                                 pack op(B)[pc.., jc+jr..] into it               [KC, NR]
//           for ir in MC by MR -- A micro-panels stream from L2
//             micro-kernel: MR x NR tile of C in registers, KC rank-1 updates
// Packing makes the micro-kernel's loads contiguous and pads edge panels with zeros, so
// the kernel never branches on sizes; edge tiles of C are computed into a scratch tile
// and copied out.
//
// Determinism: the K blocking depends only on K, and each C element is accumulated in the
// same order whichever tile, block or thread computes it; the edge path rounds exactly like
// the full-tile path (one multiply by alpha, one fused multiply-add with beta). Threads
// split C into disjoint column (or row) ranges, so each element has one writer and the
// result is bitwise identical for any thread count (tested).

/// The register-tile shape of the GEMM micro-kernel.
public enum GEMMKernel: Sendable, CaseIterable, CustomStringConvertible {
    /// The best kernel for the instruction set this build targets: ``rows8x32`` when built
    /// with AVX-512, ``rows4x24`` otherwise.
    case automatic
    /// A 4 x 24 tile: 12 `SIMD8<Float>` accumulators = 12 ymm registers, and only 4
    /// broadcasts per 12 FMAs (6 for ``rows6x16``): the best shape measured on AVX2.
    case rows4x24
    /// A 6 x 16 tile: 6 `SIMD16<Float>` accumulators = 12 ymm registers with AVX2, the
    /// classic shape for 16-register machines.
    case rows6x16
    /// An 8 x 32 tile: 16 `SIMD16<Float>` accumulators = 16 of the 32 zmm registers with
    /// AVX-512. Correct everywhere, but spills on AVX2-only builds.
    case rows8x32

    /// The kernel ``automatic`` stands for in this build.
    public static let preferred: GEMMKernel =
        CPUFeatures.buildFeatures.contains("avx512f") ? .rows8x32 : .rows4x24

    /// The tile shape, e.g. `6x16`; for ``automatic``, also the kernel it stands for.
    public var description: String {
        switch self {
        case .automatic: "automatic (\(GEMMKernel.preferred))"
        case .rows4x24: "4x24"
        case .rows6x16: "6x16"
        case .rows8x32: "8x32"
        }
    }
}

/// Single-precision general matrix multiply: `C = alpha * op(A) * op(B) + beta * C`.
///
/// All matrices are row-major with leading dimensions (row strides, in elements):
/// - `op(A)` is `[m, k]`: `A` is stored `[m, lda]` (`lda >= k`), or `[k, lda]` with
///   `lda >= m` when `transposeA` (then `op(A)[i, p] = a[p * lda + i]`);
/// - `op(B)` is `[k, n]`: `B` is stored `[k, ldb]` (`ldb >= n`), or `[n, ldb]` with
///   `ldb >= k` when `transposeB`;
/// - `C` is `[m, ldc]` with `ldc >= n`; only its first `n` columns are touched.
///
/// When `beta == 0`, `C` is not read (it may hold NaN). The work is split over `pool` by
/// disjoint column or row ranges of `C`; the result is bitwise identical for any pool
/// size, including `nil` (the calling thread only).
///
/// - Parameters:
///   - transposeA: use `A` transposed.
///   - transposeB: use `B` transposed.
///   - m: rows of `op(A)` and `C`.
///   - n: columns of `op(B)` and `C`.
///   - k: columns of `op(A)`, rows of `op(B)`.
///   - alpha: scale of the product.
///   - a: the elements of `A` (may be nil when `m * k == 0`).
///   - lda: the row stride of `A` as stored.
///   - b: the elements of `B` (may be nil when `k * n == 0`).
///   - ldb: the row stride of `B` as stored.
///   - beta: scale of the previous `C`.
///   - c: the elements of `C` (may be nil when `m * n == 0`).
///   - ldc: the row stride of `C`.
///   - pool: the threads to use; defaults to ``ThreadPool/shared``, `nil` for one thread.
///   - kernel: the micro-kernel; leave at ``GEMMKernel/automatic`` except in tests. With
///     `automatic`, products of a few rows (16 with `B` transposed, 2 otherwise) skip the
///     packing and read `B` once.
public func sgemm(
    transposeA: Bool, transposeB: Bool,
    m: Int, n: Int, k: Int,
    alpha: Float,
    a: UnsafePointer<Float>?, lda: Int,
    b: UnsafePointer<Float>?, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>?, ldc: Int,
    pool: ThreadPool? = .shared,
    kernel: GEMMKernel = .automatic
) {
    precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=\(m) n=\(n) k=\(k)")
    precondition(lda >= max(1, transposeA ? m : k), "sgemm: lda=\(lda) too small for op(A) [\(m), \(k)] (transposeA: \(transposeA))")
    precondition(ldb >= max(1, transposeB ? k : n), "sgemm: ldb=\(ldb) too small for op(B) [\(k), \(n)] (transposeB: \(transposeB))")
    precondition(ldc >= max(1, n), "sgemm: ldc=\(ldc) too small for C [\(m), \(n)]")
    guard m > 0, n > 0 else { return }
    guard let c else { preconditionFailure("sgemm: C is nil for C [\(m), \(n)]") }
    if k == 0 || alpha == 0 {
        scaleMatrix(c, rows: m, cols: n, ldc: ldc, by: beta)
        return
    }
    guard let a, let b else { preconditionFailure("sgemm: A or B is nil for k=\(k)") }
    if kernel == .automatic && m <= smallRowsLimit(transposeB: transposeB) {
        // Too few rows to pay for packing B (SmallRowsGEMM.swift).
        sgemmSmallRows(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
            a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, pool: pool)
        return
    }
    let problem = GEMMProblem(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
        a: UnsafeSharedPointer(readOnly: a), lda: lda, b: UnsafeSharedPointer(readOnly: b), ldb: ldb,
        beta: beta, c: UnsafeSharedPointer(c), ldc: ldc)
    switch kernel == .automatic ? GEMMKernel.preferred : kernel {
    case .rows8x32: problem.run(Kernel8x32.self, pool: pool)
    case .rows6x16: problem.run(Kernel6x16.self, pool: pool)
    default: problem.run(Kernel4x24.self, pool: pool)
    }
}

/// A left-hand matrix that is never stored: GEMM asks for the parts it packs, row by row.
///
/// This is how a convolution becomes an implicit GEMM: the patch matrix of im2col is
/// written straight into the GEMM's packed panels, a cache-sized block at a time, instead
/// of being materialised whole.
///
/// Implementations are read-only and called from several pool threads at once.
public protocol GEMMRowSource: Sendable {
    /// Writes elements `[row, column ..< column + count]` of the matrix to `destination`.
    func copy(row: Int, column: Int, count: Int, into destination: UnsafeMutablePointer<Float>)
}

/// `C = alpha * A * B + beta * C` where `A` (`[m, k]`) comes from a ``GEMMRowSource``;
/// otherwise as ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:pool:kernel:)``
/// (same blocking, kernels and determinism).
public func sgemm(
    m: Int, n: Int, k: Int, alpha: Float, rows source: some GEMMRowSource,
    b: UnsafePointer<Float>?, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>?, ldc: Int,
    pool: ThreadPool? = .shared, kernel: GEMMKernel = .automatic
) {
    precondition(m >= 0 && n >= 0 && k >= 0, "sgemm: negative size m=\(m) n=\(n) k=\(k)")
    precondition(ldb >= max(1, n), "sgemm: ldb=\(ldb) too small for B [\(k), \(n)]")
    precondition(ldc >= max(1, n), "sgemm: ldc=\(ldc) too small for C [\(m), \(n)]")
    guard m > 0, n > 0 else { return }
    guard let c else { preconditionFailure("sgemm: C is nil for C [\(m), \(n)]") }
    if k == 0 || alpha == 0 {
        scaleMatrix(c, rows: m, cols: n, ldc: ldc, by: beta)
        return
    }
    guard let b else { preconditionFailure("sgemm: B is nil for k=\(k)") }
    let problem = GEMMProblem(
        transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: alpha,
        a: UnsafeSharedPointer(readOnly: b), lda: k, b: UnsafeSharedPointer(readOnly: b), ldb: ldb,
        beta: beta, c: UnsafeSharedPointer(c), ldc: ldc, rowSource: source)
    switch kernel == .automatic ? GEMMKernel.preferred : kernel {
    case .rows8x32: problem.run(Kernel8x32.self, pool: pool)
    case .rows6x16: problem.run(Kernel6x16.self, pool: pool)
    default: problem.run(Kernel4x24.self, pool: pool)
    }
}

/// `C = beta * C` over an `[rows, cols]` window; `beta == 0` stores zeros without reading.
private func scaleMatrix(_ c: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ldc: Int, by beta: Float) {
    for i in 0..<rows {
        let row = c + i * ldc
        if beta == 0 {
            row.update(repeating: 0, count: cols)
        } else if beta != 1 {
            for j in 0..<cols { row[j] *= beta }
        }
    }
}

// MARK: - Blocking

/// Cache-blocking sizes, in elements.
struct GEMMBlocking {
    /// Depth of a packed block (rows of the B panel, columns of the A panel). A B
    /// micro-panel, `kc * NR` floats, should fill about half of L1.
    var kc: Int
    /// Rows of op(A) packed at once: `mc * kc` floats should sit in L2 with room to spare.
    var mc: Int
    /// Columns of op(B) packed at once: `kc * nc` floats stay in L3.
    var nc: Int

    /// The K blocks: `k` cut into equal pieces of at most `kc`, so no thin last block
    /// (e.g. K = 576 becomes 288 + 288, not 256 + 256 + 64). Depends on `k` only, which
    /// keeps the summation order independent of the thread count.
    func depthBlock(for k: Int) -> Int {
        let blocks = (k + kc - 1) / kc
        return (k + blocks - 1) / blocks
    }
}

// MARK: - Micro-kernels

/// A register-tile kernel over packed panels.
protocol GEMMMicroKernel: SendableMetatype {
    /// Rows of the C tile (and of a packed A panel).
    static var mr: Int { get }
    /// Columns of the C tile (and of a packed B panel).
    static var nr: Int { get }
    /// Cache blocking measured for this kernel.
    static var blocking: GEMMBlocking { get }

    /// `C[mr, nr] = alpha * (A_panel * B_panel) + beta * C`, where the A panel is
    /// `[kc][mr]` and the B panel `[kc][nr]` (both packed, contiguous) and C has row
    /// stride `ldc`. `beta == 0` means C is not read.
    static func multiply(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float)
}

/// Writes one row of 16 results: `alpha * acc (+ beta * c)`, rounded exactly like the
/// scalar edge path (a multiply, then one fused multiply-add).
@inline(__always)
private func storeRow(_ acc: SIMD16<Float>, _ c: UnsafeMutablePointer<Float>, alpha: Float, beta: Float) {
    var value = acc * alpha
    if beta != 0 {
        value = value.addingProduct(beta, UnsafeRawPointer(c).loadUnaligned(as: SIMD16<Float>.self))
    }
    UnsafeMutableRawPointer(c).storeBytes(of: value, as: SIMD16<Float>.self)
}

@inline(__always)
private func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
private func storeRow(_ acc: SIMD8<Float>, _ c: UnsafeMutablePointer<Float>, alpha: Float, beta: Float) {
    var value = acc * alpha
    if beta != 0 {
        value = value.addingProduct(beta, UnsafeRawPointer(c).loadUnaligned(as: SIMD8<Float>.self))
    }
    UnsafeMutableRawPointer(c).storeBytes(of: value, as: SIMD8<Float>.self)
}


/// 4 x 24 tile (``Tile4x24``, A packed 4 wide): per k, three 8-wide pieces of a B row times
/// 4 broadcast elements of A. 12 SIMD8 accumulators are 12 ymm registers. Alone, with
/// panels in L1, it ran at 98 % of the FMA peak on a Zen AVX2 core, against 93 % for
/// 6 x 16, whose 6 broadcasts per 12 FMAs compete with the B loads for the load ports.
enum Kernel4x24: GEMMMicroKernel {
    static var mr: Int { 4 }
    static var nr: Int { 24 }
    /// kc 256 keeps a B micro-panel (256 x 24 floats, 24 KiB) in a 32 KiB L1 with room
    /// for the A panel streaming past it. Swept on the same machine as ``Kernel6x16``
    /// (kc 192-384, mc 32-128, nc 768/1536): all within noise, 33-34 GFLOP/s at 512^3 and
    /// 29.5-30.5 at 64x3136x576, i.e. level with 6 x 16 at the GEMM level there; the
    /// kernel's own advantage is eaten by packing and by N = 512 not being a multiple of 24.
    static var blocking: GEMMBlocking { GEMMBlocking(kc: 256, mc: 64, nc: 768) }

    @inline(__always)
    static func multiply(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        var t = Tile4x24()
        t.multiply(packed: a, depth: kc, b: b)
        var row = c
        storeRow(t.c00, row, alpha: alpha, beta: beta); storeRow(t.c01, row + 8, alpha: alpha, beta: beta)
        storeRow(t.c02, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(t.c10, row, alpha: alpha, beta: beta); storeRow(t.c11, row + 8, alpha: alpha, beta: beta)
        storeRow(t.c12, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(t.c20, row, alpha: alpha, beta: beta); storeRow(t.c21, row + 8, alpha: alpha, beta: beta)
        storeRow(t.c22, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(t.c30, row, alpha: alpha, beta: beta); storeRow(t.c31, row + 8, alpha: alpha, beta: beta)
        storeRow(t.c32, row + 16, alpha: alpha, beta: beta)
    }
}

/// 6 x 16 tile: per k, one 16-wide row of B times 6 broadcast elements of A.
/// 6 SIMD16 accumulators are 12 ymm registers on AVX2, leaving 4 for B and the broadcast.
enum Kernel6x16: GEMMMicroKernel {
    static var mr: Int { 6 }
    static var nr: Int { 16 }
    /// Swept on a 2-core AMD EPYC (Zen, AVX2; 32 KiB L1d, 512 KiB L2 per core) over
    /// kc 192/256/320, mc 48/72/120, nc 256/768/3072 at 512^3 and 64x3136x576: kc 256-320
    /// and mc 48-72 were within noise at 512^3 (32-33 GFLOP/s); nc 768 beat 3072 by ~8 % on
    /// the wide convolution shape (the packed B block then stays in L2).
    static var blocking: GEMMBlocking { GEMMBlocking(kc: 320, mc: 72, nc: 768) }

    @inline(__always)
    static func multiply(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>()
        var c3 = SIMD16<Float>(), c4 = SIMD16<Float>(), c5 = SIMD16<Float>()
        var pa = a, pb = b
        for _ in 0..<kc {
            let bv = load16(pb)
            c0 = c0.addingProduct(pa[0], bv)
            c1 = c1.addingProduct(pa[1], bv)
            c2 = c2.addingProduct(pa[2], bv)
            c3 = c3.addingProduct(pa[3], bv)
            c4 = c4.addingProduct(pa[4], bv)
            c5 = c5.addingProduct(pa[5], bv)
            pa += 6
            pb += 16
        }
        storeRow(c0, c, alpha: alpha, beta: beta)
        storeRow(c1, c + ldc, alpha: alpha, beta: beta)
        storeRow(c2, c + 2 * ldc, alpha: alpha, beta: beta)
        storeRow(c3, c + 3 * ldc, alpha: alpha, beta: beta)
        storeRow(c4, c + 4 * ldc, alpha: alpha, beta: beta)
        storeRow(c5, c + 5 * ldc, alpha: alpha, beta: beta)
    }
}

/// 8 x 32 tile: per k, two 16-wide halves of a B row times 8 broadcast elements of A.
/// 16 SIMD16 accumulators are 16 zmm registers on AVX-512 (of 32).
enum Kernel8x32: GEMMMicroKernel {
    static var mr: Int { 8 }
    static var nr: Int { 32 }
    /// Not measured (the development machine has no AVX-512): kc 192 keeps a B micro-panel
    /// (192 x 32 floats, 24 KiB) inside a 32 KiB L1; mc 128 x kc is 96 KiB of A in L2.
    static var blocking: GEMMBlocking { GEMMBlocking(kc: 192, mc: 128, nc: 768) }

    @inline(__always)
    static func multiply(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
    ) {
        var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
        var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
        var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
        var c60 = SIMD16<Float>(), c61 = SIMD16<Float>(), c70 = SIMD16<Float>(), c71 = SIMD16<Float>()
        var pa = a, pb = b
        for _ in 0..<kc {
            let b0 = load16(pb), b1 = load16(pb + 16)
            var x = pa[0]
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = pa[1]
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = pa[2]
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = pa[3]
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            x = pa[4]
            c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
            x = pa[5]
            c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
            x = pa[6]
            c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
            x = pa[7]
            c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
            pa += 8
            pb += 32
        }
        var row = c
        storeRow(c00, row, alpha: alpha, beta: beta); storeRow(c01, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c10, row, alpha: alpha, beta: beta); storeRow(c11, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c20, row, alpha: alpha, beta: beta); storeRow(c21, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c30, row, alpha: alpha, beta: beta); storeRow(c31, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c40, row, alpha: alpha, beta: beta); storeRow(c41, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c50, row, alpha: alpha, beta: beta); storeRow(c51, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c60, row, alpha: alpha, beta: beta); storeRow(c61, row + 16, alpha: alpha, beta: beta)
        row += ldc
        storeRow(c70, row, alpha: alpha, beta: beta); storeRow(c71, row + 16, alpha: alpha, beta: beta)
    }
}

// MARK: - Driver

/// One sgemm call's arguments, shareable with pool workers (each writes its own C range).
private struct GEMMProblem: Sendable {
    let transposeA: Bool, transposeB: Bool
    let m: Int, n: Int, k: Int
    let alpha: Float
    let a: UnsafeSharedPointer<Float>, lda: Int
    let b: UnsafeSharedPointer<Float>, ldb: Int
    let beta: Float
    let c: UnsafeSharedPointer<Float>, ldc: Int
    /// When set, `A` is read from here instead of `a` (which is then unused).
    var rowSource: (any GEMMRowSource)? = nil

    /// Splits C over the pool and runs the blocked loops on each part.
    func run<K: GEMMMicroKernel>(_ kernel: K.Type, pool: ThreadPool?) {
        let threads = pool?.threadCount ?? 1
        // Below ~1 MFLOP the hand-off costs more than it saves.
        let smallProblem = m * n * k < 1 << 19
        guard let pool, threads > 1, !smallProblem else {
            compute(K.self, rows: 0..<m, cols: 0..<n)
            return
        }
        let columnTiles = (n + K.nr - 1) / K.nr
        let rowTiles = (m + K.mr - 1) / K.mr
        // Cut along N when it has enough tiles for an even split (the usual case for
        // convolutions, where N = H * W); otherwise along M. Cuts fall on tile boundaries.
        if columnTiles >= 4 * threads || columnTiles >= rowTiles {
            pool.parallelRanges(columnTiles) { tiles in
                compute(K.self, rows: 0..<m, cols: (tiles.lowerBound * K.nr)..<min(tiles.upperBound * K.nr, n))
            }
        } else {
            pool.parallelRanges(rowTiles) { tiles in
                compute(K.self, rows: (tiles.lowerBound * K.mr)..<min(tiles.upperBound * K.mr, m), cols: 0..<n)
            }
        }
    }

    /// Computes one rectangle of C with packing buffers that no other call uses meanwhile.
    func compute<K: GEMMMicroKernel>(_: K.Type, rows: Range<Int>, cols: Range<Int>) {
        let mr = K.mr, nr = K.nr
        let blocking = K.blocking
        let kcMax = blocking.depthBlock(for: k)
        let mcMax = min(blocking.mc, (rows.count + mr - 1) / mr * mr)
        let ncMax = min(blocking.nc, (cols.count + nr - 1) / nr * nr)
        // [mcMax / mr][kc][mr] | [ncMax / nr][kc][nr] | [mr][nr], each 64-byte aligned
        let aFloats = (mcMax * kcMax + 15) / 16 * 16, bFloats = (ncMax * kcMax + 15) / 16 * 16
        ScratchBuffers.with(floats: aFloats + bFloats + mr * nr) { scratch in
            compute(
                K.self, rows: rows, cols: cols,
                packedA: scratch, packedB: scratch + aFloats, edgeTile: scratch + aFloats + bFloats)
        }
    }

    /// The blocked loops over one rectangle of C.
    func compute<K: GEMMMicroKernel>(
        _: K.Type, rows: Range<Int>, cols: Range<Int>,
        packedA: UnsafeMutablePointer<Float>, packedB: UnsafeMutablePointer<Float>,
        edgeTile: UnsafeMutablePointer<Float>
    ) {
        let mr = K.mr, nr = K.nr
        let blocking = K.blocking
        let kcMax = blocking.depthBlock(for: k)
        let cBase = c.pointer
        let singleRowBlock = rows.count <= blocking.mc

        for jc in stride(from: cols.lowerBound, to: cols.upperBound, by: blocking.nc) {
            let nc = min(blocking.nc, cols.upperBound - jc)
            for pc in stride(from: 0, to: k, by: kcMax) {
                let kc = min(kcMax, k - pc)
                // The first K block applies the caller's beta; later ones accumulate.
                let betaHere = pc == 0 ? beta : 1
                for ic in stride(from: rows.lowerBound, to: rows.upperBound, by: blocking.mc) {
                    let mc = min(blocking.mc, rows.upperBound - ic)
                    packA(K.self, rows: ic, height: mc, cols: pc, depth: kc, into: packedA)
                    for jr in stride(from: 0, to: nc, by: nr) {
                        let width = min(nr, nc - jr)
                        // With a single row block each B micro-panel is used once, so one
                        // L1-sized buffer is reused for all of them and the packed B block
                        // never pushes C and A out of L2.
                        let bPanelStart = packedB + (singleRowBlock ? 0 : jr * kc)
                        if ic == rows.lowerBound {
                            // Pack each B micro-panel just before its first use rather than
                            // the whole block up front: the reads of B from memory then
                            // interleave with arithmetic, and the panel is still in L1 when
                            // the kernel reads it. Matters when M is small (convolutions,
                            // M = output channels), where packing B is a large share.
                            packB(K.self, rows: pc, depth: kc, cols: jc + jr, width: width, into: bPanelStart)
                        }
                        let bPanel = UnsafePointer(bPanelStart)
                        for ir in stride(from: 0, to: mc, by: mr) {
                            let aPanel = UnsafePointer(packedA + ir * kc)
                            let height = min(mr, mc - ir)
                            let cTile = cBase + (ic + ir) * ldc + jc + jr
                            if height == mr && width == nr {
                                K.multiply(
                                    kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc,
                                    alpha: alpha, beta: betaHere)
                            } else {
                                // leftovers: full tile into scratch, then the valid part
                                K.multiply(
                                    kc: kc, a: aPanel, b: bPanel, c: edgeTile, ldc: nr,
                                    alpha: alpha, beta: 0)
                                for i in 0..<height {
                                    for j in 0..<width {
                                        let value = edgeTile[i * nr + j]
                                        cTile[i * ldc + j] =
                                            betaHere == 0 ? value : value.addingProduct(betaHere, cTile[i * ldc + j])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Packs `op(A)[row0 ..< row0+height, col0 ..< col0+depth]` into MR-row panels
    /// `[panel][depth][mr]`, padding missing rows with zeros.
    @inline(__always)
    func packA<K: GEMMMicroKernel>(
        _: K.Type, rows row0: Int, height: Int, cols col0: Int, depth: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        let mr = K.mr
        if let rowSource {
            // Each row of the block comes from the source into a scratch row, then goes
            // into the panel with stride MR; missing rows are zero.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(depth, 1)) { scratch in
                let row = scratch.baseAddress!
                for panel in stride(from: 0, to: height, by: mr) {
                    let dst = packed + panel * depth
                    let rowsHere = min(mr, height - panel)
                    for r in 0..<rowsHere {
                        rowSource.copy(row: row0 + panel + r, column: col0, count: depth, into: row)
                        for p in 0..<depth { dst[p * mr + r] = row[p] }
                    }
                    for r in rowsHere..<mr { for p in 0..<depth { dst[p * mr + r] = 0 } }
                }
            }
            return
        }
        let a = UnsafePointer(self.a.pointer)
        for panel in stride(from: 0, to: height, by: mr) {
            let dst = packed + panel * depth  // this panel: [depth][mr]
            let rowsHere = min(mr, height - panel)
            if transposeA {
                // op(A)[i, p] = a[p * lda + i]: the MR elements of one depth step are contiguous.
                for p in 0..<depth {
                    let src = a + (col0 + p) * lda + row0 + panel
                    let out = dst + p * mr
                    for r in 0..<rowsHere { out[r] = src[r] }
                    for r in rowsHere..<mr { out[r] = 0 }
                }
            } else if rowsHere == mr {
                // op(A)[i, p] = a[i * lda + p]: MR row streams read side by side, so that
                // the panel is written contiguously (MR floats per depth step).
                let src = a + (row0 + panel) * lda + col0
                for p in 0..<depth {
                    let out = dst + p * mr
                    for r in 0..<mr { out[r] = src[r * lda + p] }
                }
            } else {
                // leftovers: read each row contiguously, write with stride MR.
                for r in 0..<rowsHere {
                    let src = a + (row0 + panel + r) * lda + col0
                    for p in 0..<depth { dst[p * mr + r] = src[p] }
                }
                for r in rowsHere..<mr {
                    for p in 0..<depth { dst[p * mr + r] = 0 }
                }
            }
        }
    }

    /// Packs `op(B)[row0 ..< row0+depth, col0 ..< col0+width]` into NR-column panels
    /// `[panel][depth][nr]`, padding missing columns with zeros.
    @inline(__always)
    func packB<K: GEMMMicroKernel>(
        _: K.Type, rows row0: Int, depth: Int, cols col0: Int, width: Int,
        into packed: UnsafeMutablePointer<Float>
    ) {
        let nr = K.nr
        let b = UnsafePointer(self.b.pointer)
        for panel in stride(from: 0, to: width, by: nr) {
            let dst = packed + panel * depth  // this panel: [depth][nr]
            let colsHere = min(nr, width - panel)
            if transposeB {
                // op(B)[p, j] = b[j * ldb + p]: read each column of op(B) contiguously.
                for j in 0..<colsHere {
                    let src = b + (col0 + panel + j) * ldb + row0
                    for p in 0..<depth { dst[p * nr + j] = src[p] }
                }
                for j in colsHere..<nr {
                    for p in 0..<depth { dst[p * nr + j] = 0 }
                }
            } else if colsHere == nr {
                // op(B)[p, j] = b[p * ldb + j]: whole rows of NR floats (a multiple of 8),
                // copied 8 at a time.
                for p in 0..<depth {
                    let src = b + (row0 + p) * ldb + col0 + panel
                    let out = dst + p * nr
                    for j in stride(from: 0, to: nr, by: 8) {
                        UnsafeMutableRawPointer(out + j).storeBytes(of: load8(src + j), as: SIMD8<Float>.self)
                    }
                }
            } else {
                for p in 0..<depth {
                    let src = b + (row0 + p) * ldb + col0 + panel
                    let out = dst + p * nr
                    for j in 0..<colsHere { out[j] = src[j] }
                    for j in colsHere..<nr { out[j] = 0 }
                }
            }
        }
    }
}

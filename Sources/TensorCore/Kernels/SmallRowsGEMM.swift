// GEMM for a handful of rows (a classifier head at batch 1 or 8, a projection of one
// embedding): C = alpha * op(A) * op(B) + beta * C with m <= smallRowsLimit(transposeB:).
//
// The blocked GEMM packs every B panel before using it, a full extra pass over B that pays
// off when many row panels reuse the packed block. With a few rows of A too little reuses
// it: a 1 x 1280 by (1000 x 1280)^T head spent 1.5-1.9 ms, mostly packing the 5 MB B, against
// 0.15 ms here. Here B is read once, straight from its storage:
//   - op(B) = B^T (B stored [n, k]): each C element is a dot product of two contiguous rows;
//     four B rows are taken at once so each A chunk is loaded once per four products;
//   - op(B) = B (B stored [k, n]): C rows are sums of scaled B rows, 32 columns at a time in
//     registers.
// Each C element is computed by the same sequence of operations whichever block, tail or
// thread handles it, so the result is bitwise identical for any pool size.

/// Rows of `op(A)` up to which ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:pool:kernel:)``
/// multiplies without packing. Measured on one thread (`layer-profile --small-rows`, shapes
/// 1000 x 1280, 1000 x 320, 128 x 1280, 4096 x 384): with `B^T` the dot products win at every
/// m up to 16 (1000 x 1280: 0.15 against 1.52 ms at m = 1, 1.45 against 2.45 ms at m = 16),
/// since packing a transposed B is a gather; with `B` stored [k, n] the packed kernel wins
/// from m = 4 (0.86 against 0.58 ms) and they tie at m = 2.
func smallRowsLimit(transposeB: Bool) -> Int { transposeB ? 16 : 2 }

/// `C = alpha * op(A) * op(B) + beta * C` for `m <= smallRowsLimit(transposeB:)`, same
/// contract as `sgemm`.
func sgemmSmallRows(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, pool: ThreadPool?
) {
    // op(A) as m contiguous rows; transposed A is gathered (m * k floats, small).
    let gathered: UnsafeMutablePointer<Float>? = transposeA ? .allocate(capacity: m * k) : nil
    defer { gathered?.deallocate() }
    if let gathered {
        for i in 0..<m { for p in 0..<k { gathered[i * k + p] = a[p * lda + i] } }
    }
    let rows = UnsafeSharedPointer(readOnly: UnsafePointer(gathered) ?? a)
    let rowStride = transposeA ? k : lda
    let bShared = UnsafeSharedPointer(readOnly: b), cShared = UnsafeSharedPointer(c)
    // Columns are handed out in blocks of the kernel's width, so cuts never split a block.
    let blockWidth = transposeB ? 4 : 32
    let blocks = (n + blockWidth - 1) / blockWidth
    let body: @Sendable (Range<Int>) -> Void = { range in
        let columns = (range.lowerBound * blockWidth)..<min(range.upperBound * blockWidth, n)
        if transposeB {
            dotProducts(m: m, columns: columns, k: k, alpha: alpha, a: rows.pointer, lda: rowStride,
                        b: bShared.pointer, ldb: ldb, beta: beta, c: cShared.pointer, ldc: ldc)
        } else {
            scaledRowSums(m: m, columns: columns, k: k, alpha: alpha, a: rows.pointer, lda: rowStride,
                          b: bShared.pointer, ldb: ldb, beta: beta, c: cShared.pointer, ldc: ldc)
        }
    }
    // Below ~1 MFLOP the hand-off costs more than it saves (as in the blocked GEMM).
    if let pool, pool.threadCount > 1, m * n * k >= 1 << 19 {
        pool.parallelRanges(blocks, body)
    } else {
        body(0..<blocks)
    }
}

/// Stores `alpha * value + beta * c` (`c` not read when `beta == 0`), the one rounding
/// sequence every C element of this file goes through.
@_transparent
private func store(_ value: Float, alpha: Float, beta: Float, into c: UnsafeMutablePointer<Float>) {
    let scaled = alpha * value
    c.pointee = beta == 0 ? scaled : scaled.addingProduct(beta, c.pointee)
}

/// `C[i, j] = alpha * dot(A row i, B row j) + beta * C[i, j]` for `j` in `columns`.
///
/// Every product: one `SIMD8` accumulator over the first `k / 8 * 8` elements in order, its
/// lane sum, then the leftover elements one by one.
private func dotProducts(
    m: Int, columns: Range<Int>, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let k8 = k / 8 * 8
    @_transparent func vector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @_transparent func finish(_ acc: SIMD8<Float>, _ aRow: UnsafePointer<Float>, _ bRow: UnsafePointer<Float>) -> Float {
        var total = acc.sum()
        for p in k8..<k { total = total.addingProduct(aRow[p], bRow[p]) }  // leftovers
        return total
    }
    var j = columns.lowerBound
    while j + 4 <= columns.upperBound {
        let b0 = b + j * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb
        for i in 0..<m {
            let aRow = a + i * lda
            var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
            var p = 0
            while p < k8 {
                let x = vector(aRow + p)
                s0 = s0.addingProduct(x, vector(b0 + p)); s1 = s1.addingProduct(x, vector(b1 + p))
                s2 = s2.addingProduct(x, vector(b2 + p)); s3 = s3.addingProduct(x, vector(b3 + p))
                p += 8
            }
            let cRow = c + i * ldc + j
            store(finish(s0, aRow, b0), alpha: alpha, beta: beta, into: cRow)
            store(finish(s1, aRow, b1), alpha: alpha, beta: beta, into: cRow + 1)
            store(finish(s2, aRow, b2), alpha: alpha, beta: beta, into: cRow + 2)
            store(finish(s3, aRow, b3), alpha: alpha, beta: beta, into: cRow + 3)
        }
        j += 4
    }
    while j < columns.upperBound {  // leftovers: one B row at a time, same arithmetic
        let bRow = b + j * ldb
        for i in 0..<m {
            let aRow = a + i * lda
            var s = SIMD8<Float>()
            var p = 0
            while p < k8 { s = s.addingProduct(vector(aRow + p), vector(bRow + p)); p += 8 }
            store(finish(s, aRow, bRow), alpha: alpha, beta: beta, into: c + i * ldc + j)
        }
        j += 1
    }
}

/// `C[i, columns] = alpha * sum_p A[i, p] * B[p, columns] + beta * C[i, columns]`.
///
/// Every element: a fused multiply-add per `p`, in order from zero, whether it sits in a
/// `SIMD8` lane or in the scalar leftovers.
private func scaledRowSums(
    m: Int, columns: Range<Int>, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    @_transparent func vector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @_transparent func storeLanes(_ s: SIMD8<Float>, _ cAt: UnsafeMutablePointer<Float>) {
        for lane in 0..<8 { store(s[lane], alpha: alpha, beta: beta, into: cAt + lane) }
    }
    // Column blocks outside, rows inside: the [k, 32] slice of B is read from memory once
    // and from cache by the other rows.
    var j = columns.lowerBound
    while j + 32 <= columns.upperBound {
        for i in 0..<m {
            let aRow = a + i * lda, cAt = c + i * ldc + j
            var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
            for p in 0..<k {
                let x = SIMD8<Float>(repeating: aRow[p]), bRow = b + p * ldb + j
                s0 = s0.addingProduct(x, vector(bRow)); s1 = s1.addingProduct(x, vector(bRow + 8))
                s2 = s2.addingProduct(x, vector(bRow + 16)); s3 = s3.addingProduct(x, vector(bRow + 24))
            }
            storeLanes(s0, cAt); storeLanes(s1, cAt + 8); storeLanes(s2, cAt + 16); storeLanes(s3, cAt + 24)
        }
        j += 32
    }
    while j < columns.upperBound {  // leftovers
        for i in 0..<m {
            let aRow = a + i * lda
            var s: Float = 0
            for p in 0..<k { s = s.addingProduct(aRow[p], b[p * ldb + j]) }
            store(s, alpha: alpha, beta: beta, into: c + i * ldc + j)
        }
        j += 1
    }
}

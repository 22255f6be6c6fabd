// Matrix product of 2-D tensors, on top of sgemm.

/// The matrix product `op(a) * op(b)` of two 2-D tensors.
///
/// Layout: `op(a)` is `[M, K]` and `op(b)` is `[K, N]`, where `op(x)` is `x` or, when the
/// corresponding flag is set, `x` transposed (read in place, not copied). The result is a
/// new row-major `[M, N]` tensor.
///
/// - Parameters:
///   - a: `[M, K]`, or `[K, M]` when `transposeA`.
///   - b: `[K, N]`, or `[N, K]` when `transposeB`.
///   - transposeA: use `a` transposed.
///   - transposeB: use `b` transposed.
///   - pool: the threads to use (default ``ThreadPool/shared``; `nil` for one thread); the
///     result is the same, bit for bit, for any pool.
/// - Returns: `[M, N]`.
///
/// ```swift
/// let y = matmul(x, w, transposeB: true)   // x [batch, in], w [out, in] -> [batch, out]
/// ```
public func matmul(
    _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false,
    pool: ThreadPool? = .shared
) -> Tensor {
    precondition(
        a.rank == 2 && b.rank == 2, "matmul: needs 2-D tensors, got shapes \(a.shape) and \(b.shape)")
    let m = transposeA ? a.shape[1] : a.shape[0]
    let k = transposeA ? a.shape[0] : a.shape[1]
    let kb = transposeB ? b.shape[1] : b.shape[0]
    let n = transposeB ? b.shape[0] : b.shape[1]
    precondition(
        k == kb,
        "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") x \(b.shape)\(transposeB ? "ᵀ" : "")")
    let lda = max(1, a.shape[1]), ldb = max(1, b.shape[1])  // stored row lengths
    return Tensor(uninitializedShape: [m, n]) { c in
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                sgemm(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                    a: a.baseAddress, lda: lda,
                    b: b.baseAddress, ldb: ldb,
                    beta: 0, c: c.baseAddress, ldc: max(1, n), pool: pool)
            }
        }
    }
}

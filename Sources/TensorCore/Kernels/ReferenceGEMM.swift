// The plain reference that the tuned GEMM (GEMM.swift) is tested against.

/// The textbook triple loop for `C = alpha * op(A) * op(B) + beta * C`, accumulating in
/// Double; slow, obviously right, and the reference for ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:pool:)``.
///
/// Same arguments and layout as `sgemm` (row-major, see there). When `beta == 0`, `C` is
/// not read, so it may hold NaN or garbage.
public func referenceGEMM(
    transposeA: Bool, transposeB: Bool,
    m: Int, n: Int, k: Int,
    alpha: Float,
    a: UnsafePointer<Float>?, lda: Int,
    b: UnsafePointer<Float>?, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>?, ldc: Int
) {
    guard m > 0, n > 0, let c else { return }
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                // op(A)[i, p] and op(B)[p, j]
                let x = transposeA ? a![p * lda + i] : a![i * lda + p]
                let y = transposeB ? b![j * ldb + p] : b![p * ldb + j]
                sum += Double(x) * Double(y)
            }
            let scaled = Double(alpha) * sum
            c[i * ldc + j] = Float(beta == 0 ? scaled : scaled + Double(beta) * Double(c[i * ldc + j]))
        }
    }
}

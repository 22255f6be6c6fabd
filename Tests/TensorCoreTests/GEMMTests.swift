import Testing
import TensorCore

/// One sgemm shape with its transposes and micro-kernel.
struct GEMMCase: Sendable, CustomTestStringConvertible {
    let m: Int, n: Int, k: Int
    let transposeA: Bool, transposeB: Bool
    let kernel: GEMMKernel

    var testDescription: String {
        "m=\(m) n=\(n) k=\(k)\(transposeA ? " Aᵀ" : "")\(transposeB ? " Bᵀ" : "") kernel \(kernel)"
    }

    /// Awkward sizes: empty, single, around the 16-wide vector, around the tile and block
    /// sizes (MR 4/6/8, NR 16/24/32, MC 64/72/128, KC 192/256/320, NC 768), and a long side.
    static let sizes: [(Int, Int, Int)] = [
        (0, 5, 7), (5, 0, 7), (5, 7, 0), (1, 1, 1), (1, 17, 33), (15, 16, 17), (16, 16, 16),
        (17, 15, 33), (33, 33, 33), (1003, 17, 15), (15, 1003, 33), (17, 33, 1003),
        (150, 40, 30), (100, 37, 513), (7, 3100, 9),
    ]

    static let all: [GEMMCase] = sizes.flatMap { size in
        [false, true].flatMap { ta in
            [false, true].flatMap { tb in
                [GEMMKernel.rows4x24, .rows6x16, .rows8x32].map { kernel in
                    GEMMCase(m: size.0, n: size.1, k: size.2, transposeA: ta, transposeB: tb, kernel: kernel)
                }
            }
        }
    }
}

/// Stored operands for a case, with leading dimensions wider than the rows they hold.
struct GEMMOperands {
    let a: [Float], lda: Int
    let b: [Float], ldb: Int
    let c: [Float], ldc: Int

    init(_ t: GEMMCase, seed: UInt64, padding: Int = 3) {
        var rng = Xoshiro256(seed: seed)
        // Stored shapes: A is [m, k] or [k, m] when transposed; B is [k, n] or [n, k].
        let aRows = t.transposeA ? t.k : t.m, aCols = t.transposeA ? t.m : t.k
        let bRows = t.transposeB ? t.n : t.k, bCols = t.transposeB ? t.k : t.n
        lda = aCols + padding
        ldb = bCols + padding
        ldc = t.n + padding
        a = (0..<(aRows * lda)).map { _ in rng.nextStandardNormal() }
        b = (0..<(bRows * ldb)).map { _ in rng.nextStandardNormal() }
        c = (0..<(t.m * ldc)).map { _ in rng.nextStandardNormal() }
    }
}

/// A forward error bound for a length-k dot product in Float: ~k ulps of sum |a||b|.
func gemmTolerance(_ t: GEMMCase, _ ops: GEMMOperands, i: Int, j: Int, alpha: Float, beta: Float) -> Double {
    var magnitude = 0.0
    for p in 0..<t.k {
        let x = t.transposeA ? ops.a[p * ops.lda + i] : ops.a[i * ops.lda + p]
        let y = t.transposeB ? ops.b[j * ops.ldb + p] : ops.b[p * ops.ldb + j]
        magnitude += abs(Double(x) * Double(y))
    }
    let scale = abs(Double(alpha)) * magnitude + abs(Double(beta) * Double(ops.c[i * ops.ldc + j]))
    return 1e-7 * Double(t.k + 4) * scale + 1e-30
}

@Test("sgemm matches the reference", arguments: GEMMCase.all)
func sgemmMatchesReference(_ t: GEMMCase) {
    let ops = GEMMOperands(t, seed: UInt64(t.m * 1_000_003 + t.n * 1009 + t.k))
    for (alpha, beta) in [(Float(1), Float(0)), (0.5, -1.5), (-2, 1)] {
        expectMatchesReference(t, ops, alpha: alpha, beta: beta)
    }
}

/// Runs `sgemm` with the case's kernel and the reference on the same operands: every element
/// within ``gemmTolerance``, the padding columns of C untouched.
func expectMatchesReference(_ t: GEMMCase, _ ops: GEMMOperands, alpha: Float, beta: Float) {
    var expected = ops.c
    var actual = ops.c
    expected.withUnsafeMutableBufferPointer { c in
        referenceGEMM(
            transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k,
            alpha: alpha, a: ops.a, lda: ops.lda, b: ops.b, ldb: ops.ldb,
            beta: beta, c: c.baseAddress, ldc: ops.ldc)
    }
    actual.withUnsafeMutableBufferPointer { c in
        sgemm(
            transposeA: t.transposeA, transposeB: t.transposeB, m: t.m, n: t.n, k: t.k,
            alpha: alpha, a: ops.a, lda: ops.lda, b: ops.b, ldb: ops.ldb,
            beta: beta, c: c.baseAddress, ldc: ops.ldc, pool: nil, kernel: t.kernel)
    }
    var worst = 0.0
    for i in 0..<t.m {
        for j in 0..<ops.ldc {
            let index = i * ops.ldc + j
            if j >= t.n {
                // Padding columns beyond n must be untouched.
                #expect(actual[index] == ops.c[index])
                continue
            }
            let error = abs(Double(actual[index]) - Double(expected[index]))
            worst = max(worst, error / gemmTolerance(t, ops, i: i, j: j, alpha: alpha, beta: beta))
        }
    }
    #expect(worst <= 1, "\(t.testDescription) alpha \(alpha) beta \(beta): error \(worst) x tolerance")
}

@Test("beta = 0 does not read C (NaN in C is overwritten)", arguments: [GEMMKernel.rows4x24, .rows6x16, .rows8x32])
func betaZeroIgnoresC(kernel: GEMMKernel) {
    let t = GEMMCase(m: 19, n: 37, k: 21, transposeA: false, transposeB: false, kernel: kernel)
    let ops = GEMMOperands(t, seed: 5, padding: 0)
    var c = [Float](repeating: .nan, count: t.m * t.n)
    c.withUnsafeMutableBufferPointer { c in
        sgemm(
            transposeA: false, transposeB: false, m: t.m, n: t.n, k: t.k, alpha: 1,
            a: ops.a, lda: ops.lda, b: ops.b, ldb: ops.ldb, beta: 0, c: c.baseAddress, ldc: t.n,
            pool: nil, kernel: kernel)
    }
    #expect(c.allSatisfy { $0.isFinite })
    // k = 0 and alpha = 0 also write beta * C, i.e. zeros here.
    var d = [Float](repeating: .nan, count: 6)
    d.withUnsafeMutableBufferPointer { d in
        sgemm(
            transposeA: false, transposeB: false, m: 2, n: 3, k: 0, alpha: 1, a: nil, lda: 1,
            b: nil, ldb: 3, beta: 0, c: d.baseAddress, ldc: 3, pool: nil, kernel: kernel)
    }
    #expect(d == [Float](repeating: 0, count: 6))
}

/// Shapes that the pool splits along N (wide C) and along M (tall, narrow C).
@Test(
    "sgemm gives the same bits on 1, 2 and 3 threads",
    arguments: [(97, 301, 257), (301, 20, 65), (64, 700, 300)], [GEMMKernel.rows4x24, .rows6x16, .rows8x32])
func sgemmIsDeterministicAcrossThreadCounts(size: (Int, Int, Int), kernel: GEMMKernel) {
    for (ta, tb) in [(false, false), (true, true)] {
        let t = GEMMCase(m: size.0, n: size.1, k: size.2, transposeA: ta, transposeB: tb, kernel: kernel)
        let ops = GEMMOperands(t, seed: 11)
        var results: [[Float]] = []
        for pool in [nil, ThreadPool(threadCount: 1), ThreadPool(threadCount: 2), ThreadPool(threadCount: 3)] {
            var c = ops.c
            c.withUnsafeMutableBufferPointer { c in
                sgemm(
                    transposeA: ta, transposeB: tb, m: t.m, n: t.n, k: t.k, alpha: 0.75,
                    a: ops.a, lda: ops.lda, b: ops.b, ldb: ops.ldb, beta: 0.25,
                    c: c.baseAddress, ldc: ops.ldc, pool: pool, kernel: kernel)
            }
            results.append(c)
        }
        for result in results.dropFirst() {
            #expect(result.map(\.bitPattern) == results[0].map(\.bitPattern))
        }
    }
}

@Test func tensorMatmulMatchesReference() {
    var rng = Xoshiro256(seed: 3)
    let a = Tensor(randomNormal: [23, 41], using: &rng)
    let b = Tensor(randomNormal: [41, 19], using: &rng)
    let c = matmul(a, b)
    #expect(c.shape == [23, 19])
    for i in 0..<23 {
        for j in 0..<19 {
            var sum = 0.0
            for p in 0..<41 { sum += Double(a[i, p]) * Double(b[p, j]) }
            #expect(abs(Double(c[i, j]) - sum) <= 1e-4 * (1 + abs(sum)))
        }
    }
    // Transposed operands through the same entry point.
    let ct = matmul(a.transposed(), b.transposed(), transposeA: true, transposeB: true)
    #expect(ct == c)
}

@Test func tensorMatmulWithEmptyDimensions() {
    #expect(matmul(Tensor(zeros: [0, 5]), Tensor(ones: [5, 3])).shape == [0, 3])
    #expect(matmul(Tensor(ones: [2, 5]), Tensor(ones: [5, 0])).shape == [2, 0])
    // K = 0: the empty sum, zeros.
    #expect(matmul(Tensor(ones: [2, 0]), Tensor(ones: [0, 3])) == Tensor(zeros: [2, 3]))
}

/// A row source over a stored matrix, to check the implicit-A path against the stored one.
struct StoredRows: GEMMRowSource {
    let values: [Float]
    let columns: Int
    func copy(row: Int, column: Int, count: Int, into destination: UnsafeMutablePointer<Float>) {
        for i in 0..<count { destination[i] = values[row * columns + column + i] }
    }
}

@Test(arguments: [(1, 1, 1), (15, 17, 33), (64, 48, 300), (1003, 24, 17), (7, 100, 513)])
func rowSourceGEMMMatchesStoredGEMM(_ size: (Int, Int, Int)) {
    let (m, n, k) = size
    var rng = Xoshiro256(seed: UInt64(m * 31 + n * 7 + k))
    let a = (0..<(m * k)).map { _ in rng.nextStandardNormal() }
    let b = (0..<(k * n)).map { _ in rng.nextStandardNormal() }
    var stored = [Float](repeating: 0, count: m * n), implicit = stored
    for pool in [nil, ThreadPool(threadCount: 2)] as [ThreadPool?] {
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            stored.withUnsafeMutableBufferPointer { cp in
                sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1.5, a: ap.baseAddress, lda: k,
                      b: bp.baseAddress, ldb: n, beta: 0, c: cp.baseAddress, ldc: n, pool: pool)
            }
            implicit.withUnsafeMutableBufferPointer { cp in
                sgemm(m: m, n: n, k: k, alpha: 1.5, rows: StoredRows(values: a, columns: k), b: bp.baseAddress, ldb: n,
                      beta: 0, c: cp.baseAddress, ldc: n, pool: pool)
            }
        } }
        #expect(stored == implicit, "\(m)x\(n)x\(k)")
    }
}

/// Few-row products take the unpacked path (SmallRowsGEMM.swift) when the kernel is
/// automatic: every transpose, scaling, width around its 4- and 32-column blocks, and the
/// row counts on both sides of its limits (2 with B, 16 with Bᵀ).
@Test(
    "few-row sgemm (automatic kernel) matches the reference",
    arguments: [(1, 1, 1), (1, 37, 19), (2, 33, 8), (2, 1000, 1280), (3, 65, 9), (5, 7, 70), (16, 131, 40), (17, 5, 3)])
func smallRowsMatchReference(size: (Int, Int, Int)) {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let t = GEMMCase(m: size.0, n: size.1, k: size.2, transposeA: ta, transposeB: tb, kernel: .automatic)
        let ops = GEMMOperands(t, seed: UInt64(size.0 * 7 + size.1 * 13 + size.2))
        for (alpha, beta) in [(Float(1), Float(0)), (0.5, -1.5)] {
            expectMatchesReference(t, ops, alpha: alpha, beta: beta)
        }
    }
}

@Test("few-row sgemm gives the same bits on 1, 2 and 3 threads, and NaN in C is ignored with beta = 0")
func smallRowsDeterministic() {
    for (m, n, k, tb) in [(1, 1003, 700, true), (16, 301, 257, true), (2, 2049, 300, false)] {
        let t = GEMMCase(m: m, n: n, k: k, transposeA: false, transposeB: tb, kernel: .automatic)
        let ops = GEMMOperands(t, seed: 17)
        var results: [[Float]] = []
        for pool in [nil, ThreadPool(threadCount: 1), ThreadPool(threadCount: 2), ThreadPool(threadCount: 3)] {
            var c = ops.c
            c.withUnsafeMutableBufferPointer { c in
                sgemm(
                    transposeA: false, transposeB: tb, m: m, n: n, k: k, alpha: 0.75, a: ops.a, lda: ops.lda,
                    b: ops.b, ldb: ops.ldb, beta: 0.25, c: c.baseAddress, ldc: ops.ldc, pool: pool)
            }
            results.append(c)
        }
        for result in results.dropFirst() {
            #expect(result.map(\.bitPattern) == results[0].map(\.bitPattern), "\(t.testDescription)")
        }
        var c = [Float](repeating: .nan, count: m * ops.ldc)
        c.withUnsafeMutableBufferPointer { c in
            sgemm(
                transposeA: false, transposeB: tb, m: m, n: n, k: k, alpha: 1, a: ops.a, lda: ops.lda,
                b: ops.b, ldb: ops.ldb, beta: 0, c: c.baseAddress, ldc: ops.ldc, pool: nil)
        }
        #expect((0..<m).allSatisfy { i in (0..<n).allSatisfy { c[i * ops.ldc + $0].isFinite } })
    }
}

import Anomaly
import TensorCore
import Testing

@Suite("Position Gaussian")
struct GaussianStatisticsTests {
    /// sqrt((x - mu)^T (C + eps I)^-1 (x - mu)) by Gauss-Jordan elimination in Double, with
    /// C the sample covariance (divided by N - 1, or 1 for a single sample).
    static func direct(train: [[Double]], x: [Double], eps: Double) -> Double {
        let n = train.count, d = x.count
        let mu = (0..<d).map { j in train.reduce(0) { $0 + $1[j] } / Double(n) }
        var a = [[Double]](repeating: [Double](repeating: 0, count: 2 * d), count: d)
        for i in 0..<d {
            for j in 0..<d {
                a[i][j] = train.reduce(0) { $0 + ($1[i] - mu[i]) * ($1[j] - mu[j]) } / Double(max(n - 1, 1))
            }
            a[i][i] += eps
            a[i][d + i] = 1
        }
        for c in 0..<d {
            let pivot = (c..<d).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, pivot)
            let p = a[c][c]
            for j in 0..<(2 * d) { a[c][j] /= p }
            for r in 0..<d where r != c {
                let f = a[r][c]
                for j in 0..<(2 * d) { a[r][j] -= f * a[c][j] }
            }
        }
        var q = 0.0
        for i in 0..<d { for j in 0..<d { q += (x[i] - mu[i]) * a[i][d + j] * (x[j] - mu[j]) } }
        return q.squareRoot()
    }

    @Test("matches a direct computation", arguments: [(1, 1, 3), (5, 1, 3), (12, 4, 2), (6, 9, 5), (30, 17, 3), (40, 40, 2)])
    func matchesDirect(images: Int, dimension: Int, positions: Int) {
        var rng = Xoshiro256(seed: UInt64(images * 100 + dimension))
        // Correlated features: a random mixing of independent normals, plus an offset.
        let mixing = Tensor(randomNormal: [dimension, dimension], using: &rng).scalars
        func sample() -> [Float] {
            let z = (0..<dimension).map { _ in rng.nextStandardNormal() }
            return (0..<dimension).map { i in 3 + (0..<dimension).reduce(0) { $0 + mixing[i * dimension + $1] * z[$1] } }
        }
        let train = (0..<images).map { _ in (0..<positions).map { _ in sample() } }  // [N][P][D]
        let tensors = train.map { Tensor($0.flatMap { $0 }, shape: [positions, dimension]) }
        let test = (0..<positions).map { _ in sample().map { $0 * 1.5 } }
        for eps: Float in [0.01, 1] {
            let model = PositionGaussian(features: tensors, regularization: eps)
            #expect(model.positions == positions && model.dimension == dimension)
            let got = model.mahalanobis(Tensor(test.flatMap { $0 }, shape: [positions, dimension]))
            for p in 0..<positions {
                let want = Self.direct(
                    train: train.map { $0[p].map(Double.init) }, x: test[p].map(Double.init), eps: Double(eps))
                #expect(abs(Double(got[p]) - want) <= 2e-3 * max(1, want), "position \(p): \(got[p]) vs \(want)")
            }
        }
    }

    @Test("a training vector scores lower than an outlier")
    func trainingVsOutlier() {
        var rng = Xoshiro256(seed: 77)
        let tensors = (0..<50).map { _ in Tensor(randomNormal: [16, 8], using: &rng) }
        let model = PositionGaussian(features: tensors)
        let inlier = model.mahalanobis(tensors[3])
        var outlierValues = tensors[3].scalars
        for i in 0..<outlierValues.count { outlierValues[i] += 4 }
        let outlier = model.mahalanobis(Tensor(outlierValues, shape: [16, 8]))
        for p in 0..<16 {
            #expect(inlier[p] < 6)  // ~sqrt(D) for a member
            // The shift alone is ~4 sqrt(8) = 11 standard deviations away.
            #expect(outlier[p] > inlier[p] + 3)
        }
        // A single training image: covariance = eps I, so distance = |x - mu| / sqrt(eps).
        let single = PositionGaussian(features: [tensors[0]], regularization: 0.25)
        let d = single.mahalanobis(Tensor(tensors[0].scalars.map { $0 + 1 }, shape: [16, 8]))
        #expect(d.allSatisfy { abs($0 - Float(8).squareRoot() / 0.5) < 1e-4 })
    }

    @Test("results do not depend on the thread count")
    func threads() {
        var rng = Xoshiro256(seed: 4)
        let tensors = (0..<20).map { _ in Tensor(randomNormal: [50, 24], using: &rng) }
        let a = PositionGaussian(features: tensors, pool: nil)
        let b = PositionGaussian(features: tensors, pool: ThreadPool(threadCount: 3))
        let x = Tensor(randomNormal: [50, 24], using: &rng)
        #expect(a.mahalanobis(x, pool: nil) == b.mahalanobis(x, pool: ThreadPool(threadCount: 2)))
    }
}

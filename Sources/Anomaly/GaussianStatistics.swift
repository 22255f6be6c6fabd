// Per-position Gaussian statistics (PaDiM-style) for well-aligned parts: every feature-map
// position gets its own mean and covariance over the training images, and a test feature
// is scored by its Mahalanobis distance to the Gaussian of its position.
import TensorCore

/// A multivariate Gaussian per feature-map position, scored by Mahalanobis distance.
///
/// Fitting accumulates in Double: mean, then the covariance of the centred features
/// (divided by `N - 1`, or by 1 for a single image) plus `regularization * I`. The
/// covariance is factored as `L L^T` (Cholesky) and `L^-1` is stored, packed lower
/// triangular in Float: `(x - mu)^T Sigma^-1 (x - mu) = |L^-1 (x - mu)|^2`, which needs half
/// the memory of `Sigma^-1` and the same work.
///
/// Memory: `P * (D + D (D + 1) / 2)` floats, e.g. 784 positions x 200 dims = 63 MB.
///
/// ```swift
/// let model = PositionGaussian(features: trainMaps)   // each [H*W, D]
/// let map = model.mahalanobis(testMap)                // H*W distances
/// ```
public struct PositionGaussian: Sendable {
    /// The number of positions (`H * W`).
    public let positions: Int
    /// The feature length (`D`).
    public let dimension: Int
    /// Per-position means. // [P, D]
    let means: [Float]
    /// Per-position `L^-1`, rows of the lower triangle packed one after another
    /// (row i holds columns `0...i`). // [P, D (D + 1) / 2]
    let inverseFactors: [Float]

    /// Fits one Gaussian per position.
    ///
    /// - Parameters:
    ///   - features: one tensor per training image, each `[H*W, D]` with the same shape.
    ///   - regularization: added to the covariance diagonal (`> 0`), which keeps it
    ///     positive definite when there are fewer images than dimensions. PaDiM uses 0.01.
    ///   - pool: the threads to use (split over positions); `nil` for the calling thread.
    public init(features: [Tensor], regularization: Float = 0.01, pool: ThreadPool? = .shared) {
        precondition(!features.isEmpty, "PositionGaussian: needs at least one training image")
        let shape = features[0].shape
        precondition(shape.count == 2, "PositionGaussian: features must be [H*W, D], got shape \(shape)")
        for (i, f) in features.enumerated() {
            precondition(f.shape == shape, "PositionGaussian: image \(i) has shape \(f.shape), image 0 has \(shape)")
        }
        precondition(regularization > 0, "PositionGaussian: regularization must be > 0, got \(regularization)")
        let p = shape[0], d = shape[1], n = features.count
        let packed = d * (d + 1) / 2
        positions = p
        dimension = d
        var means = [Float](repeating: 0, count: p * d)
        var factors = [Float](repeating: 0, count: p * packed)
        means.withUnsafeMutableBufferPointer { meansOut in
            factors.withUnsafeMutableBufferPointer { factorsOut in
                let fit = PositionFit(
                    features: features, dimension: d, regularization: Double(regularization),
                    means: UnsafeSharedPointer(meansOut.baseAddress!), factors: UnsafeSharedPointer(factorsOut.baseAddress!))
                if let pool, n * d * d * p >= 1 << 18 {
                    pool.parallelRanges(p) { fit.run(positions: $0) }
                } else {
                    fit.run(positions: 0..<p)
                }
            }
        }
        self.means = means
        inverseFactors = factors
    }

    /// Rebuilds fitted Gaussians from the arrays ``means`` and ``inverseFactors`` of an
    /// earlier fit (e.g. read from a model file); nil when their lengths do not fit
    /// `positions` and `dimension` or a value is not finite.
    ///
    /// - Parameters:
    ///   - positions: `P`, at least 1.
    ///   - dimension: `D`, at least 1.
    ///   - means: `[P, D]`, row-major.
    ///   - inverseFactors: `[P, D (D + 1) / 2]`, each position's `L^-1` packed by rows.
    public init?(positions: Int, dimension: Int, means: [Float], inverseFactors: [Float]) {
        guard positions > 0, dimension > 0, means.count == positions * dimension,
              inverseFactors.count == positions * (dimension * (dimension + 1) / 2),
              means.allSatisfy(\.isFinite), inverseFactors.allSatisfy(\.isFinite) else { return nil }
        self.positions = positions
        self.dimension = dimension
        self.means = means
        self.inverseFactors = inverseFactors
    }

    /// The per-position means, `[P, D]` row-major (for storing the fit).
    public var meanValues: [Float] { means }

    /// The per-position `L^-1`, `[P, D (D + 1) / 2]`, lower triangles packed by rows (for
    /// storing the fit).
    public var inverseFactorValues: [Float] { inverseFactors }

    /// The Mahalanobis distance of every position's feature to that position's Gaussian:
    /// `sqrt((x - mu)^T Sigma^-1 (x - mu))`.
    ///
    /// - Parameters:
    ///   - features: `[H*W, D]`, the same shape as the training features.
    ///   - pool: the threads to use; `nil` for the calling thread only.
    /// - Returns: `H*W` distances, in position order.
    public func mahalanobis(_ features: Tensor, pool: ThreadPool? = .shared) -> [Float] {
        precondition(
            features.shape == [positions, dimension],
            "PositionGaussian.mahalanobis: features of shape \(features.shape), fitted on [\(positions), \(dimension)]")
        let d = dimension, packed = d * (d + 1) / 2
        var result = [Float](repeating: 0, count: positions)
        features.withUnsafeBufferPointer { x in
            means.withUnsafeBufferPointer { mu in
                inverseFactors.withUnsafeBufferPointer { l in
                    result.withUnsafeMutableBufferPointer { out in
                        let x = UnsafeSharedPointer(readOnly: x.baseAddress!)
                        let mu = UnsafeSharedPointer(readOnly: mu.baseAddress!)
                        let l = UnsafeSharedPointer(readOnly: l.baseAddress!)
                        let out = UnsafeSharedPointer(out.baseAddress!)  // one writer per position
                        let body: @Sendable (Range<Int>) -> Void = { range in
                            let diff = UnsafeMutablePointer<Float>.allocate(capacity: max(d, 1))
                            defer { diff.deallocate() }
                            for position in range {
                                for j in 0..<d { diff[j] = x.pointer[position * d + j] - mu.pointer[position * d + j] }
                                var sum: Float = 0
                                var row = UnsafePointer(l.pointer) + position * packed
                                for i in 0..<d {
                                    let y = dot(row, diff, count: i + 1)
                                    sum += y * y
                                    row += i + 1
                                }
                                out.pointer[position] = sum.squareRoot()
                            }
                        }
                        if let pool, positions * packed >= 1 << 16 {
                            pool.parallelRanges(positions, body)
                        } else {
                            body(0..<positions)
                        }
                    }
                }
            }
        }
        return result
    }
}

/// The fitting work, shared with the pool's workers.
///
/// Disjoint writes: a participant writes only the `means` and `factors` rows of the
/// positions in its range; the training tensors are only read.
private struct PositionFit: Sendable {
    let features: [Tensor]
    let dimension: Int
    let regularization: Double
    let means: UnsafeSharedPointer<Float>    // [P, D], written
    let factors: UnsafeSharedPointer<Float>  // [P, D (D + 1) / 2], written

    func run(positions range: Range<Int>) {
        let n = features.count, d = dimension
        let packed = d * (d + 1) / 2
        // Per participant, reused for every position:
        let centred = UnsafeMutablePointer<Double>.allocate(capacity: max(n * d, 1))  // [N, D]
        let matrix = UnsafeMutablePointer<Double>.allocate(capacity: max(d * d, 1))   // [D, D], lower used
        let inverse = UnsafeMutablePointer<Double>.allocate(capacity: max(d * d, 1))  // [D, D], lower used
        let mean = UnsafeMutablePointer<Double>.allocate(capacity: max(d, 1))         // [D]
        defer {
            centred.deallocate(); matrix.deallocate(); inverse.deallocate(); mean.deallocate()
        }
        for position in range {
            // Gather the position's rows from every image; mean in Double.
            mean.update(repeating: 0, count: d)
            for (image, tensor) in features.enumerated() {
                tensor.withUnsafeBufferPointer { x in
                    let row = x.baseAddress! + position * d
                    for j in 0..<d {
                        centred[image * d + j] = Double(row[j])
                        mean[j] += Double(row[j])
                    }
                }
            }
            for j in 0..<d {
                mean[j] /= Double(n)
                means.pointer[position * d + j] = Float(mean[j])
            }
            for image in 0..<n {
                for j in 0..<d { centred[image * d + j] -= mean[j] }
            }
            // Lower triangle of the centred Gram matrix: rank-1 updates, row i columns 0...i.
            matrix.update(repeating: 0, count: d * d)
            for image in 0..<n {
                let x = centred + image * d
                for i in 0..<d {
                    let xi = x[i]
                    let out = matrix + i * d
                    var j = 0
                    let xiv = SIMD4<Double>(repeating: xi)
                    while j + 4 <= i + 1 {
                        let o = UnsafeMutableRawPointer(out + j)
                        o.storeBytes(
                            of: o.loadUnaligned(as: SIMD4<Double>.self)
                                + xiv * UnsafeRawPointer(x + j).loadUnaligned(as: SIMD4<Double>.self),
                            as: SIMD4<Double>.self)
                        j += 4
                    }
                    // leftovers
                    while j <= i {
                        out[j] += xi * x[j]
                        j += 1
                    }
                }
            }
            let scale = 1 / Double(max(n - 1, 1))
            for i in 0..<d {
                for j in 0...i { matrix[i * d + j] *= scale }
                matrix[i * d + i] += regularization
            }
            choleskyInPlace(matrix, d)
            invertLowerTriangular(matrix, into: inverse, d)
            var o = factors.pointer + position * packed
            for i in 0..<d {
                for j in 0...i { o[j] = Float(inverse[i * d + j]) }
                o += i + 1
            }
        }
    }
}

/// Overwrites the lower triangle of the symmetric positive-definite `[d, d]` matrix `a`
/// (only its lower triangle is read) with its Cholesky factor `L` (`a = L L^T`).
///
/// A pivot that rounding makes non-positive (possible only for a covariance far below the
/// regularisation's scale) is replaced by the smallest positive normal Double's square
/// root, which keeps the factor finite instead of producing NaN.
func choleskyInPlace(_ a: UnsafeMutablePointer<Double>, _ d: Int) {
    for j in 0..<d {
        var pivot = a[j * d + j]
        for k in 0..<j { pivot -= a[j * d + k] * a[j * d + k] }
        let ljj = pivot > 0 ? pivot.squareRoot() : Double.leastNormalMagnitude.squareRoot()
        a[j * d + j] = ljj
        for i in (j + 1)..<max(d, j + 1) {
            var s = a[i * d + j]
            // Rows i and j of L, columns 0..<j: contiguous in row-major storage.
            for k in 0..<j { s -= a[i * d + k] * a[j * d + k] }
            a[i * d + j] = s / ljj
        }
    }
}

/// Writes `L^-1` of a lower-triangular `[d, d]` matrix into the lower triangle of `out`.
///
/// Column by column, by forward substitution `X[i][j] = -(sum_{k=j}^{i-1} L[i][k] X[k][j]) / L[i][i]`;
/// the column being solved is kept contiguous in `column` so that the inner sum reads both
/// operands with unit stride (a strided walk down `out` was several times slower at D = 200).
func invertLowerTriangular(_ l: UnsafePointer<Double>, into out: UnsafeMutablePointer<Double>, _ d: Int) {
    let column = UnsafeMutablePointer<Double>.allocate(capacity: max(d, 1))
    defer { column.deallocate() }
    for j in 0..<d {
        column[j] = 1 / l[j * d + j]
        out[j * d + j] = column[j]
        for i in (j + 1)..<max(d, j + 1) {
            let row = l + i * d
            var s = 0.0
            for k in j..<i { s += row[k] * column[k] }
            column[i] = -s / row[i]
            out[i * d + j] = column[i]
        }
    }
}

// Greedy k-center coreset selection (PatchCore's "approximate greedy coreset").
//
// The memory bank of a PatchCore model holds one feature per patch of every training
// image, far more than the search needs. Greedy k-center keeps a subset such that every
// dropped feature is close to a kept one: it starts from one point and repeatedly adds the
// point farthest from everything kept so far (a 2-approximation of the minimal covering
// radius). Each step costs one distance per point, so the features are first projected
// to a lower dimension with a Gaussian random matrix (Johnson-Lindenstrauss: distances are
// preserved up to a small relative error), which makes the N distance updates per step
// cheaper by D / projectionDimension.
import TensorCore

/// Subset selection for memory banks.
public enum Coreset {
    /// Indices of a greedy k-center coreset of the rows of `features`, in selection order.
    ///
    /// The first index is drawn from `seed`; each next one is the row farthest (squared
    /// Euclidean, in the projected space) from all rows chosen so far; among equally far
    /// rows the lowest index is taken, so the result is deterministic for a seed and does
    /// not depend on the number of threads.
    ///
    /// - Parameters:
    ///   - features: `[N, D]`, one feature vector per row.
    ///   - count: the number of rows to keep; `count >= N` returns `Array(0..<N)`.
    ///   - projectionDimension: project to this many dimensions with a seeded Gaussian
    ///     random matrix (entries `N(0, 1/P)`) before selecting; `nil`, or a value
    ///     `>= D`, selects in the original space.
    ///   - seed: seeds the first point and the projection matrix.
    ///   - pool: the threads for the projection and the distance updates; `nil` for the
    ///     calling thread only.
    /// - Returns: `min(count, N)` distinct row indices in the order they were chosen.
    ///
    /// ```swift
    /// let keep = Coreset.greedyKCenter(patches, count: patches.shape[0] / 10, seed: 0)
    /// ```
    public static func greedyKCenter(
        _ features: Tensor, count: Int, projectionDimension: Int? = 128, seed: UInt64,
        pool: ThreadPool? = .shared
    ) -> [Int] {
        precondition(features.rank == 2, "Coreset.greedyKCenter: features must be [N, D], got shape \(features.shape)")
        precondition(count >= 0, "Coreset.greedyKCenter: count must be >= 0, got \(count)")
        precondition(
            projectionDimension.map { $0 > 0 } ?? true,
            "Coreset.greedyKCenter: projectionDimension must be positive, got \(projectionDimension!)")
        let n = features.shape[0], d = features.shape[1]
        if count >= n { return Array(0..<n) }
        if count == 0 { return [] }

        var rng = Xoshiro256(seed: seed)
        let first = Int(rng.next() % UInt64(n))
        var points = features
        var width = d
        if let p = projectionDimension, p < d {
            let projection = Tensor(
                randomNormal: [d, p], standardDeviation: 1 / Float(p).squareRoot(), using: &rng)
            // [N, D] x [D, P] -> [N, P]
            points = Tensor(uninitializedShape: [n, p]) { out in
                features.withUnsafeBufferPointer { x in
                    projection.withUnsafeBufferPointer { r in
                        sgemm(
                            transposeA: false, transposeB: false, m: n, n: p, k: d, alpha: 1,
                            a: x.baseAddress, lda: d, b: r.baseAddress, ldb: p, beta: 0,
                            c: out.baseAddress, ldc: p, pool: pool)
                    }
                }
            }
            width = p
        }
        return greedy(points, width: width, count: count, first: first, pool: pool)
    }

    /// The greedy loop over (possibly projected) points `[n, width]`.
    private static func greedy(_ points: Tensor, width: Int, count: Int, first: Int, pool: ThreadPool?) -> [Int] {
        let n = points.shape[0]
        let participants = pool.map { min($0.threadCount, n) } ?? 1
        // Squared distance of every point to the nearest selected one; -1 marks selected
        // points so that they are never taken again, even when duplicates leave every
        // remaining distance at 0. // [N]
        var nearest = [Float](repeating: .infinity, count: n)
        // Which selected point (its position in `selected`) is the nearest. // [N]
        var owner = [Int32](repeating: -1, count: n)
        // The selected points' vectors, in selection order. // [count, width]
        var centers = [Float](repeating: 0, count: count * width)
        // Squared distance from the newest center to each earlier one. // [count]
        var centerDistances = [Float](repeating: 0, count: count)
        // The farthest point of each participant's range: (distance, index). // [T]
        var farthest = [(Float, Int)](repeating: (-1, -1), count: participants)
        var selected = [first]
        selected.reserveCapacity(count)
        points.withUnsafeBufferPointer { x in
            nearest.withUnsafeMutableBufferPointer { nearest in
                owner.withUnsafeMutableBufferPointer { owner in
                    centers.withUnsafeMutableBufferPointer { centers in
                        centerDistances.withUnsafeMutableBufferPointer { centerDistances in
                            farthest.withUnsafeMutableBufferPointer { farthest in
                                let step = GreedyStep(
                                    points: UnsafeSharedPointer(readOnly: x.baseAddress!), width: width, count: n,
                                    nearest: UnsafeSharedPointer(nearest.baseAddress!),
                                    owner: UnsafeSharedPointer(owner.baseAddress!),
                                    centerDistances: UnsafeSharedPointer(readOnly: centerDistances.baseAddress!),
                                    farthest: UnsafeSharedPointer(farthest.baseAddress!))
                                var center = first
                                while selected.count < count {
                                    let s = selected.count - 1   // the newest center's position
                                    nearest[center] = -1
                                    let c = x.baseAddress! + center * width
                                    (centers.baseAddress! + s * width).update(from: c, count: width)
                                    for j in 0..<s {
                                        centerDistances[j] = squaredDistance(centers.baseAddress! + j * width, c, count: width)
                                    }
                                    let current = center
                                    if let pool, participants > 1 {
                                        // Same static split as parallelRanges, so participant p owns slot p.
                                        pool.parallelFor(participants) { p in
                                            step.update(
                                                center: current, position: s,
                                                range: ThreadPool.range(of: p, participants: participants, count: n), slot: p)
                                        }
                                    } else {
                                        step.update(center: center, position: s, range: 0..<n, slot: 0)
                                    }
                                    // Ranges are in index order, so strict > keeps the lowest index on ties.
                                    var best = farthest[0]
                                    for p in 1..<participants where farthest[p].0 > best.0 { best = farthest[p] }
                                    center = best.1
                                    selected.append(center)
                                }
                            }
                        }
                    }
                }
            }
        }
        return selected
    }
}

/// One greedy step over a range of points, pruned by the triangle inequality.
///
/// Reading every point's vector each step makes the plain greedy loop memory-bound (for
/// 250 880 patches x 128 dimensions, 128 MB per step, 16 383 steps). But a point `i` whose
/// nearest center `a` is at distance `r` cannot come closer to the new center `c` when
/// `d(a, c) >= 2r`: then `d(i, c) >= d(a, c) - r >= r`. The distances from `c` to the
/// earlier centers are computed once per step (`count x width`, small), and the vector of
/// `i` is read only when `d(a, c)^2 < 4 r^2` (with a margin of 1e-3 for rounding, so that a
/// skipped point could not have been updated in exact arithmetic either). As the coreset
/// grows, `r` shrinks and almost every point is skipped. The selection is the same as
/// without pruning (tested against the reference).
private struct GreedyStep: Sendable {
    let points: UnsafeSharedPointer<Float>           // [N, width]
    let width: Int, count: Int
    let nearest: UnsafeSharedPointer<Float>          // [N], written
    let owner: UnsafeSharedPointer<Int32>            // [N], written
    let centerDistances: UnsafeSharedPointer<Float>  // [selected], read
    let farthest: UnsafeSharedPointer<(Float, Int)>  // [T], written

    func update(center: Int, position: Int, range: Range<Int>, slot: Int) {
        let c = UnsafePointer(points.pointer) + center * width
        let nearest = self.nearest.pointer, owner = self.owner.pointer
        let centerDistances = UnsafePointer(self.centerDistances.pointer)
        var bestDistance: Float = -1, bestIndex = -1
        for i in range {
            var current = nearest[i]
            if current >= 0 {  // selected points stay at -1
                let a = Int(owner[i])
                // Unowned points (first step) are always measured.
                if a < 0 || centerDistances[a] < 4.004 * current {
                    let d = squaredDistance(UnsafePointer(points.pointer) + i * width, c, count: width)
                    if d < current {
                        current = d
                        nearest[i] = d
                        owner[i] = Int32(position)
                    }
                }
                if current > bestDistance {
                    bestDistance = current
                    bestIndex = i
                }
            }
        }
        farthest.pointer[slot] = (bestDistance, bestIndex)
    }
}

extension Coreset {
    /// The plain greedy k-center loop in the original space (no projection, Double
    /// distances, one thread), with the same first point and tie rule as
    /// ``greedyKCenter(_:count:projectionDimension:seed:pool:)``.
    ///
    /// `greedyKCenter(features, count:, projectionDimension: nil, seed:)` equals this up to
    /// Float rounding of near-equal distances.
    ///
    /// - Parameters:
    ///   - features: `[N, D]`.
    ///   - count: rows to keep.
    ///   - seed: seeds the first point exactly as `greedyKCenter` does.
    /// - Returns: `min(count, N)` distinct indices in selection order.
    public static func referenceGreedyKCenter(_ features: Tensor, count: Int, seed: UInt64) -> [Int] {
        let n = features.shape[0], d = features.shape[1]
        if count >= n { return Array(0..<n) }
        if count == 0 { return [] }
        var rng = Xoshiro256(seed: seed)
        let x = features.scalars
        var selected = [Int(rng.next() % UInt64(n))]
        var isSelected = [Bool](repeating: false, count: n)
        var nearest = [Double](repeating: .infinity, count: n)
        while selected.count < count {
            let center = selected.last!
            isSelected[center] = true
            var best = -1
            for i in 0..<n where !isSelected[i] {
                var sum = 0.0
                for j in 0..<d {
                    let diff = Double(x[i * d + j]) - Double(x[center * d + j])
                    sum += diff * diff
                }
                nearest[i] = min(nearest[i], sum)
                if best < 0 || nearest[i] > nearest[best] { best = i }
            }
            selected.append(best)
        }
        return selected
    }
}

// Exact k-nearest-neighbour search against a memory bank of patch features.
//
// The distances come from |q|^2 + |b|^2 - 2 q.b: the q.b products of a block of queries
// against a block of the bank are one sgemm call, so the search runs at GEMM speed
// instead of the memory-bound speed of one distance at a time.
import TensorCore

/// A memory bank of feature vectors searched exactly for the nearest neighbours of queries.
///
/// Layout: `features` is `[B, D]`, one row per bank entry. The squared norm of every row is
/// computed once, here, and reused by every search.
///
/// ```swift
/// let bank = MemoryBank(trainingPatches)                 // [B, D]
/// let (distances, indices) = bank.nearest(testPatches)   // [Q, 1], Q indices
/// let anomaly = distances.scalars.map { $0.squareRoot() }
/// ```
public struct MemoryBank: Sendable {
    /// The bank's vectors. // [B, D]
    public let features: Tensor
    /// Squared Euclidean norm of each bank row, rounded as `dot(row, row)`. // [B]
    let norms: [Float]
    /// The bank again, packed for the k = 1 search: panels of 24 rows, each `[D][24]`
    /// (bank row r, element c at `(r / 24) * D * 24 + c * 24 + r % 24`), the last panel
    /// padded with zero rows. Costs a second copy of the bank; the search then streams
    /// contiguous panels and never re-packs.
    let panels: [Float]
    /// The norms padded to whole panels with +infinity (padding rows are never nearest).
    let paddedNorms: [Float]

    /// The number of vectors in the bank (`B`).
    public var count: Int { features.shape[0] }

    /// The length of each vector (`D`).
    public var dimension: Int { features.shape[1] }

    /// Creates a bank from the rows of a 2-D tensor.
    ///
    /// - Parameter features: `[B, D]`, one feature vector per row.
    public init(_ features: Tensor) {
        precondition(features.rank == 2, "MemoryBank: features must be [B, D], got shape \(features.shape)")
        self.features = features
        let rows = features.shape[0], columns = features.shape[1]
        norms = features.withUnsafeBufferPointer { x in
            (0..<rows).map { row in
                let p = x.baseAddress! + row * columns
                return dot(p, p, count: columns)
            }
        }
        let panelCount = (rows + 23) / 24
        var packed = [Float](repeating: 0, count: panelCount * 24 * columns)
        features.withUnsafeBufferPointer { x in
            for row in 0..<rows {
                let base = (row / 24) * columns * 24 + row % 24
                for c in 0..<columns { packed[base + c * 24] = x[row * columns + c] }
            }
        }
        panels = packed
        paddedNorms = norms + [Float](repeating: .infinity, count: panelCount * 24 - rows)
    }

    /// How the search cuts the work into cache-sized pieces.
    public struct Blocking: Sendable, Equatable {
        /// The largest number of queries per sgemm call (rows of the distance tile); a
        /// thread's queries are cut into equal blocks of at most this many.
        public var queries: Int
        /// Bank rows per sgemm call (columns of the distance tile).
        public var bankRows: Int

        /// Creates a blocking; both sizes must be positive.
        public init(queries: Int, bankRows: Int) {
            precondition(queries > 0 && bankRows > 0, "MemoryBank.Blocking: sizes must be positive, got \(queries) x \(bankRows)")
            self.queries = queries
            self.bankRows = bankRows
        }

        /// Measured with `anomaly-bench --sweep` (784 queries x 16384 x 384 bank, AVX2,
        /// 1 thread, shared machine): query blocks of 256 were fastest (410-425 ms against
        /// 450-610 ms for 32-128), because every query block streams the whole bank from
        /// memory once, so bigger query blocks mean less bank traffic; the bank block
        /// mattered less (256-2048 within 5 %). 256 x 256 keeps the distance tile at
        /// 256 KiB, inside a 512 KiB L2 while it is scanned.
        public static let `default` = Blocking(queries: 256, bankRows: 256)
    }

    /// The `k` nearest bank rows of every query, by squared Euclidean distance.
    ///
    /// Exact search. Ties (equal distances) are broken by the bank index: the lower index
    /// comes first. Distances are computed as `|q|^2 + |b|^2 - 2 q.b` in Float, so they
    /// can differ from a direct `sum((q - b)^2)` by rounding (relative to the norms), and
    /// values that rounding makes slightly negative are returned as 0. The result does not
    /// depend on the number of threads.
    ///
    /// - Parameters:
    ///   - queries: `[Q, D]`, one query per row; `D` must equal ``dimension``.
    ///   - k: the number of neighbours per query, `1...count`.
    ///   - pool: the threads to use (split over queries, one writer per query); `nil` for
    ///     the calling thread only.
    ///   - blocking: the tile sizes; leave at the default except to measure.
    /// - Returns: `distances` `[Q, k]`, squared, ascending along each row, all `>= 0`;
    ///   `indices`, `Q * k` bank row indices in the same order (row-major like distances).
    public func nearest(
        _ queries: Tensor, k: Int = 1, pool: ThreadPool? = .shared, blocking: Blocking = .default
    ) -> (distances: Tensor, indices: [Int32]) {
        precondition(
            queries.rank == 2 && queries.shape[1] == dimension,
            "MemoryBank.nearest: queries of shape \(queries.shape) do not match a bank of shape \(features.shape)")
        precondition(k >= 1 && k <= count, "MemoryBank.nearest: k = \(k) must be in 1...\(count) (the bank size)")
        precondition(count < Int(Int32.max), "MemoryBank.nearest: bank of \(count) rows is too large for Int32 indices")
        let queryCount = queries.shape[0]
        let dimension = self.dimension, bankCount = count
        if k == 1 && blocking == .default { return nearestOne(queries, pool: pool) }
        var indices = [Int32](repeating: -1, count: queryCount * k)
        let distances = Tensor(uninitializedShape: [queryCount, k]) { outDistances in
            indices.withUnsafeMutableBufferPointer { outIndices in
                queries.withUnsafeBufferPointer { q in
                    features.withUnsafeBufferPointer { bank in
                        norms.withUnsafeBufferPointer { norms in
                            let search = BlockedSearch(
                                queries: UnsafeSharedPointer(readOnly: q.baseAddress!),
                                bank: UnsafeSharedPointer(readOnly: bank.baseAddress!),
                                norms: UnsafeSharedPointer(readOnly: norms.baseAddress ?? UnsafePointer(bitPattern: 64)!),
                                distances: UnsafeSharedPointer(outDistances.baseAddress!),
                                indices: UnsafeSharedPointer(outIndices.baseAddress ?? UnsafeMutablePointer(bitPattern: 64)!),
                                dimension: dimension, bankCount: bankCount, k: k, blocking: blocking)
                            // Below ~1 MFLOP the hand-off to the pool costs more than it saves.
                            if let pool, queryCount * bankCount * max(dimension, 1) >= 1 << 19 {
                                pool.parallelRanges(queryCount) { search.run(queries: $0) }
                            } else {
                                search.run(queries: 0..<queryCount)
                            }
                        }
                    }
                }
            }
        }
        return (distances, indices)
    }

    /// The k = 1 search: 4 queries x 24 bank rows of `q.b` in registers over the packed
    /// panels, folded into each query's running minimum before the next panel; no
    /// distance tile is written. Same contract as ``nearest(_:k:pool:blocking:)``.
    func nearestOne(_ queries: Tensor, pool: ThreadPool?) -> (distances: Tensor, indices: [Int32]) {
        let queryCount = queries.shape[0]
        var indices = [Int32](repeating: -1, count: queryCount)
        let distances = Tensor(uninitializedShape: [queryCount, 1]) { outDistances in
            indices.withUnsafeMutableBufferPointer { outIndices in
                queries.withUnsafeBufferPointer { q in
                    panels.withUnsafeBufferPointer { panels in
                        paddedNorms.withUnsafeBufferPointer { norms in
                            let search = PanelSearch(
                                queries: UnsafeSharedPointer(readOnly: q.baseAddress!),
                                panels: UnsafeSharedPointer(readOnly: panels.baseAddress!),
                                norms: UnsafeSharedPointer(readOnly: norms.baseAddress!),
                                distances: UnsafeSharedPointer(outDistances.baseAddress!),
                                indices: UnsafeSharedPointer(outIndices.baseAddress!),
                                dimension: dimension, queryCount: queryCount, panelCount: norms.count / 24)
                            let tiles = (queryCount + 3) / 4
                            if let pool, queryCount * count * max(dimension, 1) >= 1 << 19 {
                                pool.parallelRanges(tiles) { search.run(tiles: $0) }
                            } else {
                                search.run(tiles: 0..<tiles)
                            }
                        }
                    }
                }
            }
        }
        return (distances, indices)
    }

    /// The plain brute-force search that ``nearest(_:k:pool:blocking:)`` is tested against.
    ///
    /// Distances are `sum((q - b)^2)` accumulated in Double, one pair at a time; the `k`
    /// smallest are kept with the same tie rule (lower bank index first).
    ///
    /// - Parameters:
    ///   - queries: `[Q, D]`.
    ///   - k: neighbours per query, `1...count`.
    /// - Returns: `distances` `[Q, k]` ascending and `indices` (`Q * k`), as `nearest`.
    public func referenceNearest(_ queries: Tensor, k: Int = 1) -> (distances: Tensor, indices: [Int32]) {
        precondition(
            queries.rank == 2 && queries.shape[1] == dimension,
            "MemoryBank.referenceNearest: queries of shape \(queries.shape) do not match a bank of shape \(features.shape)")
        precondition(k >= 1 && k <= count, "MemoryBank.referenceNearest: k = \(k) must be in 1...\(count)")
        let queryCount = queries.shape[0], d = dimension
        let q = queries.scalars, b = features.scalars
        var distances = [Float](), indices = [Int32]()
        for i in 0..<queryCount {
            var all: [(distance: Double, index: Int)] = []
            for j in 0..<count {
                var sum = 0.0
                for c in 0..<d {
                    let diff = Double(q[i * d + c]) - Double(b[j * d + c])
                    sum += diff * diff
                }
                all.append((sum, j))
            }
            all.sort { ($0.distance, $0.index) < ($1.distance, $1.index) }
            for entry in all.prefix(k) {
                distances.append(Float(entry.distance))
                indices.append(Int32(entry.index))
            }
        }
        return (Tensor(distances, shape: [queryCount, k]), indices)
    }
}

/// One search's buffers, shared with the pool's workers.
///
/// Disjoint writes: a participant writes only the `distances` / `indices` rows of the
/// queries in the range it was given; everything else is only read.
private struct BlockedSearch: Sendable {
    let queries: UnsafeSharedPointer<Float>    // [Q, D]
    let bank: UnsafeSharedPointer<Float>       // [B, D]
    let norms: UnsafeSharedPointer<Float>      // [B]
    let distances: UnsafeSharedPointer<Float>  // [Q, k], written
    let indices: UnsafeSharedPointer<Int32>    // [Q, k], written
    let dimension: Int, bankCount: Int, k: Int
    let blocking: MemoryBank.Blocking

    /// Searches the whole bank for the queries in `range`.
    func run(queries range: Range<Int>) {
        guard !range.isEmpty else { return }
        let d = dimension, k = self.k
        // Equal query blocks: every block streams the whole bank once, so a thin last block
        // (784 = 256 + 256 + 256 + 16) would cost a full bank pass for a few queries.
        let blockCount = (range.count + blocking.queries - 1) / blocking.queries
        let blockRows = (range.count + blockCount - 1) / blockCount
        let blockColumns = min(blocking.bankRows, bankCount)
        // The -2 q.b tile of one query block against one bank block. // [blockRows, blockColumns]
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * blockColumns)
        defer { tile.deallocate() }
        var queryNorms = [Float](repeating: 0, count: blockRows)
        let norms = UnsafePointer(self.norms.pointer)
        let bank = UnsafePointer(self.bank.pointer)
        queryNorms.withUnsafeMutableBufferPointer { queryNorms in
            for q0 in stride(from: range.lowerBound, to: range.upperBound, by: blockRows) {
                let rows = min(blockRows, range.upperBound - q0)
                let q = UnsafePointer(queries.pointer) + q0 * d
                for i in 0..<rows {
                    queryNorms[i] = dot(q + i * d, q + i * d, count: d)
                }
                // Each query's running top-k lives directly in its output row.
                (distances.pointer + q0 * k).update(repeating: .infinity, count: rows * k)
                (indices.pointer + q0 * k).update(repeating: -1, count: rows * k)
                // Bank blocks in ascending order, columns in ascending order within a block:
                // a candidate is only inserted when strictly closer, so among equal
                // distances the first (lowest) bank index is kept.
                for b0 in stride(from: 0, to: bankCount, by: blockColumns) {
                    let columns = min(blockColumns, bankCount - b0)
                    sgemm(
                        transposeA: false, transposeB: true, m: rows, n: columns, k: d,
                        alpha: -2, a: q, lda: max(d, 1), b: bank + b0 * d, ldb: max(d, 1),
                        beta: 0, c: tile, ldc: columns, pool: nil)
                    for i in 0..<rows {
                        scanRow(
                            tile + i * columns, count: columns, queryNorm: queryNorms[i],
                            bankNorms: norms + b0, firstIndex: b0,
                            topDistances: distances.pointer + (q0 + i) * k,
                            topIndices: indices.pointer + (q0 + i) * k)
                    }
                }
            }
        }
    }

    /// Folds one row of the -2 q.b tile into a query's sorted top-k list.
    ///
    /// The vector loop only finds candidates below the current k-th distance; those are
    /// rare after the first block (about `k log B` insertions in all for random order), so
    /// the scalar insertion runs seldom and the loop is bound by its loads.
    @inline(__always)
    private func scanRow(
        _ row: UnsafePointer<Float>, count: Int, queryNorm: Float, bankNorms: UnsafePointer<Float>,
        firstIndex: Int, topDistances: UnsafeMutablePointer<Float>, topIndices: UnsafeMutablePointer<Int32>
    ) {
        let k = self.k
        var worst = topDistances[k - 1]
        let qn = SIMD16<Float>(repeating: queryNorm)
        let zero = SIMD16<Float>()
        var j = 0
        while j + 16 <= count {
            var d = qn + UnsafeRawPointer(bankNorms + j).loadUnaligned(as: SIMD16<Float>.self)
                + UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
            // Compare-and-blend: SIMD `pointwiseMax` lowers to a scalar loop per lane.
            d = d.replacing(with: zero, where: d .< zero)
            // A horizontal min, not `any(d .< splat(worst))`: that mask was built lane by
            // lane through the stack (perf: 40 % of the search time in store forwarding).
            if d.min() < worst {
                for lane in 0..<16 where d[lane] < worst {
                    insert(d[lane], index: firstIndex + j + lane, k: k, topDistances, topIndices)
                    worst = topDistances[k - 1]
                }
            }
            j += 16
        }
        // leftovers
        while j < count {
            let d = max(queryNorm + bankNorms[j] + row[j], 0)
            if d < worst {
                insert(d, index: firstIndex + j, k: k, topDistances, topIndices)
                worst = topDistances[k - 1]
            }
            j += 1
        }
    }

    /// Inserts a candidate closer than the current k-th into the sorted list, after every
    /// entry with an equal distance (those have lower indices: they were seen first).
    @inline(__always)
    private func insert(
        _ distance: Float, index: Int, k: Int,
        _ topDistances: UnsafeMutablePointer<Float>, _ topIndices: UnsafeMutablePointer<Int32>
    ) {
        var position = k - 1
        while position > 0 && topDistances[position - 1] > distance {
            topDistances[position] = topDistances[position - 1]
            topIndices[position] = topIndices[position - 1]
            position -= 1
        }
        topDistances[position] = distance
        topIndices[position] = Int32(index)
    }
}

/// The k = 1 search over packed panels, shared with the pool's workers; a participant
/// writes only the results of the query tiles it was given.
private struct PanelSearch: Sendable {
    let queries: UnsafeSharedPointer<Float>    // [Q, D]
    let panels: UnsafeSharedPointer<Float>     // [P][D][24]
    let norms: UnsafeSharedPointer<Float>      // [P * 24], +inf past the bank
    let distances: UnsafeSharedPointer<Float>  // [Q], written
    let indices: UnsafeSharedPointer<Int32>    // [Q], written
    let dimension: Int, queryCount: Int, panelCount: Int

    /// Bank panels per block: 8 x 24 rows x D floats (295 KiB at D = 384) stay in L2 while
    /// every query tile of the range passes over them.
    static let panelsPerBlock = 8

    func run(tiles: Range<Int>) {
        let d = dimension
        let q = UnsafePointer(queries.pointer)
        let firstQuery = tiles.lowerBound * 4, lastQuery = min(tiles.upperBound * 4, queryCount)
        var queryNorms = [Float](repeating: 0, count: lastQuery - firstQuery)
        for i in firstQuery..<lastQuery {
            queryNorms[i - firstQuery] = dot(q + i * d, q + i * d, count: d)
            distances.pointer[i] = .infinity
            indices.pointer[i] = -1
        }
        // Bank blocks, panels and lanes in ascending order, and a candidate replaces the
        // best only when strictly closer: among equal distances the lowest index stays.
        queryNorms.withUnsafeBufferPointer { queryNorms in
            for block in stride(from: 0, to: panelCount, by: PanelSearch.panelsPerBlock) {
                let blockEnd = min(block + PanelSearch.panelsPerBlock, panelCount)
                for tile in tiles {
                    let q0 = tile * 4
                    let rows = min(4, queryCount - q0)
                    // Missing queries of the last tile repeat the last one; not stored.
                    let a0 = q + q0 * d, a1 = q + min(q0 + 1, queryCount - 1) * d
                    let a2 = q + min(q0 + 2, queryCount - 1) * d, a3 = q + min(q0 + 3, queryCount - 1) * d
                    var best = (distances.pointer[q0], distances.pointer[q0 + min(1, rows - 1)],
                                distances.pointer[q0 + min(2, rows - 1)], distances.pointer[q0 + min(3, rows - 1)])
                    var index = (indices.pointer[q0], indices.pointer[q0 + min(1, rows - 1)],
                                 indices.pointer[q0 + min(2, rows - 1)], indices.pointer[q0 + min(3, rows - 1)])
                    let qn = (queryNorms[q0 - firstQuery], queryNorms[min(q0 + 1, queryCount - 1) - firstQuery],
                              queryNorms[min(q0 + 2, queryCount - 1) - firstQuery], queryNorms[min(q0 + 3, queryCount - 1) - firstQuery])
                    PanelSearch.searchBlock(a0, a1, a2, a3, queryNorms: qn, depth: d, panels: UnsafePointer(panels.pointer),
                                            norms: UnsafePointer(norms.pointer), range: block..<blockEnd,
                                            best: &best, index: &index)
                    distances.pointer[q0] = best.0; indices.pointer[q0] = index.0
                    if rows > 1 { distances.pointer[q0 + 1] = best.1; indices.pointer[q0 + 1] = index.1 }
                    if rows > 2 { distances.pointer[q0 + 2] = best.2; indices.pointer[q0 + 2] = index.2 }
                    if rows > 3 { distances.pointer[q0 + 3] = best.3; indices.pointer[q0 + 3] = index.3 }
                }
            }
        }
    }

    /// Four queries against the panels `range`: each 4 x 24 tile of dot products folded into
    /// the four running minima (kept in registers for the whole block). Its own function so
    /// that the fold stays inlined next to the multiply.
    @inline(never)
    static func searchBlock(_ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>,
                            _ a3: UnsafePointer<Float>, queryNorms qn: (Float, Float, Float, Float), depth: Int,
                            panels: UnsafePointer<Float>, norms: UnsafePointer<Float>, range: Range<Int>,
                            best: inout (Float, Float, Float, Float), index: inout (Int32, Int32, Int32, Int32)) {
        for panel in range {
            var t = DotTile()
            t.multiply(a0, a1, a2, a3, depth: depth, b: panels + panel * depth * 24)
            let bn = norms + panel * 24
            let n0 = load8(bn), n1 = load8(bn + 8), n2 = load8(bn + 16)
            let first = panel * 24
            fold(t.c00, t.c01, t.c02, n0, n1, n2, queryNorm: qn.0, firstIndex: first, best: &best.0, index: &index.0)
            fold(t.c10, t.c11, t.c12, n0, n1, n2, queryNorm: qn.1, firstIndex: first, best: &best.1, index: &index.1)
            fold(t.c20, t.c21, t.c22, n0, n1, n2, queryNorm: qn.2, firstIndex: first, best: &best.2, index: &index.2)
            fold(t.c30, t.c31, t.c32, n0, n1, n2, queryNorm: qn.3, firstIndex: first, best: &best.3, index: &index.3)
        }
    }

    /// Folds the 24 distances of one query against one panel into its running minimum.
    /// `@_transparent`: with `@inline(__always)` the optimiser still left it out of line
    /// (6 % of an inspection run in calls).
    @_transparent
    private static func fold(_ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>,
                             _ n0: SIMD8<Float>, _ n1: SIMD8<Float>, _ n2: SIMD8<Float>,
                             queryNorm: Float, firstIndex: Int, best: inout Float, index: inout Int32) {
        // |q|^2 + |b|^2 - 2 q.b, in the order the blocked path rounds it.
        let qn = SIMD8<Float>(repeating: queryNorm), minus2 = SIMD8<Float>(repeating: -2)
        var d0 = (qn + n0) + r0 * minus2, d1 = (qn + n1) + r1 * minus2, d2 = (qn + n2) + r2 * minus2
        // Rounding can make it slightly negative: 0, as in the blocked path (so that ties
        // at 0 also go to the lowest index).
        let zero = SIMD8<Float>()
        d0 = d0.replacing(with: zero, where: d0 .< zero); d1 = d1.replacing(with: zero, where: d1 .< zero)
        d2 = d2.replacing(with: zero, where: d2 .< zero)
        // Lane-wise minimum by compare-and-blend (`pointwiseMin` goes lane by lane), then
        // the horizontal minimum by halves (the generic `min()` was a call per use).
        var m = d0.replacing(with: d1, where: d1 .< d0)
        m = m.replacing(with: d2, where: d2 .< m)
        var h4 = m.lowHalf.replacing(with: m.highHalf, where: m.highHalf .< m.lowHalf)
        let swapped = SIMD4(lowHalf: h4.highHalf, highHalf: h4.lowHalf)
        h4 = h4.replacing(with: swapped, where: swapped .< h4)
        let smallest = Swift.min(h4[0], h4[1])
        guard smallest < best else { return }
        // Rare after the first panels: find the first lane with the smallest value.
        var value = best, position = Int(index)
        for lane in 0..<8 where d0[lane] < value { value = d0[lane]; position = firstIndex + lane }
        for lane in 0..<8 where d1[lane] < value { value = d1[lane]; position = firstIndex + 8 + lane }
        for lane in 0..<8 where d2[lane] < value { value = d2[lane]; position = firstIndex + 16 + lane }
        best = value
        index = Int32(position)
    }
}

/// The dot products of 4 queries with 24 bank rows: the shared 4 x 24 register tile.
private typealias DotTile = Tile4x24


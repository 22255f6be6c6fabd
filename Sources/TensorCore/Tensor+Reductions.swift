// Reductions: over the whole tensor, and along one axis.
//
// Along an axis, the tensor is viewed as [outer, length, inner] (length = the reduced
// axis): the result row for each `outer` starts as slice 0 and is combined with slices
// 1..<length in order. The inner loop then runs over `inner` contiguous elements, which
// vectorises, instead of striding down the reduced axis.

extension Tensor {
    /// The sum of all elements (0 for an empty tensor).
    ///
    /// Four 16-lane Float accumulators, summed at the end: faster and usually more accurate
    /// than one running sum.
    public func sum() -> Float {
        let p = UnsafePointer(storage.base)
        let n = count
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
        var i = 0
        while i + 64 <= n {
            s0 += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            s1 += UnsafeRawPointer(p + i + 16).loadUnaligned(as: SIMD16<Float>.self)
            s2 += UnsafeRawPointer(p + i + 32).loadUnaligned(as: SIMD16<Float>.self)
            s3 += UnsafeRawPointer(p + i + 48).loadUnaligned(as: SIMD16<Float>.self)
            i += 64
        }
        var total = ((s0 + s1) + (s2 + s3)).sum()
        while i < n {  // leftovers
            total += p[i]
            i += 1
        }
        return total
    }

    /// The arithmetic mean of all elements (NaN for an empty tensor).
    public func mean() -> Float { sum() / Float(count) }

    /// The largest element. The tensor must not be empty; NaN elements are skipped
    /// unless all are NaN.
    public func max() -> Float {
        precondition(count > 0, "Tensor.max: empty tensor of shape \(shape)")
        let p = storage.base
        var best = p[0]
        for i in 1..<count where p[i] > best || best.isNaN { best = p[i] }
        return best
    }

    /// The smallest element. The tensor must not be empty; NaN elements are skipped
    /// unless all are NaN.
    public func min() -> Float {
        precondition(count > 0, "Tensor.min: empty tensor of shape \(shape)")
        let p = storage.base
        var best = p[0]
        for i in 1..<count where p[i] < best || best.isNaN { best = p[i] }
        return best
    }

    /// The sizes of the `[outer, length, inner]` view around `axis`, checking it.
    func reductionView(_ axis: Int, _ name: String) -> (outer: Int, length: Int, inner: Int) {
        precondition(axis >= 0 && axis < rank, "Tensor.\(name): axis \(axis) out of range for shape \(shape)")
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        return (outer, shape[axis], inner)
    }

    /// Reduces along `axis` with `combine(accumulator, element)`; result shape drops the axis.
    @inline(__always)
    func reduce(
        alongAxis axis: Int, _ name: String, allowEmpty: Bool,
        _ combine: (Float, Float) -> Float
    ) -> Tensor {
        let (outer, length, inner) = reductionView(axis, name)
        precondition(allowEmpty || length > 0, "Tensor.\(name): axis \(axis) of shape \(shape) is empty")
        var resultShape = shape
        resultShape.remove(at: axis)
        return Tensor(uninitializedShape: resultShape) { out in  // [outer, inner]
            let src = UnsafePointer(storage.base)  // [outer, length, inner]
            let dst = out.baseAddress!
            guard length > 0 else {  // the empty sum
                dst.update(repeating: 0, count: outer * inner)
                return
            }
            for o in 0..<outer {
                let row = dst + o * inner
                let slab = src + o * length * inner
                row.update(from: slab, count: inner)
                for a in 1..<length {
                    let slice = slab + a * inner
                    for i in 0..<inner { row[i] = combine(row[i], slice[i]) }
                }
            }
        }
    }

    /// Sums along `axis`; the result has that axis removed (`[2, 3, 4]` along 1 gives `[2, 4]`).
    public func sum(alongAxis axis: Int) -> Tensor {
        reduce(alongAxis: axis, "sum(alongAxis:)", allowEmpty: true, +)
    }

    /// Means along `axis`; the result has that axis removed.
    public func mean(alongAxis axis: Int) -> Tensor {
        let length = reductionView(axis, "mean(alongAxis:)").length
        return sum(alongAxis: axis) / Float(length)
    }

    /// Maxima along `axis` (which must not be empty); the result has that axis removed.
    public func max(alongAxis axis: Int) -> Tensor {
        reduce(alongAxis: axis, "max(alongAxis:)", allowEmpty: false) { $1 > $0 || $0.isNaN ? $1 : $0 }
    }

    /// Minima along `axis` (which must not be empty); the result has that axis removed.
    public func min(alongAxis axis: Int) -> Tensor {
        reduce(alongAxis: axis, "min(alongAxis:)", allowEmpty: false) { $1 < $0 || $0.isNaN ? $1 : $0 }
    }

    /// The index of the largest element along `axis` (the first one on ties).
    ///
    /// - Parameter axis: the axis to search; it must not be empty.
    /// - Returns: indices into that axis, in row-major order of the shape with `axis`
    ///   removed: for logits `[N, classes]` and `axis: 1`, the predicted class per row.
    public func argmax(alongAxis axis: Int) -> [Int] {
        let (outer, length, inner) = reductionView(axis, "argmax(alongAxis:)")
        precondition(length > 0, "Tensor.argmax(alongAxis:): axis \(axis) of shape \(shape) is empty")
        let src = UnsafePointer(storage.base)  // [outer, length, inner]
        var result = [Int](repeating: 0, count: outer * inner)
        var best = [Float](repeating: 0, count: inner)
        result.withUnsafeMutableBufferPointer { result in
            best.withUnsafeMutableBufferPointer { best in
                for o in 0..<outer {
                    let slab = src + o * length * inner
                    let indices = result.baseAddress! + o * inner
                    best.baseAddress!.update(from: slab, count: inner)
                    for a in 1..<length {
                        let slice = slab + a * inner
                        for i in 0..<inner where slice[i] > best[i] || (best[i].isNaN && !slice[i].isNaN) {
                            best[i] = slice[i]
                            indices[i] = a
                        }
                    }
                }
            }
        }
        return result
    }
}

// The Tensor value type: shape, contiguous row-major Float32 storage, copy-on-write.

/// The heap storage behind a ``Tensor``: one contiguous, 64-byte aligned block of floats.
///
/// Kept internal: tensors share a `TensorStorage` until one of them is mutated, which
/// then copies it once (``Tensor/ensureUnique()``), never per element.
///
/// `@unchecked Sendable`: storage is written only through ``Tensor/ensureUnique()``, i.e.
/// while a single tensor value owns it, so no other tensor (on any thread) observes a write.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    @usableFromInline let count: Int
    @usableFromInline let base: UnsafeMutablePointer<Float>

    /// Floats in the block behind `base` (at least `count`; more when it was recycled).
    let capacity: Int

    /// Allocates uninitialised storage for `count` floats (callers initialise all of them).
    @usableFromInline
    init(uninitializedCount count: Int) {
        self.count = count
        (base, capacity) = StorageCache.shared.allocate(count: count)
    }

    @usableFromInline
    convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        base.initialize(repeating: value, count: count)
    }

    @usableFromInline
    func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        result.base.initialize(from: base, count: count)
        return result
    }

    deinit { StorageCache.shared.free(base, capacity: capacity) }
}

/// An n-dimensional array of `Float` (fp32) with value semantics.
///
/// Layout: contiguous row-major (C order). For a shape `[d0, d1, ..., dn]` the element at
/// index `[i0, i1, ..., in]` lives at offset `((i0 * d1 + i1) * d2 + i2) ... * dn + in`;
/// the last axis varies fastest. Image tensors in this project are `[N, H, W, C]`.
///
/// Copies share storage until one of them is mutated; a mutating operation then copies
/// the storage once before writing (copy-on-write), so passing tensors around is cheap.
///
/// ```swift
/// var x = Tensor(zeros: [2, 3])
/// x[1, 2] = 5
/// let y = x.transposed()        // [3, 2]
/// ```
///
/// Shape mismatches are programmer errors and stop the program with a `precondition`
/// message that names both shapes.
public struct Tensor: Sendable {
    /// The extent of each axis, outermost first. An empty shape is a scalar (one element).
    public let shape: [Int]

    @usableFromInline var storage: TensorStorage

    /// The number of elements: the product of `shape` (1 for a scalar, 0 if an axis is 0).
    public var count: Int { storage.count }

    /// The number of axes.
    public var rank: Int { shape.count }

    // MARK: - Initialisers

    /// Creates a tensor whose elements `body` writes, without filling them first.
    ///
    /// Saves a pass over memory in kernels that write every element anyway; the elements
    /// hold unspecified values until `body` writes them, so it must write all of them.
    ///
    /// - Parameters:
    ///   - shape: the shape of the new tensor.
    ///   - body: receives a buffer of `shape.product` floats to fill, in row-major order.
    @inlinable
    public init(
        uninitializedShape shape: [Int],
        initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void
    ) rethrows {
        let count = Tensor.elementCount(of: shape)
        self.shape = shape
        storage = TensorStorage(uninitializedCount: count)
        try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    /// Creates a tensor of the given shape with every element equal to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.shape = shape
        storage = TensorStorage(repeating: value, count: Tensor.elementCount(of: shape))
    }

    /// Creates a tensor of the given shape filled with zeros.
    public init(zeros shape: [Int]) { self.init(repeating: 0, shape: shape) }

    /// Creates a tensor of the given shape filled with ones.
    public init(ones shape: [Int]) { self.init(repeating: 1, shape: shape) }

    /// Creates a tensor from elements in row-major order.
    ///
    /// - Parameters:
    ///   - scalars: the elements, `shape.product` of them, last axis fastest.
    ///   - shape: the shape; `scalars.count` must equal the product of its extents.
    public init(_ scalars: [Float], shape: [Int]) {
        let count = Tensor.elementCount(of: shape)
        precondition(
            scalars.count == count,
            "Tensor(_:shape:): \(scalars.count) scalars do not fill shape \(shape) (\(count) elements)")
        self.shape = shape
        storage = TensorStorage(uninitializedCount: count)
        scalars.withUnsafeBufferPointer { storage.base.initialize(from: $0.baseAddress!, count: count) }
    }

    /// Creates a tensor of independent normal samples.
    ///
    /// - Parameters:
    ///   - shape: the shape of the new tensor.
    ///   - mean: the mean of the distribution.
    ///   - standardDeviation: its standard deviation.
    ///   - generator: a seeded generator such as ``Xoshiro256``; elements are drawn in
    ///     row-major order, so the same seed gives the same tensor.
    public init<G: RandomNumberGenerator>(
        randomNormal shape: [Int], mean: Float = 0, standardDeviation: Float = 1,
        using generator: inout G
    ) {
        self.init(zeros: shape)
        if let seeded = generator as? Xoshiro256, seeded.isWeightsToBeLoaded { return }
        let base = storage.base
        for i in 0..<count { base[i] = mean + standardDeviation * generator.nextStandardNormal() }
    }

    /// Creates a tensor of independent uniform samples in `range` (lower bound included).
    ///
    /// - Parameters:
    ///   - shape: the shape of the new tensor.
    ///   - range: the interval the samples come from.
    ///   - generator: a seeded generator such as ``Xoshiro256``; elements are drawn in
    ///     row-major order.
    public init<G: RandomNumberGenerator>(
        randomUniform shape: [Int], in range: Range<Float> = 0..<1, using generator: inout G
    ) {
        self.init(zeros: shape)
        if let seeded = generator as? Xoshiro256, seeded.isWeightsToBeLoaded { return }
        let base = storage.base
        let width = range.upperBound - range.lowerBound
        for i in 0..<count { base[i] = range.lowerBound + width * generator.nextUnitFloat() }
    }

    @usableFromInline
    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self.storage = storage
    }

    /// The product of the extents; stops with a message on a negative extent.
    @inlinable
    static func elementCount(of shape: [Int]) -> Int {
        var count = 1
        for extent in shape {
            precondition(extent >= 0, "Tensor: negative extent in shape \(shape)")
            count *= extent
        }
        return count
    }

    // MARK: - Copy on write

    /// Makes this tensor the sole owner of its storage, copying it if it is shared.
    ///
    /// Every mutating operation calls this once before its loop, never per element.
    @inlinable
    mutating func ensureUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    // MARK: - Element access

    /// The elements in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// The single element of a one-element tensor (any rank).
    public var scalar: Float {
        precondition(count == 1, "Tensor.scalar: shape \(shape) has \(count) elements, not 1")
        return storage.base[0]
    }

    /// The row-major strides of `shape`, in elements.
    public var strides: [Int] {
        var result = [Int](repeating: 1, count: shape.count)
        var stride = 1
        for axis in shape.indices.reversed() {
            result[axis] = stride
            stride *= shape[axis]
        }
        return result
    }

    /// The storage offset of a multi-index, checking each index against its axis.
    @inlinable
    func offset(of indices: [Int]) -> Int {
        precondition(
            indices.count == shape.count,
            "Tensor subscript: \(indices.count) indices \(indices) for shape \(shape)")
        var offset = 0
        for axis in 0..<shape.count {
            let index = indices[axis]
            precondition(
                index >= 0 && index < shape[axis],
                "Tensor subscript: index \(indices) out of range for shape \(shape)")
            offset = offset * shape[axis] + index
        }
        return offset
    }

    /// The element at a multi-index, one index per axis: `x[n, h, w, c]`.
    ///
    /// Convenient but checked per access; hot loops should use
    /// ``withUnsafeBufferPointer(_:)`` instead.
    public subscript(indices: Int...) -> Float {
        get { storage.base[offset(of: indices)] }
        set {
            let offset = offset(of: indices)
            ensureUnique()
            storage.base[offset] = newValue
        }
    }

    /// The element at a multi-index given as an array.
    public subscript(index indices: [Int]) -> Float {
        get { storage.base[offset(of: indices)] }
        set {
            let offset = offset(of: indices)
            ensureUnique()
            storage.base[offset] = newValue
        }
    }

    /// Calls `body` with the elements in row-major order, without copying.
    ///
    /// The buffer is valid only during the call.
    @inlinable
    public func withUnsafeBufferPointer<R>(
        _ body: (UnsafeBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: count))
    }

    /// Calls `body` with the mutable elements in row-major order, after making the storage
    /// unique (one copy at most, whatever `body` does).
    ///
    /// The buffer is valid only during the call.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        ensureUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    // MARK: - Shape changes

    /// The same elements, in the same row-major order, viewed with another shape.
    ///
    /// Shares storage (no copy). One extent may be `-1`, meaning "whatever makes the count
    /// match".
    ///
    /// - Parameter newShape: the new shape; its product must equal ``count``.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let hole = newShape.firstIndex(of: -1) {
            precondition(
                newShape.filter({ $0 == -1 }).count == 1,
                "Tensor.reshaped: more than one -1 in \(newShape) (from \(shape))")
            let known = newShape.enumerated().reduce(1) { $1.offset == hole ? $0 : $0 * $1.element }
            precondition(
                known > 0 && count % known == 0,
                "Tensor.reshaped: cannot reshape \(shape) to \(newShape)")
            resolved[hole] = count / known
        }
        precondition(
            Tensor.elementCount(of: resolved) == count,
            "Tensor.reshaped: shape \(shape) (\(count) elements) cannot become \(newShape)")
        return Tensor(shape: resolved, storage: storage)
    }

    /// The transpose of a 2-D tensor: `[R, C]` becomes `[C, R]`, with `y[j, i] == x[i, j]`.
    ///
    /// Copies the elements (the result is row-major too), in cache-sized tiles.
    public func transposed() -> Tensor {
        precondition(rank == 2, "Tensor.transposed: needs a 2-D tensor, got shape \(shape)")
        let rows = shape[0], cols = shape[1]
        return Tensor(uninitializedShape: [cols, rows]) { out in
            let src = UnsafePointer(storage.base)
            let dst = out.baseAddress!
            // Tiles of 32x32 keep both the rows read and the rows written in L1.
            let tile = 32
            for i0 in stride(from: 0, to: rows, by: tile) {
                for j0 in stride(from: 0, to: cols, by: tile) {
                    for i in i0..<Swift.min(i0 + tile, rows) {
                        for j in j0..<Swift.min(j0 + tile, cols) { dst[j * rows + i] = src[i * cols + j] }
                    }
                }
            }
        }
    }
}

extension Tensor: Equatable {
    /// Two tensors are equal when their shapes and all their elements are equal
    /// (so a tensor containing NaN is not equal to itself).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return !lhs.scalars.contains { $0.isNaN } }
        for i in 0..<lhs.count where lhs.storage.base[i] != rhs.storage.base[i] { return false }
        return true
    }
}

extension Tensor: CustomStringConvertible {
    /// The shape and up to the first eight elements, e.g. `Tensor([2, 3]: 1.0, 2.0, ...)`.
    public var description: String {
        let shown = (0..<Swift.min(count, 8)).map { "\(storage.base[$0])" }.joined(separator: ", ")
        return "Tensor(\(shape): \(shown)\(count > 8 ? ", ..." : ""))"
    }
}

extension Tensor {
    /// Tensors of one shape stacked along a new leading axis: `n` tensors of shape `s`
    /// give one of shape `[n] + s` (e.g. images `[H, W, C]` into a batch `[N, H, W, C]`).
    public static func stacked(_ tensors: [Tensor]) -> Tensor {
        precondition(!tensors.isEmpty, "Tensor.stacked: no tensors")
        let shape = tensors[0].shape, each = tensors[0].count
        return Tensor(uninitializedShape: [tensors.count] + shape) { out in
            for (i, tensor) in tensors.enumerated() {
                precondition(tensor.shape == shape, "Tensor.stacked: shapes \(tensor.shape) and \(shape) differ")
                tensor.withUnsafeBufferPointer { out.baseAddress!.advanced(by: i * each).update(from: $0.baseAddress!, count: each) }
            }
        }
    }
}

// Element-wise arithmetic and functions on tensors.
//
// Every operation binds its buffers once and runs one flat loop over the contiguous
// storage, 16 lanes at a time with a scalar tail; in-place forms call `ensureUnique()`
// once before the loop. Binary tensor-tensor operations need equal shapes (no
// broadcasting): a mismatch stops with both shapes in the message.
import Foundation

// MARK: - Loop helpers

extension Tensor {
    /// `result[i] = vector/scalar(self[i])`, 16 lanes at a time.
    @inline(__always)
    func unary(
        _ vector: (SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float) -> Float
    ) -> Tensor {
        Tensor(uninitializedShape: shape) { out in
            let src = UnsafePointer(storage.base), dst = out.baseAddress!
            let n = count
            var i = 0
            while i + 16 <= n {
                let x = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(dst + i).storeBytes(of: vector(x), as: SIMD16<Float>.self)
                i += 16
            }
            while i < n {  // leftovers
                dst[i] = scalar(src[i])
                i += 1
            }
        }
    }

    /// `self[i] = vector/scalar(self[i])` in place, after one `ensureUnique()`.
    @inline(__always)
    mutating func unaryInPlace(
        _ vector: (SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float) -> Float
    ) {
        ensureUnique()
        let p = storage.base
        let n = count
        var i = 0
        while i + 16 <= n {
            let x = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(p + i).storeBytes(of: vector(x), as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {  // leftovers
            p[i] = scalar(p[i])
            i += 1
        }
    }

    /// `result[i] = op(lhs[i], rhs[i])` for two tensors of the same shape.
    @inline(__always)
    static func binary(
        _ lhs: Tensor, _ rhs: Tensor, _ name: String,
        _ vector: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float, Float) -> Float
    ) -> Tensor {
        precondition(lhs.shape == rhs.shape, "Tensor \(name): shapes differ: \(lhs.shape) and \(rhs.shape)")
        return Tensor(uninitializedShape: lhs.shape) { out in
            let a = UnsafePointer(lhs.storage.base), b = UnsafePointer(rhs.storage.base)
            let dst = out.baseAddress!
            let n = lhs.count
            var i = 0
            while i + 16 <= n {
                let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
                let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(dst + i).storeBytes(of: vector(x, y), as: SIMD16<Float>.self)
                i += 16
            }
            while i < n {  // leftovers
                dst[i] = scalar(a[i], b[i])
                i += 1
            }
        }
    }

    /// `lhs[i] = op(lhs[i], rhs[i])` in place; one `ensureUnique()` on `lhs`.
    @inline(__always)
    static func binaryInPlace(
        _ lhs: inout Tensor, _ rhs: Tensor, _ name: String,
        _ vector: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float, Float) -> Float
    ) {
        precondition(lhs.shape == rhs.shape, "Tensor \(name): shapes differ: \(lhs.shape) and \(rhs.shape)")
        lhs.ensureUnique()
        // `rhs` may share storage with `lhs` (x += x): reading before writing each chunk
        // keeps that correct.
        let a = lhs.storage.base, b = UnsafePointer(rhs.storage.base)
        let n = lhs.count
        var i = 0
        while i + 16 <= n {
            let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            let y = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(a + i).storeBytes(of: vector(x, y), as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {  // leftovers
            a[i] = scalar(a[i], b[i])
            i += 1
        }
    }
}

// MARK: - Arithmetic

extension Tensor {
    /// Element-wise sum of two tensors of the same shape.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { binary(lhs, rhs, "+", { $0 + $1 }, { $0 + $1 }) }
    /// Element-wise difference of two tensors of the same shape.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { binary(lhs, rhs, "-", { $0 - $1 }, { $0 - $1 }) }
    /// Element-wise product of two tensors of the same shape.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { binary(lhs, rhs, "*", { $0 * $1 }, { $0 * $1 }) }
    /// Element-wise quotient of two tensors of the same shape.
    public static func / (lhs: Tensor, rhs: Tensor) -> Tensor { binary(lhs, rhs, "/", { $0 / $1 }, { $0 / $1 }) }

    /// Adds `rhs` (same shape) to every element of `lhs`, in place.
    public static func += (lhs: inout Tensor, rhs: Tensor) { binaryInPlace(&lhs, rhs, "+=", { $0 + $1 }, { $0 + $1 }) }
    /// Subtracts `rhs` (same shape) from `lhs`, in place.
    public static func -= (lhs: inout Tensor, rhs: Tensor) { binaryInPlace(&lhs, rhs, "-=", { $0 - $1 }, { $0 - $1 }) }
    /// Multiplies `lhs` by `rhs` (same shape) element-wise, in place.
    public static func *= (lhs: inout Tensor, rhs: Tensor) { binaryInPlace(&lhs, rhs, "*=", { $0 * $1 }, { $0 * $1 }) }
    /// Divides `lhs` by `rhs` (same shape) element-wise, in place.
    public static func /= (lhs: inout Tensor, rhs: Tensor) { binaryInPlace(&lhs, rhs, "/=", { $0 / $1 }, { $0 / $1 }) }

    /// Adds a scalar to every element.
    public static func + (lhs: Tensor, rhs: Float) -> Tensor { lhs.unary({ $0 + rhs }, { $0 + rhs }) }
    /// Adds a scalar to every element.
    public static func + (lhs: Float, rhs: Tensor) -> Tensor { rhs.unary({ lhs + $0 }, { lhs + $0 }) }
    /// Subtracts a scalar from every element.
    public static func - (lhs: Tensor, rhs: Float) -> Tensor { lhs.unary({ $0 - rhs }, { $0 - rhs }) }
    /// Subtracts every element from a scalar.
    public static func - (lhs: Float, rhs: Tensor) -> Tensor { rhs.unary({ lhs - $0 }, { lhs - $0 }) }
    /// Multiplies every element by a scalar.
    public static func * (lhs: Tensor, rhs: Float) -> Tensor { lhs.unary({ $0 * rhs }, { $0 * rhs }) }
    /// Multiplies every element by a scalar.
    public static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs.unary({ lhs * $0 }, { lhs * $0 }) }
    /// Divides every element by a scalar (a true division, not a multiplication by 1/rhs,
    /// so results match `Float` division exactly).
    public static func / (lhs: Tensor, rhs: Float) -> Tensor { lhs.unary({ $0 / rhs }, { $0 / rhs }) }
    /// Divides a scalar by every element.
    public static func / (lhs: Float, rhs: Tensor) -> Tensor { rhs.unary({ lhs / $0 }, { lhs / $0 }) }

    /// Adds a scalar to every element, in place.
    public static func += (lhs: inout Tensor, rhs: Float) { lhs.unaryInPlace({ $0 + rhs }, { $0 + rhs }) }
    /// Subtracts a scalar from every element, in place.
    public static func -= (lhs: inout Tensor, rhs: Float) { lhs.unaryInPlace({ $0 - rhs }, { $0 - rhs }) }
    /// Multiplies every element by a scalar, in place.
    public static func *= (lhs: inout Tensor, rhs: Float) { lhs.unaryInPlace({ $0 * rhs }, { $0 * rhs }) }
    /// Divides every element by a scalar, in place.
    public static func /= (lhs: inout Tensor, rhs: Float) { lhs.unaryInPlace({ $0 / rhs }, { $0 / rhs }) }

    /// Element-wise negation.
    public static prefix func - (operand: Tensor) -> Tensor { operand.unary({ -$0 }, { -$0 }) }

    /// A tensor of the same shape with `transform` applied to every element.
    ///
    /// A scalar loop; prefer the SIMD operators when one exists.
    public func map(_ transform: (Float) throws -> Float) rethrows -> Tensor {
        try Tensor(uninitializedShape: shape) { out in
            let src = storage.base
            for i in 0..<count { out[i] = try transform(src[i]) }
        }
    }

    /// Every element limited to `range`: below it becomes `range.lowerBound`, above it
    /// `range.upperBound` (NaN stays NaN).
    public func clamped(to range: ClosedRange<Float>) -> Tensor {
        let low = range.lowerBound, high = range.upperBound
        return unary(
            { $0.replacing(with: SIMD16(repeating: low), where: $0 .< low)
                .replacing(with: SIMD16(repeating: high), where: $0 .> high) },
            { $0 < low ? low : ($0 > high ? high : $0) })
    }

    /// Limits every element to `range`, in place (see ``clamped(to:)``).
    public mutating func clamp(to range: ClosedRange<Float>) {
        let low = range.lowerBound, high = range.upperBound
        unaryInPlace(
            { $0.replacing(with: SIMD16(repeating: low), where: $0 .< low)
                .replacing(with: SIMD16(repeating: high), where: $0 .> high) },
            { $0 < low ? low : ($0 > high ? high : $0) })
    }
}

// MARK: - Functions

/// The element-wise square root (NaN for negative elements).
public func sqrt(_ x: Tensor) -> Tensor { x.unary({ $0.squareRoot() }, { $0.squareRoot() }) }

/// The element-wise absolute value.
public func abs(_ x: Tensor) -> Tensor {
    // Clearing the sign bit: exact, and also maps -0 to +0 and keeps NaN a NaN.
    x.unary(
        { unsafeBitCast(unsafeBitCast($0, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self) },
        { $0.magnitude })
}

/// The element-wise natural exponential `e^x` (Foundation's `exp` per element).
public func exp(_ x: Tensor) -> Tensor {
    x.map { Foundation.exp($0) }
}

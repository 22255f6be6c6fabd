// Small SIMD helpers shared by the nearest-neighbour search, the coreset sampler and the
// Gaussian statistics. Kept internal: they work on raw pointers bound by the callers.

/// The squared Euclidean distance between two vectors of `count` floats.
///
/// Two independent 16-wide accumulators hide the FMA latency; the summation order depends
/// on `count` only, so the same pair always gives the same bits.
@inline(__always)
func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= count {
        let d0 = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            - UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
        let d1 = UnsafeRawPointer(a + i + 16).loadUnaligned(as: SIMD16<Float>.self)
            - UnsafeRawPointer(b + i + 16).loadUnaligned(as: SIMD16<Float>.self)
        acc0.addProduct(d0, d0)
        acc1.addProduct(d1, d1)
        i += 32
    }
    if i + 16 <= count {
        let d0 = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
            - UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
        acc0.addProduct(d0, d0)
        i += 16
    }
    var sum = (acc0 + acc1).sum()
    // leftovers
    while i < count {
        let d = a[i] - b[i]
        sum += d * d
        i += 1
    }
    return sum
}

/// The dot product of two vectors of `count` floats (same accumulation scheme as
/// ``squaredDistance(_:_:count:)``).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    while i + 32 <= count {
        acc0.addProduct(
            UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
            UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        acc1.addProduct(
            UnsafeRawPointer(a + i + 16).loadUnaligned(as: SIMD16<Float>.self),
            UnsafeRawPointer(b + i + 16).loadUnaligned(as: SIMD16<Float>.self))
        i += 32
    }
    if i + 16 <= count {
        acc0.addProduct(
            UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
            UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        i += 16
    }
    var sum = (acc0 + acc1).sum()
    // leftovers
    while i < count {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

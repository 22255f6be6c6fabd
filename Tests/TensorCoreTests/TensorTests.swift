import Foundation
import Testing
@_spi(Testing) import TensorCore

/// Element counts around the 16-lane vector width and the 64-element unrolled sum.
let awkwardCounts = [0, 1, 15, 16, 17, 63, 65, 1003]

func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    return Tensor(randomNormal: shape, using: &rng)
}

@Test("tensor-tensor arithmetic matches a scalar loop", arguments: awkwardCounts)
func binaryArithmetic(count: Int) {
    let x = randomTensor([count], seed: 1)
    // Keep divisors away from zero.
    let y = randomTensor([count], seed: 2).map { $0 >= 0 ? $0 + 0.5 : $0 - 0.5 }
    let ops: [(String, (Tensor, Tensor) -> Tensor, (Float, Float) -> Float)] = [
        ("+", { $0 + $1 }, { $0 + $1 }), ("-", { $0 - $1 }, { $0 - $1 }),
        ("*", { $0 * $1 }, { $0 * $1 }), ("/", { $0 / $1 }, { $0 / $1 }),
    ]
    for (name, tensorOp, scalarOp) in ops {
        let result = tensorOp(x, y)
        #expect(result.shape == [count])
        #expect(result.scalars == zip(x.scalars, y.scalars).map(scalarOp), "\(name)")
    }
    var z = x
    z += y; #expect(z == x + y)
    z = x; z -= y; #expect(z == x - y)
    z = x; z *= y; #expect(z == x * y)
    z = x; z /= y; #expect(z == x / y)
    z = x; z += z; #expect(z == x * 2)
}

@Test("tensor-scalar arithmetic and unary functions match a scalar loop", arguments: awkwardCounts)
func scalarArithmeticAndFunctions(count: Int) {
    let x = randomTensor([count], seed: 3)
    let s: Float = 1.75
    #expect((x + s).scalars == x.scalars.map { $0 + s })
    #expect((s + x).scalars == x.scalars.map { s + $0 })
    #expect((x - s).scalars == x.scalars.map { $0 - s })
    #expect((s - x).scalars == x.scalars.map { s - $0 })
    #expect((x * s).scalars == x.scalars.map { $0 * s })
    #expect((s * x).scalars == x.scalars.map { s * $0 })
    #expect((x / s).scalars == x.scalars.map { $0 / s })
    #expect((s / x).scalars == x.scalars.map { s / $0 })
    #expect((-x).scalars == x.scalars.map { -$0 })
    var y = x
    y += s; #expect(y == x + s)
    y = x; y -= s; #expect(y == x - s)
    y = x; y *= s; #expect(y == x * s)
    y = x; y /= s; #expect(y == x / s)
    #expect(abs(x).scalars == x.scalars.map { Swift.abs($0) })
    #expect(sqrt(abs(x)).scalars == x.scalars.map { Swift.abs($0).squareRoot() })
    #expect(exp(x).scalars == x.scalars.map { Foundation.exp($0) })
    #expect(x.map { $0 * $0 + 1 }.scalars == x.scalars.map { $0 * $0 + 1 })
    let clamped = x.scalars.map { Swift.min(Swift.max($0, -0.5), 0.5) }
    #expect(x.clamped(to: -0.5...0.5).scalars == clamped)
    y = x; y.clamp(to: -0.5...0.5); #expect(y.scalars == clamped)
}

@Test("whole-tensor reductions match Double loops", arguments: awkwardCounts.filter { $0 > 0 })
func wholeReductions(count: Int) {
    let x = randomTensor([count], seed: 4)
    let exact = x.scalars.reduce(0.0) { $0 + Double($1) }
    let magnitude = x.scalars.reduce(0.0) { $0 + Double(Swift.abs($1)) }
    #expect(Swift.abs(Double(x.sum()) - exact) <= 1e-6 * Double(count) * magnitude + 1e-7)
    #expect(Swift.abs(Double(x.mean()) - exact / Double(count)) <= 1e-6 * magnitude + 1e-7)
    #expect(x.max() == x.scalars.max()!)
    #expect(x.min() == x.scalars.min()!)
    #expect(Tensor(zeros: [0]).sum() == 0)
}

@Test(
    "reductions along an axis match naive loops",
    arguments: [[3, 4, 5], [1, 17, 1], [16, 17], [17, 16], [2, 1, 3], [5, 0, 2]], [0, 1, 2])
func axisReductions(shape: [Int], axis: Int) {
    guard axis < shape.count else { return }
    let x = randomTensor(shape, seed: UInt64(shape.reduce(7, *)))
    let strides = x.strides
    var outShape = shape
    outShape.remove(at: axis)
    let outCount = outShape.reduce(1, *)
    var expectedSum = [Double](repeating: 0, count: outCount)
    var expectedMax = [Float](repeating: -.infinity, count: outCount)
    var expectedMin = [Float](repeating: .infinity, count: outCount)
    var expectedArgmax = [Int](repeating: 0, count: outCount)
    for flat in 0..<x.count {
        // The multi-index of `flat`, and its index in the reduced tensor.
        var rest = flat
        var index = [Int]()
        for s in strides { index.append(rest / s); rest %= s }
        let along = index[axis]
        index.remove(at: axis)
        var out = 0
        for (d, i) in index.enumerated() { out = out * outShape[d] + i }
        let value = x.scalars[flat]
        expectedSum[out] += Double(value)
        if value > expectedMax[out] { expectedMax[out] = value; expectedArgmax[out] = along }
        expectedMin[out] = Swift.min(expectedMin[out], value)
    }
    let sum = x.sum(alongAxis: axis)
    #expect(sum.shape == outShape)
    for (a, e) in zip(sum.scalars, expectedSum) { #expect(Swift.abs(Double(a) - e) <= 1e-5 * (1 + Swift.abs(e))) }
    let mean = x.mean(alongAxis: axis)
    if shape[axis] > 0 {
        for (a, e) in zip(mean.scalars, expectedSum) {
            #expect(Swift.abs(Double(a) - e / Double(shape[axis])) <= 1e-5 * (1 + Swift.abs(e)))
        }
        #expect(x.max(alongAxis: axis).scalars == expectedMax)
        #expect(x.min(alongAxis: axis).scalars == expectedMin)
        #expect(x.argmax(alongAxis: axis) == expectedArgmax)
    }
}

@Test func argmaxTakesFirstOnTies() {
    let x = Tensor([1, 3, 3, 0, 2, 2, 2, 2], shape: [2, 4])
    #expect(x.argmax(alongAxis: 1) == [1, 0])
    #expect(x.argmax(alongAxis: 0) == [1, 0, 0, 1])
}

@Test func copyOnWrite() {
    let original = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
    var copy = original
    copy[1, 2] = 60
    #expect(original[1, 2] == 6)
    #expect(copy[1, 2] == 60)

    var viaBuffer = original
    viaBuffer.withUnsafeMutableBufferPointer { $0[0] = -1 }
    #expect(original.scalars == [1, 2, 3, 4, 5, 6])
    #expect(viaBuffer.scalars == [-1, 2, 3, 4, 5, 6])

    var inPlace = original
    inPlace += 1
    inPlace.clamp(to: 0...4)
    #expect(original.scalars == [1, 2, 3, 4, 5, 6])
    #expect(inPlace.scalars == [2, 3, 4, 4, 4, 4])

    // A reshaped view shares storage, but writing to it still leaves the source alone.
    var reshaped = original.reshaped([3, 2])
    reshaped[0, 0] = 100
    #expect(original[0, 0] == 1)
}

@Test func shapesAndIndexing() {
    let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
    #expect(x.count == 24 && x.rank == 3)
    #expect(x.strides == [12, 4, 1])
    #expect(x[1, 2, 3] == 23)
    #expect(x[index: [1, 0, 2]] == 14)
    #expect(x.reshaped([6, -1]).shape == [6, 4])
    #expect(x.reshaped([24]).scalars == x.scalars)
    let m = x.reshaped([4, 6])
    let t = m.transposed()
    #expect(t.shape == [6, 4])
    for i in 0..<4 { for j in 0..<6 { #expect(t[j, i] == m[i, j]) } }
    let big = randomTensor([33, 70], seed: 9)
    #expect(big.transposed().transposed() == big)
    #expect(Tensor(repeating: 2.5, shape: [3]).scalars == [2.5, 2.5, 2.5])
    #expect(Tensor(zeros: []).count == 1)
    #expect(Tensor(ones: [2, 2]).sum() == 4)
}

@Test func seededRandomIsReproducible() {
    var a = Xoshiro256(seed: 123), b = Xoshiro256(seed: 123), c = Xoshiro256(seed: 124)
    let x = Tensor(randomNormal: [1000], using: &a)
    #expect(x == Tensor(randomNormal: [1000], using: &b))
    #expect(x != Tensor(randomNormal: [1000], using: &c))
    // Moments of 1000 standard normal samples.
    #expect(Swift.abs(x.mean()) < 0.15)
    #expect(Swift.abs(sqrt((x * x)).mean() - 0.8) < 0.1)  // E|z| = sqrt(2/pi) ~ 0.798
    var u = SplitMix64(seed: 1)
    let y = Tensor(randomUniform: [1000], in: -2..<3, using: &u)
    #expect(y.min() >= -2 && y.max() < 3)
    #expect(Swift.abs(y.mean() - 0.5) < 0.2)
}

/// The storage cache (StorageCache.swift) on its own instance, since other tests allocate
/// tensors concurrently through the shared one: a freed block serves the next request of
/// 80-100 % of its size, nothing smaller or larger; the budget and block limit drop the
/// oldest blocks; blocks under 256 KiB and over a quarter of the budget are never kept.
@Test func storageCacheReusesBlocksWithinItsBounds() {
    let cache = StorageCache(budgetBytes: 16 << 20, maximumBlocks: 3)
    let floats = 300_000   // 1.2 MB
    let (a, capacity) = cache.allocate(count: floats)
    cache.free(a, capacity: capacity)
    #expect(cache.cachedBytes == capacity * 4)
    let (large, largeCapacity) = cache.allocate(count: floats * 2)   // too large for the block
    let (b, bCapacity) = cache.allocate(count: floats / 2)            // too small to take it
    #expect(large != a && b != a && cache.cachedBytes == capacity * 4)
    large.deallocate(); b.deallocate()
    _ = (largeCapacity, bCapacity)
    let (c, cCapacity) = cache.allocate(count: floats - 1000)  // within 80 %: reused
    #expect(c == a && cCapacity == capacity && cache.cachedBytes == 0)
    cache.free(c, capacity: cCapacity)
    // Small blocks and blocks over a quarter of the budget go straight back to the system.
    let (small, smallCapacity) = cache.allocate(count: 1000)
    cache.free(small, capacity: smallCapacity)
    let (huge, hugeCapacity) = cache.allocate(count: 5 << 20)
    cache.free(huge, capacity: hugeCapacity)
    #expect(cache.cachedBytes == capacity * 4)
    // At most 3 blocks: the oldest goes first.
    let blocks = (0..<4).map { _ in cache.allocate(count: 200_000) }
    for (base, capacity) in blocks { cache.free(base, capacity: capacity) }
    #expect(cache.cachedBytes == 3 * 200_000 * 4)
    // The 1.2 MB block was dropped: its request comes from the system, the cache is unchanged.
    let (d, _) = cache.allocate(count: floats)
    #expect(cache.cachedBytes == 3 * 200_000 * 4)
    d.deallocate()
    cache.releaseAll()
    #expect(cache.cachedBytes == 0)
}

/// Recycled storage holds another tensor's old values: every initialiser must still define
/// every element (checked by recycling NaN-filled tensors of the same size).
@Test func tensorsOnRecycledStorageAreFullyInitialised() {
    let shape = [1, 112, 112, 24]   // 1.2 MB, above the 256 KiB threshold
    let values = (0..<(112 * 112 * 24)).map { Float($0 % 7) }
    for _ in 0..<3 {
        do { _ = Tensor(repeating: .nan, shape: shape) }
        let zeros = Tensor(zeros: shape)
        #expect(zeros.scalars.allSatisfy { $0 == 0 })
        do { _ = Tensor(repeating: .nan, shape: shape) }
        #expect(Tensor(values, shape: shape).scalars == values)
        do { _ = Tensor(repeating: .nan, shape: shape) }
        var copy = zeros
        copy[0, 0, 0, 0] = 1   // copy-on-write into a recycled block
        #expect(copy.scalars[0] == 1 && copy.scalars.dropFirst().allSatisfy { $0 == 0 })
    }
    Tensor.releaseCachedStorage()
}

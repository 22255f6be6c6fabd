// The register tiles of the matrix kernels: 4 rows of A times a packed panel of B 24, 16 or
// 8 columns wide, the sums held in SIMD8 accumulators (12, 8 or 4 ymm registers, leaving
// room for the B vectors and the broadcast). One definition serves the GEMM's micro-kernel,
// the direct and Winograd convolutions and the k-NN search; each adds its own loading and
// storing around it. 4 x 24 is the shape that reached 98 % of the FMA peak alone on a Zen
// AVX2 core (4 broadcasts per 12 FMAs); 4 x 16 and 4 x 8 serve the last, narrower panels.

/// Eight floats from any address.
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Eight floats from any address (of a buffer being written).
@inlinable @inline(__always)
public func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

/// Eight floats to any address.
@inlinable @inline(__always)
public func store8(_ value: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: value, as: SIMD8<Float>.self)
}

/// 4 rows x 24 columns of sums: row i in `ci0`, `ci1`, `ci2` (columns 0-7, 8-15, 16-23).
public struct Tile4x24 {
    public var c00: SIMD8<Float>, c01: SIMD8<Float>, c02: SIMD8<Float>
    public var c10: SIMD8<Float>, c11: SIMD8<Float>, c12: SIMD8<Float>
    public var c20: SIMD8<Float>, c21: SIMD8<Float>, c22: SIMD8<Float>
    public var c30: SIMD8<Float>, c31: SIMD8<Float>, c32: SIMD8<Float>

    /// All sums zero.
    @inlinable @inline(__always)
    public init() {
        c00 = .zero; c01 = .zero; c02 = .zero; c10 = .zero; c11 = .zero; c12 = .zero
        c20 = .zero; c21 = .zero; c22 = .zero; c30 = .zero; c31 = .zero; c32 = .zero
    }

    /// The given sums.
    @inlinable @inline(__always)
    public init(c00: SIMD8<Float>, c01: SIMD8<Float>, c02: SIMD8<Float>, c10: SIMD8<Float>, c11: SIMD8<Float>,
                c12: SIMD8<Float>, c20: SIMD8<Float>, c21: SIMD8<Float>, c22: SIMD8<Float>, c30: SIMD8<Float>,
                c31: SIMD8<Float>, c32: SIMD8<Float>) {
        self.c00 = c00; self.c01 = c01; self.c02 = c02; self.c10 = c10; self.c11 = c11; self.c12 = c12
        self.c20 = c20; self.c21 = c21; self.c22 = c22; self.c30 = c30; self.c31 = c31; self.c32 = c32
    }

    /// Adds `sum over p < depth of a_i[p] * b[p, 0..<24]` to row i (`b` packed 24 wide).
    @inlinable @inline(__always)
    public mutating func multiply(_ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>,
                                  _ a3: UnsafePointer<Float>, depth: Int, b: UnsafePointer<Float>) {
        var pb = b
        for p in 0..<depth {
            let b0 = load8(pb), b1 = load8(pb + 8), b2 = load8(pb + 16)
            var x = SIMD8<Float>(repeating: a0[p])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1); c02 = c02.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: a1[p])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1); c12 = c12.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: a2[p])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1); c22 = c22.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: a3[p])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1); c32 = c32.addingProduct(x, b2)
            pb += 24
        }
    }

    /// ``multiply(_:_:_:_:depth:b:)`` with A packed 4 wide (row i's element p at `a[4 p + i]`).
    @inlinable @inline(__always)
    public mutating func multiply(packed a: UnsafePointer<Float>, depth: Int, b: UnsafePointer<Float>) {
        var pa = a, pb = b
        for _ in 0..<depth {
            let b0 = load8(pb), b1 = load8(pb + 8), b2 = load8(pb + 16)
            var x = SIMD8<Float>(repeating: pa[0])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1); c02 = c02.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: pa[1])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1); c12 = c12.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: pa[2])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1); c22 = c22.addingProduct(x, b2)
            x = SIMD8<Float>(repeating: pa[3])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1); c32 = c32.addingProduct(x, b2)
            pa += 4
            pb += 24
        }
    }

    /// Row i's sums.
    @inlinable @inline(__always)
    public func row(_ i: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        switch i {
        case 0: return (c00, c01, c02)
        case 1: return (c10, c11, c12)
        case 2: return (c20, c21, c22)
        default: return (c30, c31, c32)
        }
    }
}

/// 4 rows x 16 columns of sums: row i in `ci0`, `ci1`.
public struct Tile4x16 {
    public var c00: SIMD8<Float>, c01: SIMD8<Float>, c10: SIMD8<Float>, c11: SIMD8<Float>
    public var c20: SIMD8<Float>, c21: SIMD8<Float>, c30: SIMD8<Float>, c31: SIMD8<Float>

    /// All sums zero.
    @inlinable @inline(__always)
    public init() {
        c00 = .zero; c01 = .zero; c10 = .zero; c11 = .zero; c20 = .zero; c21 = .zero; c30 = .zero; c31 = .zero
    }

    /// The given sums.
    @inlinable @inline(__always)
    public init(c00: SIMD8<Float>, c01: SIMD8<Float>, c10: SIMD8<Float>, c11: SIMD8<Float>,
                c20: SIMD8<Float>, c21: SIMD8<Float>, c30: SIMD8<Float>, c31: SIMD8<Float>) {
        self.c00 = c00; self.c01 = c01; self.c10 = c10; self.c11 = c11
        self.c20 = c20; self.c21 = c21; self.c30 = c30; self.c31 = c31
    }

    /// Adds `sum over p < depth of a_i[p] * b[p, 0..<16]` to row i (`b` packed 16 wide).
    @inlinable @inline(__always)
    public mutating func multiply(_ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>,
                                  _ a3: UnsafePointer<Float>, depth: Int, b: UnsafePointer<Float>) {
        var pb = b
        for p in 0..<depth {
            let b0 = load8(pb), b1 = load8(pb + 8)
            var x = SIMD8<Float>(repeating: a0[p])
            c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: a1[p])
            c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: a2[p])
            c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = SIMD8<Float>(repeating: a3[p])
            c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            pb += 16
        }
    }
}

/// 4 rows x 8 columns of sums: row i in `ci`.
public struct Tile4x8 {
    public var c0: SIMD8<Float>, c1: SIMD8<Float>, c2: SIMD8<Float>, c3: SIMD8<Float>

    /// All sums zero.
    @inlinable @inline(__always)
    public init() { c0 = .zero; c1 = .zero; c2 = .zero; c3 = .zero }

    /// The given sums.
    @inlinable @inline(__always)
    public init(c0: SIMD8<Float>, c1: SIMD8<Float>, c2: SIMD8<Float>, c3: SIMD8<Float>) {
        self.c0 = c0; self.c1 = c1; self.c2 = c2; self.c3 = c3
    }

    /// Adds `sum over p < depth of a_i[p] * b[p, 0..<8]` to row i (`b` packed 8 wide).
    @inlinable @inline(__always)
    public mutating func multiply(_ a0: UnsafePointer<Float>, _ a1: UnsafePointer<Float>, _ a2: UnsafePointer<Float>,
                                  _ a3: UnsafePointer<Float>, depth: Int, b: UnsafePointer<Float>) {
        var pb = b
        for p in 0..<depth {
            let b0 = load8(pb)
            c0 = c0.addingProduct(SIMD8<Float>(repeating: a0[p]), b0); c1 = c1.addingProduct(SIMD8<Float>(repeating: a1[p]), b0)
            c2 = c2.addingProduct(SIMD8<Float>(repeating: a2[p]), b0); c3 = c3.addingProduct(SIMD8<Float>(repeating: a3[p]), b0)
            pb += 8
        }
    }
}

import Foundation

// Seeded random numbers. Every random draw in the project goes through these generators
// so that tests, initialisations and samplers are reproducible from a single seed.

/// SplitMix64: a tiny, fast 64-bit generator, used on its own for simple needs and to
/// expand one seed into the state of ``Xoshiro256``.
///
/// ```swift
/// var rng = SplitMix64(seed: 42)
/// let x = Float.random(in: 0..<1, using: &rng)
/// ```
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The internal state; advancing it by a fixed odd constant gives the next output.
    public private(set) var state: UInt64

    /// Creates a generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// Returns the next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256**: the project's default seeded generator (256-bit state, period 2^256 - 1,
/// passes BigCrush), seeded through ``SplitMix64`` so that nearby seeds give unrelated
/// streams.
///
/// ```swift
/// var rng = Xoshiro256(seed: 7)
/// let weights = Tensor(randomNormal: [64, 3, 3, 3], standardDeviation: 0.1, using: &rng)
/// ```
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// Creates a generator whose whole sequence is determined by `seed`.
    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        s0 = mixer.next(); s1 = mixer.next(); s2 = mixer.next(); s3 = mixer.next()
    }

    /// A generator for a network whose weights are about to be loaded from a file: the
    /// random initialisations drawn from it are skipped (zeros, at the cost of the
    /// allocation), since the loaded weights replace them all. Half of loading a
    /// Lite0 model went into drawing 4.6 million normals nobody used.
    public static var weightsToBeLoaded: Xoshiro256 { Xoshiro256(s0: 0, s1: 0, s2: 0, s3: 0) }

    /// Whether this is ``weightsToBeLoaded`` (the all-zero state, which no seed gives).
    public var isWeightsToBeLoaded: Bool { s0 | s1 | s2 | s3 == 0 }

    private init(s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64) {
        self.s0 = s0; self.s1 = s1; self.s2 = s2; self.s3 = s3
    }

    /// Returns the next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    @inline(__always)
    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 &- k)) }
}

extension RandomNumberGenerator {
    /// A uniform `Float` in [0, 1) with 24 random bits (every value is exactly representable).
    @inlinable
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal sample (mean 0, standard deviation 1) by the Box-Muller transform,
    /// computed in Double; one of the pair is discarded so that the stream has no hidden state.
    public mutating func nextStandardNormal() -> Float {
        // u1 in (0, 1] so that log(u1) is finite.
        let u1 = (Double(next() >> 11) + 1) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

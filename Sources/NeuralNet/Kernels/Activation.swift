/// A pointwise activation, applied in kernel epilogues and by the autograd ops.
public enum Activation: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The identity.
    case none
    /// `max(x, 0)`.
    case relu
    /// `min(max(x, 0), 6)` (MobileNet / EfficientNet-Lite).
    case relu6
    /// `x` for `x > 0`, `slope * x` otherwise.
    case leakyRelu(slope: Float)
    /// `x * sigmoid(x)` (also called swish).
    case silu

    public var description: String {
        switch self {
        case .none: "none"
        case .relu: "relu"
        case .relu6: "relu6"
        case .leakyRelu(let slope): "leaky-relu(\(slope))"
        case .silu: "silu"
        }
    }

    /// The activation of one value.
    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return x > 0 ? x : 0
        case .relu6: return Swift.min(Swift.max(x, 0), 6)
        case .leakyRelu(let slope): return x > 0 ? x : slope * x
        case .silu: return x / (1 + _exp(-x))
        }
    }

    /// The derivative at the pre-activation value `x` (the subgradient 0 at the kinks).
    @inline(__always)
    public func derivative(_ x: Float) -> Float {
        switch self {
        case .none: return 1
        case .relu: return x > 0 ? 1 : 0
        case .relu6: return x > 0 && x < 6 ? 1 : 0
        case .leakyRelu(let slope): return x > 0 ? 1 : slope
        case .silu:
            let s = 1 / (1 + _exp(-x))
            return s * (1 + x * (1 - s))
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _exp(_ x: Float) -> Float { Glibc.expf(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _exp(_ x: Float) -> Float { Darwin.expf(x) }
#endif

#if canImport(Glibc)
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
#endif

/// A named block of Float32 values with a shape: the unit every reader and importer in
/// this module produces, kept free of any tensor library so that loading weights does
/// not depend on the compute engine.
///
/// Layout: `scalars` holds the values in row-major (C) order, last dimension fastest;
/// `scalars.count` equals the product of `shape` (1 for a scalar, shape `[]`).
public struct NamedTensor: Sendable, Equatable {
    /// The parameter's name, e.g. `_blocks.0._depthwise_conv.weight`.
    public var name: String
    /// The dimensions, outermost first, e.g. `[32, 3, 3, 3]` for a convolution `[O, I, KH, KW]`.
    public var shape: [Int]
    /// The values in row-major order, converted to Float32.
    public var scalars: [Float]
    /// The element type the source file stored before conversion to Float32.
    public var sourceType: SourceScalarType

    /// Creates a tensor; `scalars.count` must equal the product of `shape`.
    ///
    /// - Parameters:
    ///   - name: the parameter's name.
    ///   - shape: the dimensions, outermost first.
    ///   - scalars: row-major values.
    ///   - sourceType: what the source stored (default `.float32`).
    public init(name: String, shape: [Int], scalars: [Float], sourceType: SourceScalarType = .float32) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == scalars.count,
                     "NamedTensor \(name): shape \(shape) does not hold \(scalars.count) scalars")
        self.name = name
        self.shape = shape
        self.scalars = scalars
        self.sourceType = sourceType
    }

    /// The number of elements: the product of `shape`.
    public var elementCount: Int { scalars.count }
}

/// The element type a file stored, kept as a note because every reader converts to Float32.
///
/// Conversions: `float16`, `bfloat16` exactly; `float64` rounded to nearest; integers
/// exactly up to magnitude 2^24 and rounded to nearest beyond; `bool` as 0 or 1.
public enum SourceScalarType: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    case float32, float16, bfloat16, float64
    case int64, int32, int16, int8, uint8, bool

    /// Bytes per element in the source file.
    public var byteWidth: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Whether the source held floating-point values.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        default: return false
        }
    }

    public var description: String { rawValue }
}

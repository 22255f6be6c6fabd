// A learned map from power-transformed backbone embeddings to the space the prototype
// classifier compares in, trained episodically (see HeadTraining.swift) on classes other
// than the ones it will classify, and stored in model files.
import ModelFile
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A projection head: `y = s ⊙ x + U (V x) + b` (residual form) or `y = V x + b` (plain form),
/// applied to the power-transformed raw embedding `x` before centring and normalisation.
///
/// Shapes: `x` `[D]`; `scale` `s` `[D]`; `down` `V` `[r, D]` row-major; `up` `U` `[D, r]`
/// row-major (residual form only); `bias` `b` `[D]` (residual) or `[r]` (plain).
///
/// The residual form starts as the identity (`s = 1`, `U = 0`, `b = 0`), so an untrained
/// head leaves the classifier exactly as it was, and training only has to learn a
/// correction: a per-feature weighting and a rank-`r` update. With `r = 0` it only
/// reweights features.
public struct ProjectionHead: Sendable, Equatable, Codable {
    /// The raw embedding width `D` the head takes.
    public let inputDimension: Int
    /// The rank `r` of the residual update, or the output width of the plain form.
    public let rank: Int
    /// Whether the head is `s ⊙ x + U V x + b` (true) or `V x + b` (false).
    public let residual: Bool
    /// The power-transform exponent the head was trained after; a classifier that uses the
    /// head applies this exponent, whatever its own setting (see ``EmbeddingTransform``).
    public let power: Float
    /// Per-feature scale `s`, `[D]` (residual form; empty otherwise).
    public var scale: [Float]
    /// `V`, `[r, D]` row-major.
    public var down: [Float]
    /// `U`, `[D, r]` row-major (residual form; empty otherwise).
    public var up: [Float]
    /// `b`, `[outputDimension]`.
    public var bias: [Float]

    /// The width of the projected vectors.
    public var outputDimension: Int { residual ? inputDimension : rank }

    /// A head from its parts; the shapes must fit (see the type's documentation).
    public init(inputDimension: Int, rank: Int, residual: Bool, power: Float,
                scale: [Float], down: [Float], up: [Float], bias: [Float]) {
        let d = inputDimension
        precondition(d > 0 && rank >= 0 && (residual || rank > 0), "ProjectionHead: input \(d), rank \(rank), residual \(residual)")
        precondition(down.count == rank * d, "ProjectionHead: down has \(down.count) values, [\(rank), \(d)] needs \(rank * d)")
        if residual {
            precondition(scale.count == d && up.count == d * rank && bias.count == d,
                         "ProjectionHead: scale \(scale.count), up \(up.count), bias \(bias.count) for D \(d), rank \(rank)")
        } else {
            precondition(scale.isEmpty && up.isEmpty && bias.count == rank,
                         "ProjectionHead: plain head needs no scale/up (got \(scale.count)/\(up.count)) and bias of \(rank) (got \(bias.count))")
        }
        self.inputDimension = d; self.rank = rank; self.residual = residual; self.power = power
        self.scale = scale; self.down = down; self.up = up; self.bias = bias
    }

    /// The identity head of the residual form, with `V` drawn small and random so that
    /// training can move `U` away from zero (with `V = 0` too, both gradients would vanish).
    ///
    /// - Parameters:
    ///   - dimension: `D`.
    ///   - rank: `r`.
    ///   - power: the exponent of the power transform in front of the head.
    public static func identity<G: RandomNumberGenerator>(dimension: Int, rank: Int, power: Float,
                                                           using generator: inout G) -> ProjectionHead {
        let bound = 1 / Float(dimension).squareRoot()
        return ProjectionHead(inputDimension: dimension, rank: rank, residual: true, power: power,
                              scale: [Float](repeating: 1, count: dimension),
                              down: (0..<(rank * dimension)).map { _ in Float.random(in: -bound..<bound, using: &generator) },
                              up: [Float](repeating: 0, count: dimension * rank), bias: [Float](repeating: 0, count: dimension))
    }

    /// A plain `V x + b` head of output width `dimension`, initialised like PyTorch's
    /// `nn.Linear` (uniform in ±1/sqrt(D)).
    public static func plain<G: RandomNumberGenerator>(inputDimension: Int, outputDimension: Int, power: Float,
                                                        using generator: inout G) -> ProjectionHead {
        let bound = 1 / Float(inputDimension).squareRoot()
        return ProjectionHead(inputDimension: inputDimension, rank: outputDimension, residual: false, power: power,
                              scale: [], down: (0..<(outputDimension * inputDimension)).map { _ in Float.random(in: -bound..<bound, using: &generator) },
                              up: [], bias: [Float](repeating: 0, count: outputDimension))
    }

    /// Projects one power-transformed embedding `[D]` to `[outputDimension]`.
    public func project(_ x: [Float]) -> [Float] {
        precondition(x.count == inputDimension, "ProjectionHead: an embedding of \(x.count) values for a head of \(inputDimension)")
        let d = inputDimension
        // V x: r dot products of length D.
        var hidden = [Float](repeating: 0, count: rank)
        down.withUnsafeBufferPointer { v in
            for i in 0..<rank {
                var s: Float = 0
                let row = v.baseAddress! + i * d
                for t in 0..<d { s += row[t] * x[t] }
                hidden[i] = s
            }
        }
        guard residual else { return zip(hidden, bias).map { $0 + $1 } }
        var y = [Float](repeating: 0, count: d)
        up.withUnsafeBufferPointer { u in
            for t in 0..<d {
                var s = scale[t] * x[t] + bias[t]
                let row = u.baseAddress! + t * rank
                for i in 0..<rank { s += row[i] * hidden[i] }
                y[t] = s
            }
        }
        return y
    }

    // MARK: - Model files

    /// The value of `"kind"` in the metadata of a file holding only a head.
    public static let kind = "projection-head"

    /// The head's tensors, named `prefix` + `scale`, `down.weight`, `up.weight`, `bias`
    /// (`scale` and `up.weight` only in the residual form), in our row-major layouts.
    public func tensors(prefix: String = "head.") -> [NamedTensor] {
        var out = [NamedTensor(name: prefix + "down.weight", shape: [rank, inputDimension], scalars: down),
                   NamedTensor(name: prefix + "bias", shape: [outputDimension], scalars: bias)]
        if residual {
            out.append(NamedTensor(name: prefix + "scale", shape: [inputDimension], scalars: scale))
            out.append(NamedTensor(name: prefix + "up.weight", shape: [inputDimension, rank], scalars: up))
        }
        return out
    }

    /// The metadata that, with ``tensors(prefix:)``, describes the head: its form, widths and
    /// power (stored under `"head"` so that it can sit beside other parts of a model file).
    public var metadata: [String: JSONValue] {
        ["head": .object([
            "form": .string(residual ? "residual" : "plain"),
            "input_dimension": .number(Double(inputDimension)),
            "rank": .number(Double(rank)),
            "power": .number(Double(power)),
        ])]
    }

    /// Rebuilds a head from model-file metadata and tensors.
    ///
    /// - Parameters:
    ///   - metadata: the file's metadata (the `"head"` object is read).
    ///   - tensors: the file's tensors; those named `prefix` + ... are used.
    ///   - path: the file, for error messages.
    /// - Throws: ``ProjectionHeadError/notAHead(path:reason:)`` when a field or tensor is
    ///   missing or a shape does not fit.
    public init(metadata: [String: JSONValue], tensors: [NamedTensor], prefix: String = "head.",
                path: String) throws(ProjectionHeadError) {
        guard let head = metadata["head"]?.objectValue else { throw .notAHead(path: path, reason: "the metadata has no \"head\" object") }
        guard let form = head["form"]?.stringValue, form == "residual" || form == "plain",
              let d = head["input_dimension"]?.intValue, d > 0, let r = head["rank"]?.intValue, r >= 0,
              let power = head["power"]?.numberValue, power > 0 else {
            throw .notAHead(path: path, reason: "the \"head\" metadata needs form (residual or plain), input_dimension, rank and power; found \(head)")
        }
        let residual = form == "residual"
        if !residual && r == 0 { throw .notAHead(path: path, reason: "a plain head of rank 0 has no output") }
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func tensor(_ name: String, _ shape: [Int]) throws(ProjectionHeadError) -> [Float] {
            guard let t = byName[prefix + name] else { throw .notAHead(path: path, reason: "the tensor \(prefix + name) is missing") }
            guard t.shape == shape else {
                throw .notAHead(path: path, reason: "\(prefix + name) has shape \(t.shape), a \(form) head of D \(d), rank \(r) needs \(shape)")
            }
            return t.scalars
        }
        let down = try tensor("down.weight", [r, d])
        let bias = try tensor("bias", [residual ? d : r])
        let scale = residual ? try tensor("scale", [d]) : []
        let up = residual ? try tensor("up.weight", [d, r]) : []
        self.init(inputDimension: d, rank: r, residual: residual, power: Float(power), scale: scale, down: down, up: up, bias: bias)
    }

    /// Writes the head to its own model file (`"kind": "projection-head"`), with `extra`
    /// metadata (e.g. what it was trained on) beside the head's own.
    public func save(to path: String, extra: [String: JSONValue] = [:]) throws(ProjectionHeadError) {
        var meta = extra
        meta["kind"] = .string(Self.kind)
        for (key, value) in metadata { meta[key] = value }
        do { try ModelFile(metadata: meta, tensors: tensors()).write(toFile: path) } catch { throw .modelFile(error) }
    }

    /// Reads a head written by ``save(to:extra:)``, with the file's whole metadata.
    public static func load(from path: String) throws(ProjectionHeadError) -> (head: ProjectionHead, metadata: [String: JSONValue]) {
        let file: ModelFile
        do { file = try ModelFile(contentsOfFile: path) } catch { throw .modelFile(error) }
        guard file.metadata["kind"]?.stringValue == kind else {
            throw .notAHead(path: path, reason: "its kind is \(file.metadata["kind"]?.description ?? "not given"), not \(kind)")
        }
        return (try ProjectionHead(metadata: file.metadata, tensors: file.tensors, path: path), file.metadata)
    }
}

/// Why a projection head could not be read or written. Messages name the file.
public enum ProjectionHeadError: Error, CustomStringConvertible, Sendable {
    /// The model file itself could not be read or written.
    case modelFile(ModelFileError)
    /// The model file is valid but holds no usable head.
    case notAHead(path: String, reason: String)

    public var description: String {
        switch self {
        case .modelFile(let error): return error.description
        case .notAHead(let path, let reason):
            return "\(path): not a projection head (\(reason)); train one with `vinspect fewshot-train`"
        }
    }
}

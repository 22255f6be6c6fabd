import ModelFile
import NeuralNet
import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// Why a backbone could not be imported, saved or loaded. Messages name the file.
public enum BackboneError: Error, CustomStringConvertible, Sendable {
    /// The weights file could not be read or parsed.
    case weights(WeightImportError)
    /// The weights do not fit the architecture.
    case mapping(WeightMappingError)
    /// Our model file could not be read or written.
    case modelFile(ModelFileError)
    /// The model file is valid but holds no backbone this build knows.
    case notABackbone(path: String, reason: String)

    public var description: String {
        switch self {
        case .weights(let error): return error.description
        case .mapping(let error): return error.description
        case .modelFile(let error): return error.description
        case .notABackbone(let path, let reason):
            return "\(path): not a backbone this build can use (\(reason)); import one with `vinspect backbone import`"
        }
    }
}

/// Importing pretrained weights into a backbone and keeping backbones in model files.
///
/// A backbone file is an ordinary model file (see `ModelFile`) whose metadata has
/// `"kind": "backbone"`, the architecture and its options, and whose tensors are the
/// backbone's state in our layout (convolutions HWIO), batch norms unfolded so that the
/// network can still be fine-tuned.
@_spi(Engine) public enum BackboneStore {
    /// Reads a PyTorch checkpoint (zip or legacy) or safetensors file into a new backbone.
    ///
    /// - Parameters:
    ///   - path: the weights file.
    ///   - architecture: the network the weights are for.
    ///   - naming: how the file names tensors; nil detects torchvision/EfficientNet-PyTorch
    ///     or timm.
    public static func importWeights(from path: String, architecture: BackboneArchitecture,
                                     naming: WeightNaming? = nil) throws(BackboneError) -> any Backbone {
        let tensors: [NamedTensor]
        do { tensors = try WeightImporter.load(contentsOfFile: path) } catch { throw .weights(error) }
        let isTimm = naming == .timm || (naming == nil && tensors.contains { $0.name == "conv_stem.weight" })
        var generator = Xoshiro256(seed: 0)
        let classes = tensors.first { ["fc.weight", "_fc.weight", "classifier.weight"].contains($0.name) }?.shape.first ?? 1000
        let network: any Backbone
        if let variant = architecture.efficientNetLiteVariant {
            // timm's efficientnet_lite0 pads symmetrically; the original checkpoints use TF "SAME".
            // (timm's ports of the TF weights, tf_efficientnet_liteN, pad "SAME" under timm
            // names: the file does not tell them apart, and none has been checked here.)
            network = EfficientNetLite(variant, classes: classes, samePadding: !isTimm, using: &generator)
        } else {
            network = architecture.make(classes: classes)
        }
        do { try network.loadPyTorchWeights(tensors, naming: isTimm ? .timm : nil, path: path) } catch { throw .mapping(error) }
        return network
    }

    /// The model-file metadata that describes a backbone.
    public static func metadata(of backbone: any Backbone, source: String?) -> [String: JSONValue] {
        var meta: [String: JSONValue] = [
            "kind": .string("backbone"),
            "architecture": .string(backbone.architecture),
            "input_mean": .array(backbone.inputNormalization.mean.map { .number(Double($0)) }),
            "input_std": .array(backbone.inputNormalization.std.map { .number(Double($0)) }),
            "created_by": .string("vinspect \(VisualInspectionVersion.string)"),
            "created": .string(isoDate()),
        ]
        if let lite = backbone as? EfficientNetLite { meta["padding"] = .string(lite.samePadding ? "same" : "symmetric") }
        if let source { meta["source"] = .string(source) }
        return meta
    }

    /// The backbone's state as model-file tensors, names prefixed with `prefix`.
    public static func tensors(of backbone: any Backbone, prefix: String = "") -> [NamedTensor] {
        backbone.namedState.map { NamedTensor(name: prefix + $0.name, shape: $0.variable.value.shape, scalars: $0.variable.value.scalars) }
    }

    /// Writes a backbone to a model file.
    ///
    /// - Parameters:
    ///   - source: where the weights came from (a checkpoint's file name).
    ///   - extraMetadata: more metadata keys, e.g. how the weights were trained; they
    ///     replace the standard keys of the same name.
    public static func save(_ backbone: any Backbone, to path: String, source: String? = nil,
                            extraMetadata: [String: JSONValue] = [:]) throws(BackboneError) {
        let meta = metadata(of: backbone, source: source).merging(extraMetadata) { _, new in new }
        let file = ModelFile(metadata: meta, tensors: tensors(of: backbone))
        do { try file.write(toFile: path) } catch { throw .modelFile(error) }
    }

    /// Rebuilds a backbone from model-file metadata and tensors (names after `prefix`).
    public static func backbone(metadata: [String: JSONValue], tensors: [NamedTensor], prefix: String = "",
                                path: String) throws(BackboneError) -> any Backbone {
        guard let name = metadata["architecture"]?.stringValue, let architecture = BackboneArchitecture(rawValue: name) else {
            throw .notABackbone(path: path, reason: "unknown architecture \(metadata["architecture"]?.description ?? "none")")
        }
        let classes = tensors.first { $0.name == prefix + "fc.weight" || $0.name == prefix + "_fc.weight" }?.shape.first ?? 1000
        // Every weight is replaced by the file's (loadState checks that none is missing), so
        // the network is built without drawing initial weights.
        var generator = Xoshiro256.weightsToBeLoaded
        let network: any Backbone
        if let variant = architecture.efficientNetLiteVariant {
            network = EfficientNetLite(variant, classes: classes, samePadding: metadata["padding"]?.stringValue != "symmetric",
                                       using: &generator)
        } else {
            network = architecture.make(classes: classes, using: &generator)
        }
        var state: [String: Tensor] = [:]
        for tensor in tensors where tensor.name.hasPrefix(prefix) {
            state[String(tensor.name.dropFirst(prefix.count))] = Tensor(tensor.scalars, shape: tensor.shape)
        }
        do { try network.loadState(state) } catch {
            throw .notABackbone(path: path, reason: error.description)
        }
        return network
    }

    /// Reads a backbone written by ``save(_:to:source:extraMetadata:)``.
    public static func load(from path: String) throws(BackboneError) -> any Backbone {
        let file: ModelFile
        do { file = try ModelFile(contentsOfFile: path) } catch { throw .modelFile(error) }
        guard file.metadata["kind"]?.stringValue == "backbone" else {
            throw .notABackbone(path: path, reason: "its kind is \(file.metadata["kind"]?.description ?? "not given")")
        }
        return try backbone(metadata: file.metadata, tensors: file.tensors, path: path)
    }
}

/// The current time as an ISO 8601 UTC string, e.g. `2026-11-30T05:07:25Z`.
func isoDate() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

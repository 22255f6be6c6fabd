// Loading PyTorch-layout weights into the backbones: torchvision's ResNet-18,
// EfficientNet-PyTorch's and timm's EfficientNet-Lite. Names are mapped onto ours
// (which are EfficientNet-PyTorch's and torchvision's own), convolution weights are
// transposed from PyTorch's OIHW to our HWIO, and every shape is checked.
import ModelFile
import TensorCore

/// Weights that do not fit the chosen architecture.
public struct WeightMappingError: Error, CustomStringConvertible, Sendable {
    /// The weights file.
    public let path: String
    /// One line per problem: a missing tensor, a tensor the architecture does not have, or
    /// the two shapes that disagree.
    public let problems: [String]
    public let architecture: String

    public var description: String {
        let shown = problems.prefix(6).joined(separator: "; ")
        let more = problems.count > 6 ? " (and \(problems.count - 6) more)" : ""
        return "\(path): these weights do not fit \(architecture): \(shown)\(more); check --arch matches the checkpoint"
    }
}

/// How a checkpoint names its tensors.
public enum WeightNaming: String, Sendable {
    /// torchvision (ResNet) or EfficientNet-PyTorch: the names our backbones use.
    case native
    /// timm's EfficientNet-Lite (`conv_stem`, `blocks.S.J.conv_dw`, `classifier`).
    case timm
}

/// The EfficientNet-PyTorch name of a timm EfficientNet-Lite tensor, or nil if it has no
/// counterpart (exposed for tests and tools that list the mapping).
///
/// timm numbers blocks per stage (`blocks.S.J`), EfficientNet-PyTorch across the network
/// (`_blocks.N`), so the mapping depends on the variant's repeats.
public func timmLiteName(_ name: String, variant: EfficientNetLite.Variant = .lite0) -> String? {
    timmLiteName(name, stages: variant.stages)
}

func timmLiteName(_ name: String, stages: [EfficientNetLite.Stage]) -> String? {
    let top: [String: String] = ["conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1",
                                 "classifier": "_fc"]
    let parts = name.split(separator: ".").map(String.init)
    if parts.count == 2, let mapped = top[parts[0]] { return mapped + "." + parts[1] }
    guard parts.count == 5, parts[0] == "blocks", let stage = Int(parts[1]), let index = Int(parts[2]),
          stage < stages.count, index < stages[stage].repeats else { return nil }
    let global = stages.prefix(stage).reduce(0) { $0 + $1.repeats } + index
    // Stage 0 is a depthwise-separable block (conv_dw, bn1, conv_pw, bn2); the rest are
    // inverted residuals (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3).
    let units: [String: String] = stage == 0
        ? ["conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"]
        : ["conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
           "conv_pwl": "_project_conv", "bn3": "_bn2"]
    guard let unit = units[parts[3]] else { return nil }
    return "_blocks.\(global).\(unit).\(parts[4])"
}

extension Backbone {
    /// Replaces the network's weights with PyTorch-layout tensors.
    ///
    /// Convolution weights `[O, I, KH, KW]` become `[KH, KW, I, O]`; batch-norm counters
    /// (`num_batches_tracked`) are ignored; a `module.` prefix (DataParallel) is removed.
    ///
    /// - Parameters:
    ///   - tensors: the checkpoint's tensors, e.g. from `WeightImporter.load(contentsOfFile:)`.
    ///   - naming: how the checkpoint names them; `nil` detects it.
    ///   - path: the file, for error messages.
    /// - Throws: ``WeightMappingError`` listing every missing, unknown or misshapen tensor;
    ///   the network is unchanged then.
    public func loadPyTorchWeights(_ tensors: [NamedTensor], naming: WeightNaming? = nil, path: String) throws(WeightMappingError) {
        let own = Dictionary(namedState.map { ($0.name, $0.variable) }, uniquingKeysWith: { a, _ in a })
        let naming = naming ?? (tensors.contains { $0.name.hasSuffix("conv_stem.weight") && !$0.name.hasSuffix("_conv_stem.weight") } ? .timm : .native)
        var mapped: [String: Tensor] = [:]
        var problems: [String] = []
        // Only an EfficientNet-Lite has timm names; for another network they all come out unknown.
        let liteStages = (self as? EfficientNetLite)?.stages ?? EfficientNetLite.Variant.lite0.stages
        for tensor in tensors {
            var name = tensor.name
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            if name.hasSuffix("num_batches_tracked") { continue }
            if naming == .timm {
                guard let renamed = timmLiteName(name, stages: liteStages) else { problems.append("\(tensor.name) is not part of \(architecture)"); continue }
                name = renamed
            }
            guard let variable = own[name] else { problems.append("\(tensor.name) is not part of \(architecture)"); continue }
            var value = Tensor(tensor.scalars, shape: tensor.shape)
            if tensor.shape.count == 4 { value = oihwToHWIO(value) }
            if value.shape != variable.value.shape {
                problems.append("\(tensor.name) has shape \(tensor.shape), \(architecture) needs \(hwioToOIHWShape(variable.value.shape))")
                continue
            }
            mapped[name] = value
        }
        for name in own.keys.sorted() where mapped[name] == nil && !problems.contains(where: { $0.hasPrefix(name + " ") }) {
            problems.append("\(name) is missing")
        }
        if !problems.isEmpty { throw WeightMappingError(path: path, problems: problems, architecture: architecture) }
        for (name, value) in mapped { own[name]!.value = value }
    }
}

/// `[O, I, KH, KW]` to `[KH, KW, I, O]`.
public func oihwToHWIO(_ w: Tensor) -> Tensor {
    let (o, i, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let source = w.scalars
    return Tensor(uninitializedShape: [kh, kw, i, o]) { out in
        for a in 0..<o { for b in 0..<i { for y in 0..<kh { for x in 0..<kw {
            out[((y * kw + x) * i + b) * o + a] = source[((a * i + b) * kh + y) * kw + x]
        } } } }
    }
}

/// `[KH, KW, I, O]` to `[O, I, KH, KW]`, the inverse of ``oihwToHWIO(_:)``.
public func hwioToOIHW(_ w: Tensor) -> Tensor {
    let (kh, kw, i, o) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let source = w.scalars
    return Tensor(uninitializedShape: [o, i, kh, kw]) { out in
        for a in 0..<o { for b in 0..<i { for y in 0..<kh { for x in 0..<kw {
            out[((a * i + b) * kh + y) * kw + x] = source[((y * kw + x) * i + b) * o + a]
        } } } }
    }
}

func hwioToOIHWShape(_ shape: [Int]) -> [Int] {
    shape.count == 4 ? [shape[3], shape[2], shape[0], shape[1]] : shape
}

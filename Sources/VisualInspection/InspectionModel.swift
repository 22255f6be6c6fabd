// The trained inspection model: one backbone shared by the anomaly scorer and the defect
// classifier, and how the whole of it is kept in one model file.
import Anomaly
import FewShot
import Foundation
import ModelFile
import NeuralNet
import TensorCore

/// Why an inspection model could not be read, written or built. Every message names the
/// file (when there is one) and says what to do.
public enum InspectionModelError: Error, CustomStringConvertible, Sendable {
    /// The model file itself could not be read or written (missing, damaged, truncated).
    case modelFile(ModelFileError)
    /// A valid model file that is not an inspection model (e.g. a backbone file).
    case notAnInspectionModel(path: String, kind: String)
    /// An inspection model whose content does not fit together.
    case invalid(path: String, detail: String)
    /// The backbone stored in the model could not be rebuilt.
    case backbone(BackboneError)
    /// Training was asked for with nothing to learn from.
    case nothingToTrain(detail: String)
    /// A class name that cannot name a defect type (see ``InspectionModel/classNameProblem(_:)``).
    case invalidClassName(name: String, problem: String)
    /// The running CPU lacks instruction-set extensions this build of the library was
    /// compiled for: running the kernels would end in an illegal-instruction signal.
    case unsupportedCPU(CPUFeatureError)

    public var description: String {
        switch self {
        case .modelFile(let error): return error.description
        case .notAnInspectionModel(let path, let kind):
            return "\(path): this is a \(kind) file, not an inspection model; build one with `vinspect train --good DIR --output MODEL`"
        case .invalid(let path, let detail):
            return "\(path): damaged or incompatible inspection model (\(detail)); train it again with `vinspect train`"
        case .backbone(let error): return error.description
        case .nothingToTrain(let detail): return "nothing to train: \(detail)"
        case .invalidClassName(_, let problem):
            return "\(problem); choose another name (--name NAME with --add-class, or rename the class folder)"
        case .unsupportedCPU(let error): return error.description
        }
    }

    /// Checks once per process that this CPU can run the build's kernels (the entry points
    /// that load or train models call it, so a host program copied to an older PC gets this
    /// error instead of a crash).
    static func checkCPU() throws(InspectionModelError) {
        if let error = cpuProblem { throw .unsupportedCPU(error) }
    }

    private static let cpuProblem: CPUFeatureError? = {
        let missing = CPUFeatures.missingFeatures
        return missing.isEmpty ? nil : CPUFeatureError(missing: missing)
    }()
}

/// The defect classifier part of a model: the prototype classifier and how its embeddings
/// are taken from the backbone.
package struct DefectClassifier: Sendable {
    /// All classes, the OK class (``InspectionModel/okClassName``) included when it was given.
    package var classifier: PrototypeClassifier
    /// How embeddings are pooled from the backbone.
    package var embedding: EmbeddingSource

    package init(classifier: PrototypeClassifier, embedding: EmbeddingSource) {
        self.classifier = classifier
        self.embedding = embedding
    }

    /// The classes that are defect types (all but the OK class).
    package var defectClassNames: [String] { classifier.classNames.filter { !InspectionModel.isOKClass($0) } }

    /// The classifier restricted to the defect types, with the same transform and
    /// rejection threshold (nil when there is no defect class).
    var defectTypes: PrototypeClassifier? {
        let classes = classifier.classes.filter { !InspectionModel.isOKClass($0.name) }
        guard !classes.isEmpty else { return nil }
        return PrototypeClassifier(classes: classes, transform: classifier.transform, scale: classifier.scale,
                                   rejectionThreshold: classifier.rejectionThreshold)
    }
}

/// Everything `vinspect train` learns, in memory: the backbone, the preprocessing, the
/// anomaly scorer (from good images) and the defect classifier (from a few images per
/// defect type). Either part may be missing, not both.
///
/// Read and write it with ``init(contentsOfFile:)`` and ``write(toFile:)``; inspect with
/// an ``Inspector``.
public struct InspectionModel: Sendable {
    /// The backbone's description (architecture, input normalisation, source).
    package var backboneMetadata: [String: JSONValue]
    /// The backbone's state (unfolded batch norms), kept to write the model again.
    package var backboneTensors: [NamedTensor]
    /// The backbone in inference form.
    package var backbone: FrozenBackbone
    /// How each image becomes network input (region of interest, size, normalisation).
    public var preprocessing: Preprocessing
    /// The anomaly scorer, when good images were given: one scorer, or several combined
    /// (see ``AnomalyEnsemble``).
    package var anomaly: AnomalyEnsemble?
    /// The first member of ``anomaly`` (for a single-scorer model, the scorer).
    package var scorer: AnomalyScorer? { anomaly?.members.first }
    /// The number of good images the scorer learnt from.
    public var goodImageCount: Int
    /// The defect classifier, when class folders were given.
    package var classifier: DefectClassifier?
    /// Regions of the mask smaller than this many pixels (of the original image) are not
    /// reported as boxes.
    public var minimumDefectArea: Int
    /// When the model was built (ISO 8601) and by which version.
    public var created: String
    /// The tool and version that built it, e.g. `vinspect 0.1.0`.
    public var createdBy: String

    /// The name of the class folder that holds good parts.
    public static let okClassName = "good"

    /// Whether a class name denotes good parts (`good`, `ok`, any case).
    public static func isOKClass(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower == "good" || lower == "ok"
    }

    /// What is wrong with a class name, or nil when it can name a class. A name appears in
    /// reports, in `vinspect info` and as a folder name, so it must not be empty or only
    /// whitespace, nor contain `/` or control characters (line breaks, tabs, ...); and it
    /// must not be `unknown`, which is what the inspector reports for a defect unlike every
    /// known type.
    ///
    /// ```swift
    /// InspectionModel.classNameProblem("scratch")  // nil
    /// InspectionModel.classNameProblem("a/b")      // "class name \"a/b\" contains \"/\""
    /// ```
    public static func classNameProblem(_ name: String) -> String? {
        let quoted = name.debugDescription
        if name.isEmpty { return "class name \(quoted) is empty" }
        if name.allSatisfy(\.isWhitespace) { return "class name \(quoted) is only whitespace" }
        if let control = name.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            return "class name \(quoted) contains a control character (U+\(String(format: "%04X", control.value)))"
        }
        if name.contains("/") { return "class name \(quoted) contains \"/\"" }
        if name.lowercased() == "unknown" {
            return "class name \(quoted) is reserved: the inspector reports `unknown` for a defect unlike every known type"
        }
        return nil
    }

    package init(backboneMetadata: [String: JSONValue], backboneTensors: [NamedTensor], backbone: FrozenBackbone,
                preprocessing: Preprocessing, anomaly: AnomalyEnsemble?, goodImageCount: Int, classifier: DefectClassifier?,
                minimumDefectArea: Int = 16) {
        self.backboneMetadata = backboneMetadata
        self.backboneTensors = backboneTensors
        self.backbone = backbone
        self.preprocessing = preprocessing
        self.anomaly = anomaly
        self.goodImageCount = goodImageCount
        self.classifier = classifier
        self.minimumDefectArea = minimumDefectArea
        created = isoDate()
        createdBy = "vinspect \(VisualInspectionVersion.string)"
    }

    /// Whether the model can pass a part at all: it needs an anomaly scorer (good images) or
    /// a classifier with an OK class (``isOKClass(_:)``). A model built from defect classes
    /// only can name defect types but reports every image as a defect.
    public var canPassParts: Bool {
        anomaly != nil || classifier?.classifier.classNames.contains(where: InspectionModel.isOKClass) == true
    }

    /// The architecture name of the backbone, e.g. `efficientnet-lite0`.
    public var architecture: String { backbone.architecture }

    /// The defect types the classifier names (without the OK class); empty without one.
    public var defectTypes: [String] { classifier?.defectClassNames ?? [] }

    /// The raw anomaly threshold (see ``InspectionResult/threshold``); nil without an
    /// anomaly scorer.
    public var threshold: Float? { anomaly?.calibration.threshold }

    /// What the engine chose for the anomaly scorer's settings and why, when it chose them
    /// (``TrainingOptions/automaticScorer``); nil otherwise.
    public var scorerChoice: ScorerChoice? { anomaly?.choice }

    // MARK: - Model file

    /// The `kind` of an inspection model file's metadata.
    public static let kind = "inspection-model"
    /// The layout version of the metadata and tensors below; a newer one is refused.
    /// Version 2 added the Gaussian-mode scorer, version 3 ensembles of scorers; files
    /// without them are still written as version 1, so that older builds keep reading them.
    public static let layoutVersion = 3

    /// Reads a model written by ``write(toFile:)``.
    ///
    /// Layout (inside the generic model file, see `ModelFile`): metadata `kind`
    /// `inspection-model`, `layout` 1, `backbone` (the backbone file's metadata),
    /// `preprocessing`, optional `anomaly` (scorer options, calibration, bank facts) and
    /// `classifier` (transform, scale, rejection threshold, embedding, class names and shot
    /// counts); tensors `backbone.<state name>`, `anomaly.bank` `[B, D]` and
    /// `classifier.<i>` `[K_i, D]` (the transformed support embeddings of class `i`).
    ///
    /// A scorer in Gaussian mode (`options.mode` `gaussian`, layout 2) has instead of the
    /// bank: metadata `anomaly.grid_width`/`grid_height` (`h*w = P` positions),
    /// `gaussian_channels` (the `C` patch-feature channels modelled, ascending) and
    /// `gaussian_samples`; tensors `anomaly.mean` `[P, C]` and `anomaly.inverse_cholesky`
    /// `[P, C (C + 1) / 2]` (each position's `L^-1`, lower triangle packed by rows, with
    /// `L L^T` the regularised covariance). Files without `mode` are memory-bank scorers.
    ///
    /// Scorers on the good parts' scale (layout 3: an ensemble, or one scorer the engine
    /// chose itself) have `anomaly.members`, an array of such scorer descriptions each with a
    /// `normalizer` (`mean`, `spread`), its tensors named `anomaly.<i>.bank` (or
    /// `anomaly.<i>.mean`, `anomaly.<i>.inverse_cholesky`), the combined
    /// `anomaly.calibration` (with `scale`) and, when the engine chose the settings,
    /// `anomaly.choice` (`ScorerChoice`).
    ///
    /// - Throws: ``InspectionModelError`` naming the file.
    public init(contentsOfFile path: String) throws(InspectionModelError) {
        try InspectionModelError.checkCPU()
        let file: ModelFile
        do { file = try ModelFile(contentsOfFile: path) } catch { throw .modelFile(error) }
        let meta = file.metadata
        guard meta["kind"]?.stringValue == InspectionModel.kind else {
            throw .notAnInspectionModel(path: path, kind: meta["kind"]?.stringValue ?? "model")
        }
        guard let layout = meta["layout"]?.intValue, layout <= InspectionModel.layoutVersion else {
            throw .invalid(path: path, detail: "layout \(meta["layout"]?.description ?? "missing") is newer than this build reads (\(InspectionModel.layoutVersion)); update vinspect")
        }
        func invalid(_ detail: String) -> InspectionModelError { .invalid(path: path, detail: detail) }
        guard let backboneMeta = meta["backbone"]?.objectValue else { throw invalid("no backbone description") }
        var tensorsByName: [String: NamedTensor] = [:]
        for tensor in file.tensors { tensorsByName[tensor.name] = tensor }
        let backboneTensors = file.tensors.filter { $0.name.hasPrefix("backbone.") }
            .map { NamedTensor(name: String($0.name.dropFirst("backbone.".count)), shape: $0.shape, scalars: $0.scalars) }
        let network: any Backbone
        do { network = try BackboneStore.backbone(metadata: backboneMeta, tensors: backboneTensors, path: path) } catch {
            throw .backbone(error)
        }
        let frozen = network.frozen()
        let preprocessing: Preprocessing = try decodeMetadata(meta["preprocessing"], "preprocessing", path: path)
        guard preprocessing.size >= 16, preprocessing.size <= 4096, preprocessing.mean.count == 3, preprocessing.std.count == 3,
              preprocessing.aspectRatio.isFinite,
              preprocessing.aspectRatio >= 1 / InputGeometry.maximumAspectRatio - 0.01,
              preprocessing.aspectRatio <= InputGeometry.maximumAspectRatio + 0.01 else {
            throw invalid("preprocessing out of range")
        }

        var anomaly: AnomalyEnsemble?
        var goodCount = 0
        if let part = meta["anomaly"]?.objectValue {
            if let memberParts = part["members"]?.arrayValue {
                // An ensemble (layout 3): members under anomaly.<i>., a normaliser each, the
                // combined calibration beside them.
                guard memberParts.count >= 1, memberParts.count <= 16 else { throw invalid("an ensemble of \(memberParts.count) members") }
                var members: [AnomalyScorer] = [], normalizers: [ScoreNormalizer] = []
                for (index, value) in memberParts.enumerated() {
                    guard let member = value.objectValue else { throw invalid("anomaly member \(index) is not an object") }
                    members.append(try readScorer(member, tensorsByName, prefix: "anomaly.\(index).", network: network,
                                                  backbone: frozen, preprocessing: preprocessing, path: path))
                    let normalizer: ScoreNormalizer = try decodeMetadata(member["normalizer"], "anomaly member \(index) normalizer", path: path)
                    guard normalizer.spread.isFinite, normalizer.spread > 0, normalizer.mean.isFinite else {
                        throw invalid("anomaly member \(index) has a normaliser that is not finite and positive")
                    }
                    normalizers.append(normalizer)
                }
                let calibration: Calibration = try decodeMetadata(part["calibration"], "anomaly.calibration", path: path)
                let choice: ScorerChoice? = part["choice"] == nil ? nil : try decodeMetadata(part["choice"], "anomaly.choice", path: path)
                anomaly = AnomalyEnsemble(members: members, normalizers: normalizers, calibration: calibration, choice: choice)
            } else {
                anomaly = AnomalyEnsemble(try readScorer(part, tensorsByName, prefix: "anomaly.", network: network, backbone: frozen,
                                                         preprocessing: preprocessing, path: path))
            }
            goodCount = part["good_images"]?.intValue ?? 0
        }

        var classifier: DefectClassifier?
        if let part = meta["classifier"]?.objectValue {
            let transform: EmbeddingTransform = try decodeMetadata(part["transform"], "classifier.transform", path: path)
            guard let names = part["classes"]?.arrayValue?.compactMap({ $0.stringValue }), !names.isEmpty,
                  let embeddingName = part["embedding"]?.stringValue, let embedding = EmbeddingSource(rawValue: embeddingName)
            else { throw invalid("the classifier has no classes or no embedding kind") }
            var classes: [PrototypeClass] = []
            var width: Int?
            for (index, name) in names.enumerated() {
                guard let support = tensorsByName["classifier.\(index)"], support.shape.count == 2, support.shape[0] > 0,
                      width == nil || width == support.shape[1] else {
                    throw invalid("class \(name) has no support embeddings")
                }
                width = support.shape[1]
                let d = support.shape[1]
                classes.append(PrototypeClass(name: name, support: (0..<support.shape[0]).map { Array(support.scalars[($0 * d)..<(($0 + 1) * d)]) }))
            }
            let scale = Float(part["scale"]?.numberValue ?? 5)
            let rejection = part["rejection_threshold"]?.numberValue.map(Float.init)
            classifier = DefectClassifier(
                classifier: PrototypeClassifier(classes: classes, transform: transform, scale: scale, rejectionThreshold: rejection),
                embedding: embedding)
        }
        guard anomaly != nil || classifier != nil else { throw invalid("it holds neither an anomaly scorer nor a classifier") }
        self.init(backboneMetadata: backboneMeta, backboneTensors: backboneTensors, backbone: frozen, preprocessing: preprocessing,
                  anomaly: anomaly, goodImageCount: goodCount, classifier: classifier,
                  minimumDefectArea: meta["minimum_defect_area"]?.intValue ?? 16)
        created = meta["created"]?.stringValue ?? "unknown"
        createdBy = meta["created_by"]?.stringValue ?? "unknown"
    }

    /// The model as a generic model file (see ``init(contentsOfFile:)`` for the layout).
    package func modelFile() throws(InspectionModelError) -> ModelFile {
        var meta: [String: JSONValue] = [
            "kind": .string(InspectionModel.kind),
            "backbone": .object(backboneMetadata),
            "preprocessing": try encodeMetadata(preprocessing),
            "minimum_defect_area": .number(Double(minimumDefectArea)),
            "created": .string(created),
            "created_by": .string(createdBy),
        ]
        var tensors = backboneTensors.map { NamedTensor(name: "backbone." + $0.name, shape: $0.shape, scalars: $0.scalars) }
        // Layout 1 unless a part needs a newer reader (2: a Gaussian-mode scorer; 3: an
        // ensemble), so that older builds keep reading what they can.
        var layout = 1
        if let anomaly {
            var part: [String: JSONValue]
            if anomaly.isSingle {
                part = try scorerMetadata(anomaly.members[0], prefix: "anomaly.", tensors: &tensors, layout: &layout)
            } else {
                layout = max(layout, 3)
                var members: [JSONValue] = []
                for (index, member) in anomaly.members.enumerated() {
                    var memberPart = try scorerMetadata(member, prefix: "anomaly.\(index).", tensors: &tensors, layout: &layout)
                    memberPart["normalizer"] = try encodeMetadata(anomaly.normalizers[index])
                    members.append(.object(memberPart))
                }
                part = ["members": .array(members), "calibration": try encodeMetadata(anomaly.calibration)]
                if let choice = anomaly.choice { part["choice"] = try encodeMetadata(choice) }
            }
            part["good_images"] = .number(Double(goodImageCount))
            meta["anomaly"] = .object(part)
        }
        meta["layout"] = .number(Double(layout))
        if let classifier {
            let c = classifier.classifier
            var part: [String: JSONValue] = [
                "transform": try encodeMetadata(c.transform),
                "scale": .number(Double(c.scale)),
                "embedding": .string(classifier.embedding.rawValue),
                "classes": .array(c.classNames.map { .string($0) }),
                "shots": .array(c.classes.map { .number(Double($0.shots)) }),
            ]
            if let rejection = c.rejectionThreshold { part["rejection_threshold"] = .number(Double(rejection)) }
            meta["classifier"] = .object(part)
            for (index, cls) in c.classes.enumerated() {
                tensors.append(NamedTensor(name: "classifier.\(index)", shape: [cls.shots, cls.support[0].count],
                                           scalars: cls.support.flatMap { $0 }))
            }
        }
        return ModelFile(metadata: meta, tensors: tensors)
    }

    /// Reads a model written by ``write(to:)`` (file URLs only; see
    /// ``init(contentsOfFile:)`` for the layout).
    ///
    /// - Throws: ``InspectionModelError`` naming the file.
    public init(contentsOf url: URL) throws(InspectionModelError) {
        try self.init(contentsOfFile: url.path)
    }

    /// ``write(toFile:)`` to a file URL.
    public func write(to url: URL) throws(InspectionModelError) {
        try write(toFile: url.path)
    }

    /// Writes the model to one file, atomically (a temporary file beside it, flushed to
    /// disk, then renamed: an interrupted write never leaves a half model under the final
    /// name, and a model that was there stays whole until the new one replaces it).
    public func write(toFile path: String) throws(InspectionModelError) {
        let file = try modelFile()
        do { try file.write(toFile: path) } catch { throw .modelFile(error) }
    }
}

// MARK: - One scorer in a model file

/// One scorer of a model file: options, calibration and its bank or Gaussians (tensors
/// named `prefix` + `bank`, `mean`, `inverse_cholesky`), checked against the backbone.
private func readScorer(
    _ part: [String: JSONValue], _ tensorsByName: [String: NamedTensor], prefix: String, network: any Backbone,
    backbone frozen: FrozenBackbone, preprocessing: Preprocessing, path: String
) throws(InspectionModelError) -> AnomalyScorer {
    func invalid(_ detail: String) -> InspectionModelError { .invalid(path: path, detail: detail) }
    let options: AnomalyScorerOptions = try decodeMetadata(part["options"], "\(prefix)options", path: path)
    let calibration: Calibration = try decodeMetadata(part["calibration"], "\(prefix)calibration", path: path)
    let expected = options.features.layers.reduce(0) { total, layer in
        total + (layer >= 0 && layer < network.featureChannels.count ? network.featureChannels[layer] : -1_000_000)
    }
    guard expected > 0, options.imageSize == preprocessing.size, options.aspectRatio == preprocessing.aspectRatio else {
        throw invalid("the scorer's layers \(options.features.layers) or input size \(options.inputSize.width)x\(options.inputSize.height) do not fit the backbone and preprocessing")
    }
    switch options.mode {
    case .memoryBank:
        guard let bank = tensorsByName[prefix + "bank"], bank.shape.count == 2, bank.shape[0] > 0 else {
            throw invalid("the anomaly part has no memory bank \(prefix)bank")
        }
        guard bank.shape[1] == expected else {
            throw invalid("memory bank of width \(bank.shape[1]) does not fit the backbone's layers (\(expected))")
        }
        let memory = PatchMemory(bank: MemoryBank(Tensor(bank.scalars, shape: bank.shape)),
                                 patchCount: part["patch_count"]?.intValue ?? bank.shape[0],
                                 gridWidth: part["grid_width"]?.intValue ?? 0, gridHeight: part["grid_height"]?.intValue ?? 0)
        return AnomalyScorer(backbone: frozen, options: options, memory: memory, calibration: calibration)
    case .positionGaussian:
        let gaussian = try readGaussian(part, tensorsByName, prefix: prefix, featureDimension: expected, options: options,
                                        backbone: frozen, path: path)
        return AnomalyScorer(backbone: frozen, options: options, normality: .positionGaussian(gaussian), calibration: calibration)
    }
}

/// The metadata of one scorer, its tensors appended under `prefix`; raises `layout` to 2
/// for a Gaussian-mode scorer.
private func scorerMetadata(_ scorer: AnomalyScorer, prefix: String, tensors: inout [NamedTensor],
                            layout: inout Int) throws(InspectionModelError) -> [String: JSONValue] {
    var part: [String: JSONValue] = [
        "options": try encodeMetadata(scorer.options),
        "calibration": try encodeMetadata(scorer.calibration),
    ]
    switch scorer.normality {
    case .memoryBank(let memory):
        part["patch_count"] = .number(Double(memory.patchCount))
        part["grid_width"] = .number(Double(memory.gridWidth))
        part["grid_height"] = .number(Double(memory.gridHeight))
        part["bank_size"] = .number(Double(memory.bank.count))
        let bank = memory.bank.features
        tensors.append(NamedTensor(name: prefix + "bank", shape: bank.shape, scalars: bank.scalars))
    case .positionGaussian(let memory):
        layout = max(layout, 2)
        part["grid_width"] = .number(Double(memory.gridWidth))
        part["grid_height"] = .number(Double(memory.gridHeight))
        part["gaussian_channels"] = .array(memory.channels.map { .number(Double($0)) })
        part["gaussian_samples"] = .number(Double(memory.sampleCount))
        let g = memory.gaussian, c = g.dimension
        tensors.append(NamedTensor(name: prefix + "mean", shape: [g.positions, c], scalars: g.meanValues))
        tensors.append(NamedTensor(name: prefix + "inverse_cholesky", shape: [g.positions, c * (c + 1) / 2],
                                   scalars: g.inverseFactorValues))
    }
    return part
}

// MARK: - Gaussian-mode scorer

/// The Gaussian-mode part of a model file (see ``InspectionModel/init(contentsOfFile:)``),
/// checked against itself, the backbone's feature width and the grid the backbone gives at
/// the scorer's input size.
private func readGaussian(
    _ anomaly: [String: JSONValue], _ tensors: [String: NamedTensor], prefix: String, featureDimension: Int, options: AnomalyScorerOptions,
    backbone: FrozenBackbone, path: String
) throws(InspectionModelError) -> GaussianMemory {
    func invalid(_ detail: String) -> InspectionModelError { .invalid(path: path, detail: detail) }
    guard let mean = tensors[prefix + "mean"], let factors = tensors[prefix + "inverse_cholesky"] else {
        throw invalid("the Gaussian-mode anomaly part has no \(prefix)mean or \(prefix)inverse_cholesky tensor")
    }
    guard let width = anomaly["grid_width"]?.intValue, let height = anomaly["grid_height"]?.intValue, width > 0, height > 0,
          let channelValues = anomaly["gaussian_channels"]?.arrayValue else {
        throw invalid("the Gaussian-mode anomaly part has no grid size or channel list")
    }
    let channels = channelValues.compactMap { $0.intValue }
    guard channels.count == channelValues.count, GaussianMemory.channelsAreValid(channels, featureDimension: featureDimension) else {
        throw invalid("the Gaussian channel list is not an ascending list inside the \(featureDimension) patch-feature channels")
    }
    let c = channels.count, positions = width * height
    guard mean.shape == [positions, c], factors.shape == [positions, c * (c + 1) / 2] else {
        throw invalid("Gaussian tensors of shapes \(prefix)mean \(mean.shape) and \(prefix)inverse_cholesky \(factors.shape) "
                      + "do not fit a \(height)x\(width) grid of \(c) channels ([\(positions), \(c)] and [\(positions), \(c * (c + 1) / 2)])")
    }
    // The grid the backbone actually gives at this input size, from one blank image: a
    // mismatch would otherwise surface only when the first part is inspected.
    let probe = extractPatchFeatures(Tensor(zeros: [1, options.inputSize.height, options.inputSize.width, 3]), backbone: backbone,
                                     options: options.features, pool: nil)
    guard probe.width == width, probe.height == height else {
        throw invalid("Gaussians for a \(height)x\(width) grid, but the backbone gives \(probe.height)x\(probe.width) at \(options.inputSize.width)x\(options.inputSize.height) px")
    }
    guard let gaussian = PositionGaussian(positions: positions, dimension: c, means: mean.scalars, inverseFactors: factors.scalars) else {
        throw invalid("the Gaussian tensors hold values that are not finite")
    }
    return GaussianMemory(gaussian: gaussian, channels: channels, featureDimension: featureDimension, gridWidth: width,
                          gridHeight: height, sampleCount: anomaly["gaussian_samples"]?.intValue ?? 0)
}

// MARK: - Codable values in model-file metadata

/// A `Codable` value as JSON metadata.
func encodeMetadata<T: Encodable>(_ value: T) throws(InspectionModelError) -> JSONValue {
    let encoder = JSONEncoder()
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    guard let data = try? encoder.encode(value), let json = JSONValue(parsing: String(decoding: data, as: UTF8.self)) else {
        throw .invalid(path: "<memory>", detail: "could not encode \(T.self)")
    }
    return json
}

/// A `Codable` value read back from JSON metadata.
func decodeMetadata<T: Decodable>(_ value: JSONValue?, _ name: String, path: String) throws(InspectionModelError) -> T {
    guard let value else { throw .invalid(path: path, detail: "\(name) is missing") }
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    do { return try decoder.decode(T.self, from: Data(value.description.utf8)) } catch {
        throw .invalid(path: path, detail: "\(name) cannot be read")
    }
}

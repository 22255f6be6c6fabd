// Building an inspection model from images: the training entry points behind
// `vinspect train` and `vinspect train --add-class`, for integrators too.
import Anomaly
import FewShot
import Foundation
import ModelFile
import NeuralNet
import TensorCore

/// Everything that shapes a model besides the images and the backbone.
public struct TrainingOptions: Sendable {
    /// Whether the engine chooses the scorer's settings from the good images (the default;
    /// see `AutomaticSettings`). Then only the bank limits, smoothing, seed and Gaussian
    /// channel count of ``scorer`` are used. Setting ``scorer`` turns it off (set it back to
    /// true afterwards to keep the automatic choice with other bank limits).
    public var automaticScorer = true
    /// The options of a single scorer (when ``automaticScorer`` is false and ``scorers`` is
    /// nil), or the template of the automatic choice. `scorer.imageSize` is also the
    /// classifier's input size.
    public var scorer = AnomalyScorerOptions() {
        didSet { automaticScorer = false }
    }
    /// Several option sets to combine into an ensemble over one backbone pass (all at the
    /// same `imageSize`); when set, used instead of ``scorer`` and the automatic choice.
    public var scorers: [AnomalyScorerOptions]?
    /// The part of each image to inspect; nil: all of it.
    public var regionOfInterest: RegionOfInterest?
    /// How the classifier pools embeddings from the backbone.
    public var embedding: EmbeddingSource = .multi
    /// The share of good parts the anomaly threshold may reject (when only good images
    /// calibrate it).
    public var targetFalseRejectRate = 0.01
    /// Use the defect-class images to move the threshold toward the defect scores (never
    /// into the held-out good scores; see `ThresholdRule`).
    public var sharpenThresholdWithDefects = true
    /// Smallest defect region reported as a box, in pixels of the original image.
    public var minimumDefectArea = 16
    /// A projection head for the classifier's embeddings, trained episodically on other
    /// classes (`vinspect fewshot-train`); nil: none. Its input width must match the
    /// embedding's.
    package var projectionHead: ProjectionHead?

    /// The defaults: the engine chooses the scorer's settings, 1 % false rejects.
    public init() {}
}

/// A class of labelled training images (a defect type, or `good`).
public struct LabelledImages: Sendable {
    /// The class name (the folder name for `vinspect train --classes`).
    public var name: String
    /// Its example images.
    public var images: [Image]

    /// A class of images under a name.
    public init(name: String, images: [Image]) {
        self.name = name
        self.images = images
    }
}

/// Training images read when they are needed: images in memory, or image files. Files are
/// decoded once up front (to learn their sizes and leave out the unreadable ones) and kept
/// decoded while they fit in `cacheBytes`; beyond that they are decoded again one at a time
/// when needed, so that a folder of large camera frames is never all in memory at once
/// (only the preprocessed tensors, at the model's input size, are kept).
package struct TrainingImageSource: Sendable {
    /// Where each image came from (for messages).
    package let names: [String]
    /// Each image's size, in pixels.
    package let sizes: [(width: Int, height: Int)]
    /// The images held decoded (all of them for images given in memory).
    private let held: [Image?]
    private let maxPixels: Int

    /// Images already decoded.
    package init(_ images: [Image]) {
        held = images
        names = images.indices.map { "image \($0)" }
        sizes = images.map { ($0.width, $0.height) }
        maxPixels = Image.defaultMaxPixels
    }

    /// Image files; the unreadable ones are left out and returned with the reason.
    package static func files(_ paths: [String], maxPixels: Int,
                              cacheBytes: Int = 512 << 20) -> (TrainingImageSource, unreadable: [(path: String, reason: String)]) {
        var kept: [String] = [], sizes: [(width: Int, height: Int)] = [], held: [Image?] = []
        var unreadable: [(path: String, reason: String)] = []
        var heldBytes = 0
        for path in paths {
            do {
                let image = try Image(contentsOfFile: path, maxPixels: maxPixels)
                kept.append(path)
                sizes.append((image.width, image.height))
                let bytes = image.width * image.height * image.channels * image.bitDepth / 8
                if heldBytes + bytes <= cacheBytes {
                    held.append(image)
                    heldBytes += bytes
                } else {
                    held.append(nil)
                }
            } catch {
                unreadable.append((path, error.description))
            }
        }
        return (TrainingImageSource(names: kept, sizes: sizes, held: held, maxPixels: maxPixels), unreadable)
    }

    private init(names: [String], sizes: [(width: Int, height: Int)], held: [Image?], maxPixels: Int) {
        self.names = names
        self.sizes = sizes
        self.held = held
        self.maxPixels = maxPixels
    }

    package var count: Int { sizes.count }

    /// The number of images held decoded (the rest are decoded when needed).
    package var heldCount: Int { held.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// The first `count` images only.
    package func prefix(_ count: Int) -> TrainingImageSource {
        TrainingImageSource(names: Array(names.prefix(count)), sizes: Array(sizes.prefix(count)), held: Array(held.prefix(count)),
                            maxPixels: maxPixels)
    }

    /// Image `index`, decoded now if it is not held.
    package func image(_ index: Int) throws(InspectionModelError) -> Image {
        if let image = held[index] { return image }
        do { return try Image(contentsOfFile: names[index], maxPixels: maxPixels) } catch {
            throw .nothingToTrain(detail: "\(names[index]) could be read a moment ago and now cannot: \(error)")
        }
    }

    /// The preprocessed tensors of every image, one image decoded at a time.
    package func tensors(_ preprocessing: Preprocessing) throws(InspectionModelError) -> [Tensor] {
        var out: [Tensor] = []
        out.reserveCapacity(count)
        for index in 0..<count { out.append(preprocessing.tensor(try image(index))) }
        return out
    }
}

/// An image file training left out, and why.
public struct UnreadableImage: Sendable, Equatable {
    /// The file.
    public var path: String
    /// Why it could not be read (the image reader's message).
    public var reason: String
}

/// The outcome of training from folders: the model, and the files left out.
public struct FolderTraining: Sendable {
    /// The trained model.
    public var model: InspectionModel
    /// Image files that could not be read, in the order met; the model was trained without
    /// them.
    public var unreadable: [UnreadableImage]
}

/// Where a model's backbone (feature extractor) comes from.
public enum TrainingBackbone: Sendable {
    /// The compact backbone shipped with the library (small, fast; distilled for the demo's
    /// kind of parts).
    case shipped
    /// A backbone file written by `vinspect backbone import` or `vinspect distill`.
    case file(URL)
    /// The compact architecture with fixed random weights: for tests and demos on
    /// generated parts, not for real ones.
    case untrainedCompact
}

/// Training entry points: build an ``InspectionModel`` from images, add a defect type to
/// an existing one.
///
/// ```swift
/// let good = try goodFiles.map { try Image(contentsOf: $0) }
/// let model = try InspectorTrainer.train(good: good, backbone: .file(lite0URL))
/// try model.write(to: URL(fileURLWithPath: "line3.vimodel"))
/// ```
public enum InspectorTrainer {
    /// Trains a model. Good images teach the anomaly scorer what normal looks like and set
    /// its threshold; the classes teach the defect classifier (a class named `good` is the
    /// OK class), and their defect images sharpen the threshold. Without good images and
    /// without a `good` class the model can only name defect types: it reports every image
    /// as a defect (``InspectionModel/canPassParts`` is false).
    ///
    /// - Parameters:
    ///   - good: images of good parts, for the anomaly scorer.
    ///   - classes: a few images per defect type (and optionally `good`), for the classifier.
    ///   - backbone: the feature extractor: the compact backbone shipped with the library
    ///     (the default), or a file from `vinspect backbone import` (e.g. the pretrained
    ///     EfficientNet-Lite0, for real parts).
    ///   - options: see ``TrainingOptions``; the defaults are what the README's figures use.
    ///   - threads: threads for the feature extraction (nil: one per core).
    /// - Throws: ``InspectionModelError`` (``InspectionModelError/backbone(_:)`` when the
    ///   backbone file cannot be read).
    public static func train(good: [Image], classes: [LabelledImages] = [], backbone: TrainingBackbone = .shipped,
                             options: TrainingOptions = TrainingOptions(), threads: Int? = nil) throws(InspectionModelError) -> InspectionModel {
        try InspectionModelError.checkCPU()
        let (network, source) = try network(backbone)
        return try train(backbone: network, backboneSource: source, good: good, classes: classes, options: options,
                         pool: ThreadPool.forThreads(threads))
    }

    /// Trains a model from folders of image files, decoding one image at a time: only the
    /// preprocessed tensors, at the model's input size, stay in memory, not the frames.
    ///
    /// - Parameters:
    ///   - goodFolder: images of good parts (PNG, JPEG; walked recursively), or nil.
    ///   - classesFolder: one sub-folder of images per defect type (a sub-folder named
    ///     `good` is the OK class), or nil.
    ///   - backbone: the feature extractor (see ``TrainingBackbone``).
    ///   - options: see ``TrainingOptions``.
    ///   - threads: threads for the feature extraction (nil: one per core).
    ///   - maxPixels: images larger than this are left out as unreadable.
    /// - Returns: the model, and the files that could not be read (left out).
    /// - Throws: ``InspectionModelError``: nothing readable to train on, a folder that is
    ///   not laid out as expected, a class name that cannot name a type, a backbone file
    ///   that cannot be read.
    public static func train(goodFolder: URL?, classesFolder: URL? = nil, backbone: TrainingBackbone = .shipped,
                             options: TrainingOptions = TrainingOptions(), maxPixels: Int = Image.defaultMaxPixels,
                             threads: Int? = nil) throws(InspectionModelError) -> FolderTraining {
        try InspectionModelError.checkCPU()
        var unreadable: [UnreadableImage] = []
        func source(_ files: [String]) -> TrainingImageSource {
            let (images, bad) = TrainingImageSource.files(files, maxPixels: maxPixels)
            unreadable += bad.map { UnreadableImage(path: $0.path, reason: $0.reason) }
            return images
        }
        var good = TrainingImageSource([])
        if let goodFolder {
            let files = ClassFolders.imageFiles(below: goodFolder.path)
            if files.isEmpty { throw .nothingToTrain(detail: "\(goodFolder.path): no PNG or JPEG images in it") }
            good = source(files)
            if good.count == 0 { throw .nothingToTrain(detail: "\(goodFolder.path): none of its images could be read") }
        }
        var classes: [(name: String, images: TrainingImageSource)] = []
        if let classesFolder {
            let folders: ClassFolders
            do { folders = try ClassFolders.load(classesFolder.path, minimumClasses: 1) } catch {
                throw .nothingToTrain(detail: error.description)
            }
            classes = folders.classes.map { ($0.name, source($0.files)) }
        }
        let (network, backboneSource) = try network(backbone)
        let model = try train(backbone: network, backboneSource: backboneSource, good: good, classes: classes, options: options,
                              pool: ThreadPool.forThreads(threads))
        return FolderTraining(model: model, unreadable: unreadable)
    }

    /// The network of a backbone choice and where it came from.
    private static func network(_ backbone: TrainingBackbone) throws(InspectionModelError) -> (any Backbone, String?) {
        do {
            switch backbone {
            case .shipped: return (try DefaultBackbone.load(), DefaultBackbone.path)
            case .file(let url): return (try BackboneStore.load(from: url.path), url.path)
            case .untrainedCompact: return (BackboneArchitecture.compact.make(), nil)
            }
        } catch { throw .backbone(error) }
    }

    /// Adds a defect type to a trained model without retraining anything else: the images'
    /// embeddings become the new class's examples (images the class already has are
    /// skipped); the anomaly scorer and the other types stay as they are.
    ///
    /// - Parameters:
    ///   - name: the class name (see ``InspectionModel/classNameProblem(_:)``).
    ///   - images: a few images of the defect type.
    ///   - model: the model to extend.
    ///   - threads: threads for the feature extraction (nil: one per core).
    /// - Returns: the extended model.
    /// - Throws: ``InspectionModelError/invalidClassName(name:problem:)`` or
    ///   ``InspectionModelError/nothingToTrain(detail:)``.
    public static func addingClass(_ name: String, images: [Image], to model: InspectionModel,
                                   threads: Int? = nil) throws(InspectionModelError) -> InspectionModel {
        try addingClass(name, images: images, to: model, pool: ThreadPool.forThreads(threads))
    }

    /// Trains a model.
    ///
    /// - Parameters:
    ///   - backbone: the feature extractor (its weights are stored in the model).
    ///   - backboneSource: where the backbone came from, recorded in the model.
    ///   - good: images of good parts, for the anomaly scorer (may be empty when `classes`
    ///     is not; then a class named `good` supplies them, if there is one).
    ///   - classes: a few images per defect type (and optionally `good`), for the
    ///     classifier; defect images also sharpen the anomaly threshold. Without good
    ///     images and without a `good` class the model can only name defect types: it
    ///     reports every image as a defect (``InspectionModel/canPassParts`` is false).
    ///   - options: see ``TrainingOptions``.
    /// - Throws: ``InspectionModelError/nothingToTrain(detail:)`` when there is nothing to
    ///   learn; ``InspectionModelError/invalidClassName(name:problem:)`` for a class name
    ///   ``InspectionModel/classNameProblem(_:)`` refuses.
    package static func train(backbone: any Backbone, backboneSource: String? = nil, good: [Image], classes: [LabelledImages],
                             options: TrainingOptions = TrainingOptions(),
                             pool: ThreadPool? = .shared) throws(InspectionModelError) -> InspectionModel {
        try train(backbone: backbone, backboneSource: backboneSource, good: TrainingImageSource(good),
                  classes: classes.map { ($0.name, TrainingImageSource($0.images)) }, options: options, pool: pool)
    }

    /// ``train(backbone:backboneSource:good:classes:options:pool:)`` on image sources: every
    /// image is decoded when it is needed and only its preprocessed tensor is kept.
    package static func train(backbone: any Backbone, backboneSource: String? = nil, good: TrainingImageSource,
                              classes: [(name: String, images: TrainingImageSource)], options: TrainingOptions = TrainingOptions(),
                              pool: ThreadPool? = .shared) throws(InspectionModelError) -> InspectionModel {
        try InspectionModelError.checkCPU()
        for cls in classes {
            if let problem = InspectionModel.classNameProblem(cls.name) { throw .invalidClassName(name: cls.name, problem: problem) }
        }
        let classes = classes.filter { $0.images.count > 0 }
        if let sets = options.scorers, sets.isEmpty || Set(sets.map { "\($0.imageSize)/\($0.aspectRatio)" }).count != 1 {
            throw .nothingToTrain(detail: "the scorer option sets must be one or more at one input size (\(sets.map(\.inputSize)))")
        }
        let normalization = backbone.inputNormalization
        func makePreprocessing(size: Int, aspectRatio: Double) -> Preprocessing {
            var p = Preprocessing(size: size, aspectRatio: aspectRatio, mean: normalization.mean, std: normalization.std)
            p.regionOfInterest = options.regionOfInterest
            return p
        }
        let frozen = backbone.frozen()

        var goodImages = good
        if goodImages.count == 0, let okClass = classes.first(where: { InspectionModel.isOKClass($0.name) }) {
            goodImages = okClass.images
        }
        let defectClasses = classes.filter { !InspectionModel.isOKClass($0.name) }
        if goodImages.count == 0 && classes.count < 2 {
            throw .nothingToTrain(detail: "give good images (--good) or at least two classes (--classes)")
        }

        let (sets, choice) = try scorerSets(good: goodImages, options: options, backbone: frozen, normalization: normalization,
                                            pool: pool)
        let preprocessing = makePreprocessing(size: sets[0].imageSize, aspectRatio: sets[0].aspectRatio)
        var anomaly: AnomalyEnsemble?
        if goodImages.count > 0 {
            let goodTensors = try goodImages.tensors(preprocessing)
            var defectTensors: [Tensor] = []
            if options.sharpenThresholdWithDefects {
                for cls in defectClasses { defectTensors += try cls.images.tensors(preprocessing) }
            }
            // Scores of one scorer the user set up stay on its raw scale with the
            // false-reject-rate threshold; chosen or combined ones go on the good parts' scale.
            anomaly = AnomalyEnsemble.train(goodImages: goodTensors, defectImages: defectTensors, backbone: frozen,
                                            options: sets, scaled: sets.count > 1 || choice != nil,
                                            targetFalseRejectRate: options.targetFalseRejectRate, pool: pool)
            anomaly?.choice = choice
        }

        var classifier: DefectClassifier?
        if !classes.isEmpty && options.embedding == .region && anomaly == nil {
            throw .nothingToTrain(detail: "the region embedding needs good images (--good, or a good class): their anomaly scorer finds the region")
        }
        if !classes.isEmpty {
            var raw: [[[Float]]] = []
            for cls in classes {
                raw.append(embeddings(of: try cls.images.tensors(preprocessing), backbone: frozen, source: options.embedding,
                                      anomaly: anomaly, pool: pool ?? .shared))
            }
            if let head = options.projectionHead, let width = raw.first?.first?.count, width != head.inputDimension {
                throw .nothingToTrain(detail: "the projection head takes \(head.inputDimension) features, the \(options.embedding.rawValue) embeddings of this backbone have \(width)")
            }
            var transform = EmbeddingTransform(head: options.projectionHead)
            // Centre on the mean of all training embeddings (power-transformed) when there
            // are at least two classes to take a mean over; the centre is then fixed, so
            // classes added later leave the existing prototypes untouched.
            if classes.count >= 2 {
                transform.center = meanOf(raw.flatMap { $0 }.map(transform.features))
            }
            var prototypes = PrototypeClassifier(transform: transform)
            for (cls, vectors) in zip(classes, raw) { prototypes.add(cls.name, embeddings: vectors) }
            prototypes.calibrateRejection()
            classifier = DefectClassifier(classifier: prototypes, embedding: options.embedding)
        }

        var metadata = BackboneStore.metadata(of: backbone, source: backboneSource)
        metadata["created"] = nil
        return InspectionModel(backboneMetadata: metadata, backboneTensors: BackboneStore.tensors(of: backbone),
                               backbone: frozen, preprocessing: preprocessing, anomaly: anomaly, goodImageCount: goodImages.count,
                               classifier: classifier, minimumDefectArea: options.minimumDefectArea)
    }

    /// The scorer's option sets for these good images: ``TrainingOptions/scorers`` when
    /// given, else the automatic choice (``AutomaticSettings``, measured on the images) when
    /// ``TrainingOptions/automaticScorer`` is on, else ``TrainingOptions/scorer``; and how the
    /// engine chose, when it did. The sets' scores go on the good parts' scale (and their
    /// threshold follows ``ThresholdRule/standard``) when there are several or the engine
    /// chose them.
    package static func scorerSets(good: [Image], options: TrainingOptions, backbone: FrozenBackbone,
                                  normalization: (mean: [Float], std: [Float]),
                                  pool: ThreadPool? = .shared) -> ([AnomalyScorerOptions], ScorerChoice?) {
        // Images in memory cannot fail to decode.
        (try? scorerSets(good: TrainingImageSource(good), options: options, backbone: backbone, normalization: normalization,
                         pool: pool)) ?? ([options.scorer], nil)
    }

    /// ``scorerSets(good:options:backbone:normalization:pool:)`` on an image source.
    package static func scorerSets(good: TrainingImageSource, options: TrainingOptions, backbone: FrozenBackbone,
                                   normalization: (mean: [Float], std: [Float]),
                                   pool: ThreadPool? = .shared) throws(InspectionModelError) -> ([AnomalyScorerOptions], ScorerChoice?) {
        if let sets = options.scorers { return (sets, nil) }
        guard options.automaticScorer, good.count > 0 else { return ([options.scorer], nil) }
        // Frames of one oblong shape keep it (after the region of interest is cut out).
        var template = options.scorer
        template.aspectRatio = InputGeometry.aspectRatio(ofFrames: good.sizes.map { size in
            let region = options.regionOfInterest?.clipped(width: size.width, height: size.height)
            return (region?.width ?? size.width, region?.height ?? size.height)
        })
        var measuring = Preprocessing(size: AutomaticSettings.measuringSize, aspectRatio: template.aspectRatio,
                                      mean: normalization.mean, std: normalization.std)
        measuring.regionOfInterest = options.regionOfInterest
        let measured = try good.prefix(AutomaticSettings.measuredImages).tensors(measuring)
        let (sets, choice) = AutomaticSettings.choose(measuringImages: measured, goodImageCount: good.count,
                                                      template: template, backbone: backbone, pool: pool)
        return (sets, choice)
    }

    /// Adds a defect type (or more examples of an existing one) to a model, from a few
    /// images, without changing anything else: the anomaly scorer, the other classes'
    /// prototypes and the embedding transform stay as they are. A model without a
    /// classifier gets one. Images the class already has (the same image given again, e.g.
    /// when a folder is added twice) are skipped, so adding them again changes nothing (see
    /// ``PrototypeClassifier/add(_:embeddings:)``).
    ///
    /// - Parameters:
    ///   - name: the class name (e.g. `scratch`).
    ///   - images: its example images.
    ///   - model: the model to extend.
    /// - Returns: the extended model.
    /// - Throws: ``InspectionModelError/invalidClassName(name:problem:)`` for a name
    ///   ``InspectionModel/classNameProblem(_:)`` refuses (empty, only whitespace, with `/` or
    ///   control characters, `unknown`); ``InspectionModelError/nothingToTrain(detail:)``
    ///   without images.
    package static func addingClass(_ name: String, images: [Image], to model: InspectionModel,
                                    pool: ThreadPool?) throws(InspectionModelError) -> InspectionModel {
        try InspectionModelError.checkCPU()
        if let problem = InspectionModel.classNameProblem(name) { throw .invalidClassName(name: name, problem: problem) }
        guard !images.isEmpty else { throw .nothingToTrain(detail: "no readable images for class \(name)") }
        var model = model
        let source = model.classifier?.embedding ?? .multi
        let raw = embeddings(of: images.map(model.preprocessing.tensor), backbone: model.backbone, source: source, anomaly: model.anomaly,
                             pool: pool ?? .shared)
        var prototypes = model.classifier?.classifier ?? PrototypeClassifier()
        let threshold = prototypes.rejectionThreshold
        prototypes.add(name, embeddings: raw)
        // Rejection is recalibrated only when there was none: recalibrating would move the
        // "unknown" boundary of the classes that were already there.
        prototypes.rejectionThreshold = threshold
        if threshold == nil { prototypes.calibrateRejection() }
        model.classifier = DefectClassifier(classifier: prototypes, embedding: source)
        return model
    }
}

/// The element-wise mean of equal-length vectors.
func meanOf(_ vectors: [[Float]]) -> [Float] {
    var sum = [Float](repeating: 0, count: vectors.first?.count ?? 0)
    for v in vectors { for i in v.indices { sum[i] += v[i] } }
    return sum.map { $0 / Float(max(vectors.count, 1)) }
}

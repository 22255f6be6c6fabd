import Anomaly
import ArgumentParser
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
@_spi(Engine) import VisualInspection

/// `vinspect train`: build a model file from good images and a few images per defect type,
/// or add a defect type to an existing model.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build an inspection model from good images and a few images of each defect type.",
        discussion: """
            --good DIR holds images of good parts (folders are walked recursively): they teach
            the anomaly scorer what normal looks like, and its threshold is calibrated on them
            (each image scored against a bank built without it, then --false-reject-rate).
            --classes DIR holds one sub-folder per defect type with a few images each (a
            sub-folder named good is the OK class): they teach the defect classifier, and
            defect images also sharpen the anomaly threshold (F1-optimal). Give at least one.
            With --classes only and no good sub-folder, the model can name defect types but
            cannot pass any part (every image is a defect): it is still written, for sorting
            parts already known to be defective, with a warning (also shown by `info`).

            Adding a defect type later, without retraining anything else (images the class
            already has are skipped, so adding the same folder twice changes nothing):
              vinspect add-class new-defects/dent --to line3.vimodel
            (`vinspect train --add-class FOLDER --to MODEL` is the same.)

            Examples:
              vinspect train --good line3/good --classes line3/defects --output line3.vimodel
              vinspect train --good screws/good --augment rotate45Mirrored --image-size 320 --aggregation 1 --backbone lite0.vimodel --output screws.vimodel

            Unreadable training images are reported and skipped (exit status 2 at the end).
            """)

    @Option(help: "Folder of images of good parts (for the anomaly scorer).")
    var good: String?

    @Option(help: "Folder with one sub-folder of images per defect type (and optionally good), for the classifier.")
    var classes: String?

    @Option(help: "Use only K images per folder, drawn with --seed (few-shot experiments).")
    var shots: Int?

    @Option(help: "Seed of the --shots draw and of the coreset.")
    var seed: UInt64 = 0

    @Option(help: "Where to write the model file.")
    var output: String?

    @Option(help: "Add the images of this folder as one defect type to the model given by --to (nothing else changes).")
    var addClass: String?

    @Option(help: "The model --add-class extends (rewritten in place unless --output is given).")
    var to: String?

    @Option(help: "Class name for --add-class (default: the folder's name); not empty, no '/' or control characters, not 'unknown'.")
    var name: String?

    @Option(help: "The share of good parts the threshold may reject, when only good images calibrate it.")
    var falseRejectRate: Double = 0.01

    @Option(help: "Smallest defect region reported as a box, in pixels of the original image.")
    var minDefectArea: Int = 16

    @Option(help: "Classifier embedding: last (pooled last map), multi (pooled stride-8, stride-16 and last maps) or region (multi, then the stride-8 and stride-16 maps pooled over the anomalous region the scorer finds; needs --good).")
    var embedding: EmbeddingSource = .multi

    @Option(help: "A projection head for the classifier, from `vinspect fewshot-train` (trained on other classes than these).")
    var head: String?

    @OptionGroup var pixelLimit: PixelLimit
    var maxPixels: Int { pixelLimit.maxPixels }

    @OptionGroup var scorer: ScorerOptions

    func validate() throws {
        if addClass != nil {
            if to == nil { throw ValidationError("--add-class needs --to MODEL, the model to extend") }
            if let name, let problem = InspectionModel.classNameProblem(name) { throw ValidationError("--name: \(problem)") }
            if good != nil || classes != nil { throw ValidationError("--add-class cannot be combined with --good or --classes") }
            return
        }
        if good == nil && classes == nil { throw ValidationError("give --good DIR, --classes DIR or both") }
        if output == nil { throw ValidationError("--output MODEL is required: where to write the model") }
        if let shots, shots < 1 { throw ValidationError("--shots must be at least 1") }
        if !(falseRejectRate > 0 && falseRejectRate < 0.5) { throw ValidationError("--false-reject-rate must be in (0, 0.5)") }
        if minDefectArea < 1 { throw ValidationError("--min-defect-area must be positive") }
    }

    func run() throws {
        if let addClass, let to {
            try runAddClass(folder: addClass, model: to)
            return
        }
        try checkModelOutput(output!)
        let start = monotonicSeconds()
        var unreadable = 0
        // Each file is decoded when training needs it; only its preprocessed tensor is kept.
        func load(_ files: [String]) -> TrainingImageSource {
            let (source, bad) = TrainingImageSource.files(files, maxPixels: maxPixels)
            for file in bad { printError("vinspect: skipped \(file.reason)") }
            unreadable += bad.count
            return source
        }
        var generator = Xoshiro256(seed: seed)
        func draw(_ files: [String]) -> [String] {
            guard let shots, shots < files.count else { return files }
            return Array(files.shuffled(using: &generator).prefix(shots))
        }

        var goodImages = TrainingImageSource([])
        if let good {
            guard isFolder(good) else { throw ValidationError("--good \(good): not a folder") }
            let files = draw(imageFilesBelow(good))
            if files.isEmpty { throw ValidationError("--good \(good): no PNG or JPEG images in it") }
            goodImages = load(files)
        }
        var labelled: [(name: String, images: TrainingImageSource)] = []
        if let classes {
            let folders = try ClassFolders.load(classes, minimumClasses: 1)
            for (name, files) in folders.classes { labelled.append((name, load(draw(files)))) }
        }
        if good != nil && goodImages.count == 0 { throw ValidationError("--good \(good!): none of its images could be read") }

        let network = try scorer.loadBackbone()
        var options = TrainingOptions()
        scorer.apply(to: &options, seed: seed)
        options.embedding = embedding
        options.targetFalseRejectRate = falseRejectRate
        options.minimumDefectArea = minDefectArea
        if let head { options.projectionHead = try ProjectionHead.load(from: head).head }
        let model = try InspectorTrainer.train(backbone: network, backboneSource: scorer.backbone == "default" ? "the shipped \(DefaultBackbone.fileName)" : scorer.backbone, good: goodImages, classes: labelled,
                                               options: options)
        try model.write(toFile: output!)
        print("trained in \(format(monotonicSeconds() - start)) s -> \(output!)")
        print(describe(model, path: output!))
        if !model.canPassParts { printError("vinspect: warning: \(cannotPassAnyPart)") }
        if unreadable > 0 {
            printError("vinspect: \(unreadable) training image(s) could not be read and were skipped")
            throw ExitStatus.someInputsUnreadable
        }
    }

    private func runAddClass(folder: String, model path: String) throws {
        try addDefectClass(folder: folder, to: path, name: name, output: output, shots: shots, seed: seed, maxPixels: maxPixels,
                     folderOption: "--add-class")
    }
}

/// `vinspect add-class`: a defect type added to a trained model, nothing else retrained.
struct AddClass: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-class",
        abstract: "Add a defect type to a trained model without retraining anything else.",
        discussion: """
            The images of FOLDER (walked recursively) become one more defect type of the model
            given by --to; the anomaly scorer and the other types stay as they are. Images the
            class already has are skipped, so adding the same folder twice changes nothing.
            `vinspect train --add-class FOLDER --to MODEL` does the same.

            Example:
              vinspect add-class new-defects/dent --to line3.vimodel
            """)

    @Argument(help: "Folder of images of the new defect type.")
    var folder: String

    @Option(help: "The model to extend (rewritten in place unless --output is given).")
    var to: String

    @Option(help: "Class name (default: the folder's name); not empty, no '/' or control characters, not 'unknown'.")
    var name: String?

    @Option(help: "Where to write the extended model (default: over --to).")
    var output: String?

    @Option(help: "Use only K images of the folder, drawn with --seed.")
    var shots: Int?

    @Option(help: "Seed of the --shots draw.")
    var seed: UInt64 = 0

    @OptionGroup var pixelLimit: PixelLimit
    var maxPixels: Int { pixelLimit.maxPixels }

    func validate() throws {
        if let shots, shots < 1 { throw ValidationError("--shots must be at least 1") }
        if let name, let problem = InspectionModel.classNameProblem(name) { throw ValidationError("--name: \(problem)") }
    }

    func run() throws {
        try addDefectClass(folder: folder, to: to, name: name, output: output, shots: shots, seed: seed, maxPixels: maxPixels,
                     folderOption: "the folder")
    }
}

/// What `add-class` and `train --add-class` do: read the folder's images, add them to the
/// model as one class, write the model (atomically), say what changed.
func addDefectClass(folder: String, to path: String, name: String?, output: String?, shots: Int?, seed: UInt64, maxPixels: Int,
              folderOption: String) throws {
    guard isFolder(folder) else { throw ValidationError("\(folderOption) \(folder): not a folder") }
    let className = name ?? (folder.split(separator: "/").last.map(String.init) ?? folder)
    if let problem = InspectionModel.classNameProblem(className) {
        throw ValidationError("\(folderOption) \(folder): \(problem); give the class a name with --name NAME")
    }
    try checkModelOutput(output ?? path, option: output == nil ? "--to" : "--output")
    let model = try InspectionModel(contentsOfFile: path)
    var unreadable = 0
    var generator = Xoshiro256(seed: seed)
    var files = imageFilesBelow(folder)
    if let shots, shots < files.count { files = Array(files.shuffled(using: &generator).prefix(shots)) }
    let images = readTrainingImages(files, unreadable: &unreadable, maxPixels: maxPixels)
    func classShots(_ model: InspectionModel) -> Int { model.classifier?.classifier.classes.first { $0.name == className }?.shots ?? 0 }
    let extended = try InspectorTrainer.addingClass(className, images: images, to: model)
    let destination = output ?? path
    try extended.write(toFile: destination)
    let added = classShots(extended) - classShots(model), copies = images.count - added
    print("added \(added) image(s) to class \(className) (now \(classShots(extended)) shots"
          + (copies > 0 ? "; \(copies) already in the class, skipped" : "") + ") -> \(destination)")
    if !extended.canPassParts { printError("vinspect: warning: \(cannotPassAnyPart)") }
    if unreadable > 0 { throw ExitStatus.someInputsUnreadable }
}

/// Decodes training images; an unreadable one is reported on standard error, counted and
/// skipped, so that one bad file does not stop a training run.
func readTrainingImages(_ files: [String], unreadable: inout Int, maxPixels: Int = Image.defaultMaxPixels) -> [Image] {
    var images: [Image] = []
    for file in files {
        do { images.append(try Image(contentsOfFile: file, maxPixels: maxPixels)) } catch {
            unreadable += 1
            printError("vinspect: skipped \(error)")
        }
    }
    return images
}

/// Image files (PNG, JPEG) below a folder, recursively, in the walk's order.
func imageFilesBelow(_ folder: String) -> [String] {
    InputFiles([folder]).filter(InputFiles.isImageName)
}

func isFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

/// Why a model without good images and without a `good` class is of limited use, and what
/// to do (said by `train` on standard error and by `info`).
let cannotPassAnyPart = "no good images and no good class: this model cannot pass any part, it reports every image as a defect "
    + "(it only names the defect type); train with --good DIR, or add a good sub-folder to the --classes folder"

/// What a model holds, as `vinspect info` prints it.
func describe(_ model: InspectionModel, path: String) -> String {
    var lines: [String] = []
    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
    lines.append("model:        \(path)\(size.map { " (\(format(Double($0) / 1_048_576)) MB)" } ?? "")")
    lines.append("created:      \(model.created) by \(model.createdBy)")
    let source = model.backboneMetadata["source"]?.stringValue.map { " from \($0)" } ?? ""
    lines.append("backbone:     \(model.architecture)\(source)")
    let p = model.preprocessing
    let roi = p.regionOfInterest.map { ", region \($0.x),\($0.y),\($0.width),\($0.height)" } ?? ""
    let shape = p.aspectRatio == 1 ? "square" : "the training images' aspect ratio \(format(p.aspectRatio)) kept"
    lines.append("input:        \(p.inputSize.width)x\(p.inputSize.height) (\(shape))\(roi)")
    if let anomaly = model.anomaly {
        func setting(_ o: AnomalyScorerOptions) -> String {
            "\(o.mode.rawValue), layers \(o.features.layers.map(String.init).joined(separator: ",")), aggregation \(o.features.aggregation), "
                + "augmentation \(o.augmentation.rawValue)" + (o.topFraction > 0 ? ", score = mean of top \(format(o.topFraction * 100)) %" : "")
        }
        func learnt(_ scorer: AnomalyScorer) -> String {
            switch scorer.normality {
            case .memoryBank(let memory):
                return "memory bank \(memory.bank.count) x \(memory.bank.dimension) (from \(memory.patchCount) patches)"
            case .positionGaussian(let gaussian):
                return "Gaussians at \(gaussian.gridHeight)x\(gaussian.gridWidth) positions over \(gaussian.channels.count) "
                    + "of \(gaussian.featureDimension) channels (from \(gaussian.sampleCount) patch grids)"
            }
        }
        if let choice = anomaly.choice {
            let how: String
            let ratio = choice.rotationRatio.map { format($0) } ?? "-"
            switch choice.family {
            case .turning, .aligned:
                let turns = choice.family == .turning
                how = "parts \(turns ? "turn" : "lie the same way"): rotated copies bring held-out good images to \(ratio) x their distance "
                    + "(\(turns ? "below" : "not below") \(format(choice.ratioThreshold)); \(choice.measuredOn) images)"
            case .both:
                how = "one good image: too few to tell whether the parts turn, both settings combined"
            }
            lines.append("settings:     chosen by the engine; \(how)")
        }
        if anomaly.members.count == 1 {
            let scorer = anomaly.members[0]
            lines.append("anomaly:      \(model.goodImageCount) good images, \(learnt(scorer)), \(setting(scorer.options))"
                         + (anomaly.isSingle ? "" : "; held-out good \(format(Double(anomaly.normalizers[0].mean))) ± \(format(Double(anomaly.normalizers[0].spread)))"))
        } else {
            lines.append("anomaly:      \(model.goodImageCount) good images, \(anomaly.members.count) scorers combined "
                         + "(each scaled by its held-out good scores, then averaged):")
            for (index, member) in anomaly.members.enumerated() {
                let n = anomaly.normalizers[index]
                lines.append("  \(index + 1). \(setting(member.options)); \(learnt(member)); held-out good \(format(Double(n.mean))) ± \(format(Double(n.spread)))")
            }
        }
        let c = anomaly.calibration
        let how: String
        switch c.method {
        case .f1WithDefects, .goodAndDefects: how = ""
        case .heldOutGood, .jitteredViews:
            // The rule as this model holds it (derived from its own scores, so that a model
            // made under another rule is described truthfully).
            let n = Double(c.goodScores.count)
            let mean = c.goodScores.reduce(0.0) { $0 + Double($1) } / max(n, 1)
            let spread = (c.goodScores.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / max(n - 1, 1)).squareRoot()
            how = c.scale != nil && spread > 0
                ? ", held-out mean + \(format(((Double(c.threshold) - mean) / spread * 100).rounded() / 100)) spreads"
                : ", target false-reject rate \(format(c.targetFalseRejectRate * 100)) %"
        }
        lines.append("threshold:    \(format(Double(c.threshold))) \(c.scale != nil ? "on the good parts' scale" : "raw") (\(c.method.rawValue); \(c.goodScores.count) held-out good"
                     + (c.defectScores.isEmpty ? "" : ", \(c.defectScores.count) defect") + " scores" + how + ")")
        if c.defectsOverlapGood {
            lines.append("warning:      some defect examples score as low as held-out good parts: no threshold separates them, and they did not pull the threshold into the good parts' scores")
        }
        lines.append("boxes:        regions of at least \(model.minimumDefectArea) pixels")
    } else {
        lines.append("anomaly:      none (no good images given)")
    }
    if let classifier = model.classifier {
        let c = classifier.classifier
        lines.append("classes:      " + c.classes.map { "\($0.name) (\($0.shots))" }.joined(separator: ", "))
        lines.append("classifier:   embedding \(classifier.embedding.rawValue), power \(format(Double(c.transform.power))), "
                     + "scale \(format(Double(c.scale))), unknown below similarity "
                     + (c.rejectionThreshold.map { format(Double($0)) } ?? "never")
                     + (c.transform.head.map { ", projection head \($0.inputDimension) -> \($0.outputDimension)" } ?? ""))
    } else {
        lines.append("classes:      none (no class folders given)")
    }
    if !model.canPassParts { lines.append("warning:      \(cannotPassAnyPart)") }
    return lines.joined(separator: "\n")
}

/// `vinspect info MODEL`: what a model holds.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model file: backbone, input size, good images, memory bank, classes, thresholds, creation.")

    @Argument(help: "The model file.")
    var model: String

    func run() throws {
        let loaded = try InspectionModel(contentsOfFile: model)
        print(describe(loaded, path: model))
    }
}

// The embeddable inspection API: load a model once, then inspect images from any number
// of threads.
import Anomaly
import FewShot
import Foundation
import NeuralNet
import TensorCore

/// A defect region in the original image: its bounding box (pixels of the original image),
/// its area and its score (normalised like the image score: 0.5 is the threshold).
public struct DefectRegion: Sendable, Equatable, Codable {
    /// The bounding box, in pixels of the original image.
    public var x: Int, y: Int, width: Int, height: Int
    /// Area of the region in pixels of the original image (approximate: counted on the map).
    public var area: Int
    /// The normalised score of the region's peak.
    public var score: Float

    /// A region with its size, area and score.
    public init(x: Int, y: Int, width: Int, height: Int, area: Int, score: Float) {
        self.x = x; self.y = y; self.width = width; self.height = height; self.area = area; self.score = score
    }
}

/// What the inspection of one image found.
public struct InspectionResult: Sendable {
    /// The decision for the part.
    public enum Verdict: String, Sendable, Codable {
        /// The part passes.
        case ok
        /// The part has a defect (or, for a classifier-only model, is not known to be good).
        case defect
    }

    /// `ok` or `defect`.
    public var verdict: Verdict
    /// Anomaly score in [0, 1); 0.5 is the decision threshold, higher is more anomalous.
    /// Without an anomaly scorer: the classifier's probability that the part is not good.
    public var score: Float
    /// The raw anomaly score (largest value of the map), nil without an anomaly scorer.
    public var anomalyScore: Float?
    /// The raw threshold the score is compared with, nil without an anomaly scorer.
    public var threshold: Float?
    /// The anomaly map of the inspected region at the model's input size
    /// (the input size, ``Preprocessing/inputSize``), raw values; nil without an anomaly scorer.
    public var anomalyMap: AnomalyMap?
    /// Pixels of ``anomalyMap`` above the threshold, row-major, same size.
    public var mask: [Bool]?
    /// Defect regions in original-image pixels, highest score first.
    public var boxes: [DefectRegion]
    /// The defect type (a class name, or `unknown` when the image is far from every known
    /// type); nil when the part is OK or the model has no classifier.
    public var defectType: String?
    /// How sure the classifier is of ``defectType``, in [0, 1]: the softmax probability of
    /// the nearest type when there are several; with a single defect type, 0.5 on the
    /// "unknown" boundary, 0.95 for a defect as close as the type's own examples typically
    /// are, and lower the further the image is from the type (below 0.5 it is `unknown`).
    public var typeConfidence: Float?
    /// The raw embedding the defect type was decided from (kept for
    /// ``Inspector/refiningTypes(_:steps:)``); nil when the part was not typed.
    var typeEmbedding: [Float]?
    /// Size of the original image.
    public var imageWidth: Int, imageHeight: Int
    /// The part of the image that was inspected (the whole image without a region of interest).
    public var region: RegionOfInterest
    /// Wall time of this inspection, decoding included when the image came from a file.
    public var milliseconds: Double
    /// How raw values relate to the threshold (for heat maps); nil without an anomaly scorer.
    var calibration: Calibration?
}

/// Why one image could not be inspected.
public enum InspectionError: Error, CustomStringConvertible, Sendable {
    /// The file could not be read or decoded (the message names the file and the reason).
    case unreadableImage(ImageError)
    /// A folder given as an input holds no PNG or JPEG image (walked recursively).
    case noImages(folder: String)

    public var description: String {
        switch self {
        case .unreadableImage(let error): return error.description
        case .noImages(let folder):
            return "\(folder): no PNG or JPEG images in this folder or below it (only .png, .jpg and .jpeg files are inspected); check the path"
        }
    }

    /// A short machine-readable reason, e.g. `truncated`, `not-an-image`.
    public var kind: String {
        switch self {
        case .unreadableImage(let error): return error.kind
        case .noImages: return "no-images"
        }
    }
}

/// Inspects images with a trained ``InspectionModel``.
///
/// An `Inspector` is immutable after loading: it is `Sendable` and may be called from any
/// number of threads at once (the compute kernels share one worker pool; a call that finds
/// it busy computes on its own thread, with identical results).
///
/// ```swift
/// let inspector = try Inspector(contentsOfFile: "line3.vimodel")
/// let result = try inspector.inspect(contentsOfFile: "part-0001.png")
/// if result.verdict == .defect { print(result.defectType ?? "defect", result.boxes) }
/// ```
public final class Inspector: Sendable {
    /// The model this inspector applies.
    public let model: InspectionModel
    /// The classifier over defect types only (the OK class left out), made once.
    let defectTypes: PrototypeClassifier?

    /// The largest image, in pixels, that file inspection decodes (larger ones are error
    /// records that say so): a guard against decompression bombs.
    public let maxPixels: Int
    /// The worker threads one inspection uses (nil: this thread only).
    let pool: ThreadPool?

    /// An inspector for a model in memory.
    ///
    /// - Parameters:
    ///   - model: the trained model.
    ///   - maxPixels: the largest image, in pixels, that file inspection decodes.
    ///   - threads: how many threads one inspection may use: nil (the default) shares one
    ///     pool of a thread per core among all inspectors; 1 keeps each inspection on the
    ///     calling thread (for hosts that run several inspections side by side, e.g. one
    ///     per camera); n > 1 gives this inspector a pool of its own.
    public init(model: InspectionModel, maxPixels: Int = Image.defaultMaxPixels, threads: Int? = nil) {
        self.model = model
        self.maxPixels = maxPixels
        defectTypes = model.classifier?.defectTypes
        pool = ThreadPool.forThreads(threads)
    }

    /// Loads a model file written by `vinspect train` or ``InspectionModel/write(to:)``.
    ///
    /// - Throws: ``InspectionModelError`` naming the file (missing, damaged, not a model).
    public convenience init(contentsOf url: URL, maxPixels: Int = Image.defaultMaxPixels, threads: Int? = nil) throws(InspectionModelError) {
        self.init(model: try InspectionModel(contentsOf: url), maxPixels: maxPixels, threads: threads)
    }

    /// ``init(contentsOf:maxPixels:threads:)`` with a path.
    public convenience init(contentsOfFile path: String, maxPixels: Int = Image.defaultMaxPixels, threads: Int? = nil) throws(InspectionModelError) {
        self.init(model: try InspectionModel(contentsOfFile: path), maxPixels: maxPixels, threads: threads)
    }

    /// Inspects a decoded image (any size, grey or colour, 8 or 16 bits), with the
    /// inspector's threads. Safe to call from several threads at once.
    public func inspect(_ image: Image) -> InspectionResult {
        inspect(image, startedAt: seconds(), pool: pool)
    }

    /// Reads and inspects an image file (PNG or JPEG; file URLs only).
    ///
    /// - Throws: ``InspectionError/unreadableImage(_:)`` naming the file and the reason.
    public func inspect(contentsOf url: URL) throws(InspectionError) -> InspectionResult {
        try inspect(contentsOfFile: url.path, pool: pool)
    }

    /// ``inspect(contentsOf:)`` with a path.
    public func inspect(contentsOfFile path: String) throws(InspectionError) -> InspectionResult {
        try inspect(contentsOfFile: path, pool: pool)
    }

    /// ``inspect(_:)`` on the given pool instead of the inspector's own.
    package func inspect(_ image: Image, pool: ThreadPool?) -> InspectionResult {
        inspect(image, startedAt: seconds(), pool: pool)
    }

    /// ``inspect(contentsOfFile:)`` on the given pool instead of the inspector's own.
    package func inspect(contentsOfFile path: String, pool: ThreadPool?) throws(InspectionError) -> InspectionResult {
        let start = seconds()
        let image: Image
        do { image = try Image(contentsOfFile: path, maxPixels: maxPixels) } catch { throw .unreadableImage(error) }
        return inspect(image, startedAt: start, pool: pool)
    }

    private func inspect(_ image: Image, startedAt start: Double, pool: ThreadPool?) -> InspectionResult {
        let prep = model.preprocessing
        let region = prep.regionOfInterest?.clipped(width: image.width, height: image.height)
            ?? RegionOfInterest(x: 0, y: 0, width: image.width, height: image.height)
        let size = prep.inputSize
        let input = prep.tensor(image).reshaped([1, size.height, size.width, 3])
        // The deep layers after the last tap are run only when the classifier needs the
        // embedding: always without an anomaly scorer, otherwise only for defects.
        var features = model.backbone.features(input, stoppingAfterLastTap: model.anomaly != nil, pool: pool)

        var result = InspectionResult(verdict: .ok, score: 0, anomalyScore: nil, threshold: nil, anomalyMap: nil, mask: nil,
                                      boxes: [], defectType: nil, typeConfidence: nil, imageWidth: image.width,
                                      imageHeight: image.height, region: region, milliseconds: 0, calibration: nil)
        if let anomaly = model.anomaly {
            let (raw, map) = anomaly.combine(featureMaps: features.maps, pool: pool)[0]
            let calibration = anomaly.calibration
            result.calibration = calibration
            result.anomalyScore = raw
            result.threshold = calibration.threshold
            result.score = calibration.normalized(raw)
            result.verdict = result.score >= 0.5 ? .defect : .ok
            result.anomalyMap = map
            result.mask = map.mask(threshold: calibration.threshold)
            // Boxes are found on the map and scaled to the original image; the minimum area
            // is converted to map pixels the same way.
            let sx = Double(region.width) / Double(map.width), sy = Double(region.height) / Double(map.height)
            let minimumArea = max(1, Int((Double(model.minimumDefectArea) / (sx * sy)).rounded(.up)))
            result.boxes = map.boxes(threshold: calibration.threshold, minimumArea: minimumArea).map { box in
                let x0 = Int((Double(box.x) * sx).rounded(.down)), y0 = Int((Double(box.y) * sy).rounded(.down))
                let x1 = min(region.width, Int((Double(box.x + box.width) * sx).rounded(.up)))
                let y1 = min(region.height, Int((Double(box.y + box.height) * sy).rounded(.up)))
                return DefectRegion(x: region.x + x0, y: region.y + y0, width: x1 - x0, height: y1 - y0,
                                    area: Int((Double(box.area) * sx * sy).rounded()), score: calibration.normalized(box.peak))
            }
        }
        if let classifier = model.classifier, model.anomaly == nil || result.verdict == .defect {
            features = model.backbone.completing(features, pool: pool)
            let vector = embeddings(from: features, source: classifier.embedding, regions: result.anomalyMap.map { [$0] })[0]
            if model.anomaly == nil {
                // Classifier only: the OK class, when there is one, decides the verdict.
                let all = classifier.classifier.predict(vector)
                let names = classifier.classifier.classNames
                if let ok = names.firstIndex(where: InspectionModel.isOKClass) {
                    result.score = 1 - all.probabilities[ok]
                    result.verdict = all.nearest == ok && all.label != nil ? .ok : .defect
                } else {
                    result.score = 1
                    result.verdict = .defect
                }
            }
            if result.verdict == .defect, let defectTypes {
                result.typeEmbedding = vector
                let prediction = defectTypes.predict(vector)
                result.defectType = prediction.label ?? "unknown"
                result.typeConfidence = prediction.confidence
            }
        }
        result.milliseconds = (seconds() - start) * 1000
        return result
    }

    /// The results again, with the defect types of the typed parts decided together
    /// (transductive): each type's prototype is moved toward the batch's defects by soft
    /// k-means (`steps` rounds, each defect weighted by its probability of being of that
    /// type; the examples keep their weight), then every typed defect is classified against
    /// the moved prototypes, "unknown" included. Verdicts, scores and boxes are unchanged;
    /// parts that were not typed stay as they are. Worth it when a batch holds several
    /// defects of each type (in episodes on steel defects with one example per type it lifts
    /// accuracy by about 10 points); a batch of one defect gains nothing.
    ///
    /// - Parameters:
    ///   - results: results of ``inspect(_:)`` with this inspector.
    ///   - steps: soft k-means rounds (0 returns the results unchanged).
    public func refiningTypes(_ results: [InspectionResult], steps: Int = 3) -> [InspectionResult] {
        guard steps > 0, let defectTypes else { return results }
        let typed = results.indices.filter { results[$0].typeEmbedding != nil }
        guard !typed.isEmpty else { return results }
        let predictions = defectTypes.predict(batch: typed.map { results[$0].typeEmbedding! }, refinementSteps: steps)
        var out = results
        for (index, prediction) in zip(typed, predictions) {
            out[index].defectType = prediction.label ?? "unknown"
            out[index].typeConfidence = prediction.confidence
        }
        return out
    }

    /// Inspects files and folders (walked recursively, lazily) with `jobs` images in
    /// flight, returning the records in input order as they become ready. Memory stays
    /// bounded whatever the number of files: at most `2 * jobs` results wait to be taken.
    ///
    /// ```swift
    /// for record in inspector.batch(["line3/2026-11-30"], jobs: 2) {
    ///     switch record.outcome { case .success(let r): ...; case .failure(let e): print(e) }
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - paths: files and folders.
    ///   - jobs: images inspected at the same time.
    ///   - heatmapDirectory: when given, a heat-map overlay PNG is written there for every
    ///     inspected image, named by ``Heatmap/fileName(for:)``; folder walks never take it.
    ///   - excluding: files and folders the folder walks leave out (e.g. the run's report).
    public func batch(_ paths: [String], jobs: Int = 1, heatmapDirectory: String? = nil,
                      excluding: [String] = []) -> InspectionBatch {
        // The heat-map folder exists before the walk starts, so that the walk knows it
        // (and leaves it out) even when it lies inside an input folder.
        if let heatmapDirectory { try? FileManager.default.createDirectory(atPath: heatmapDirectory, withIntermediateDirectories: true) }
        return InspectionBatch(inspector: self, files: InputFiles(paths, excluding: excluding + (heatmapDirectory.map { [$0] } ?? [])),
                        jobs: jobs, heatmapDirectory: heatmapDirectory)
    }

    /// The same as ``batch(_:jobs:heatmapDirectory:excluding:)`` as an `AsyncSequence`, for Swift concurrency code.
    ///
    /// ```swift
    /// for await record in inspector.results(for: ["incoming/"], jobs: 2) { ... }
    /// ```
    public func results(for paths: [String], jobs: Int = 1, heatmapDirectory: String? = nil) -> InspectionResults {
        InspectionResults(inspector: self, paths: paths, jobs: jobs, heatmapDirectory: heatmapDirectory)
    }

    /// Inspects one file of a batch: the record, with its heat map written when asked.
    func record(index: Int, path: String, heatmapDirectory: String?, pool: ThreadPool?) -> InspectionRecord {
        var (record, image) = inspectFile(index: index, path: path, pool: pool)
        if let heatmapDirectory, let image { writeHeatmap(&record, image: image, directory: heatmapDirectory) }
        return record
    }

    /// Reads and inspects one file of a batch: its record (without a heat map) and the
    /// decoded image when there is one to draw a heat map on.
    func inspectFile(index: Int, path: String, pool: ThreadPool?) -> (InspectionRecord, Image?) {
        let start = seconds()
        // A folder is produced by the walk only when it holds no image.
        if isDirectory(path) { return (InspectionRecord(index: index, path: path, outcome: .failure(.noImages(folder: path))), nil) }
        let image: Image
        do { image = try Image(contentsOfFile: path, maxPixels: maxPixels) } catch {
            return (InspectionRecord(index: index, path: path, outcome: .failure(.unreadableImage(error))), nil)
        }
        let result = inspect(image, startedAt: start, pool: pool)
        return (InspectionRecord(index: index, path: path, outcome: .success(result)), image)
    }

    /// Draws and writes the heat map of an inspected record into `directory`, noting the
    /// file, the time it took, or why it could not be written.
    func writeHeatmap(_ record: inout InspectionRecord, image: Image, directory: String) {
        guard case .success(let result) = record.outcome else { return }
        let start = seconds()
        let file = directory + (directory.hasSuffix("/") ? "" : "/") + Heatmap.fileName(for: record.path)
        let folder = String(file[..<file.lastIndex(of: "/")!])
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            do {
                // The fast PNG encoder (Sub filter, deflate blocks of literals and runs):
                // an 800 x 600 overlay in about 4 ms against 15 with libpng and zlib
                // level 1, for files of about the same size.
                try Heatmap.overlay(image, result: result).write(toFile: file, fastPNG: true)
                record.heatmap = file
            } catch {
                record.heatmapError = error.description
            }
        } catch {
            record.heatmapError = "\(file): cannot create the folder \(folder) (\(error.localizedDescription))"
        }
        record.heatmapMilliseconds = (seconds() - start) * 1000
    }
}

/// One input of a batch and what became of it.
public struct InspectionRecord: Sendable {
    /// Position in the input order, from 0.
    public var index: Int
    /// The path as given, joined with the folder when a folder was walked.
    public var path: String
    /// The result, or why the file could not be inspected.
    public var outcome: Result<InspectionResult, InspectionError>
    /// The heat-map file written for it, if one was asked for and written.
    public var heatmap: String?
    /// Why the heat map could not be written, if it could not.
    public var heatmapError: String?
    /// Time spent drawing, encoding and writing the heat map (not part of the result's
    /// `milliseconds`, which is the inspection's own time).
    public var heatmapMilliseconds: Double?

    /// A record without a heat map.
    public init(index: Int, path: String, outcome: Result<InspectionResult, InspectionError>) {
        self.index = index
        self.path = path
        self.outcome = outcome
    }
}

/// A running batch inspection (see ``Inspector/batch(_:jobs:heatmapDirectory:excluding:)``): a sequence of records in
/// input order. Worker threads inspect ahead of the consumer by at most `2 * jobs` images.
/// Dropping the batch, or calling ``cancel()``, stops the workers after their current image.
public final class InspectionBatch: Sequence, IteratorProtocol, Sendable {
    private let state: BatchState

    init(inspector: Inspector, files: InputFiles, jobs: Int, heatmapDirectory: String?) {
        let jobs = Swift.max(1, jobs)
        // With one job the kernels use the whole pool but the rest of the work (decoding,
        // drawing and encoding heat maps) is serial: heat maps are then drawn on a thread
        // of their own while the next image is inspected. With several jobs every core is
        // already busy, and each job draws its own heat maps.
        let separateHeatmaps = jobs == 1 && heatmapDirectory != nil
        state = BatchState(files: files.makeIterator(), window: 2 * jobs, workers: jobs)
        for worker in 0..<jobs {
            let state = self.state
            // With several jobs each image is computed on one thread (the jobs are the
            // parallelism); a single job lets the kernels use the whole pool.
            let pool: ThreadPool? = jobs == 1 ? .shared : nil
            let thread = Thread {
                state.work(inspector: inspector, heatmapDirectory: heatmapDirectory, separateHeatmaps: separateHeatmaps, pool: pool)
            }
            thread.name = "vinspect-inspect-\(worker)"
            thread.stackSize = 4 << 20
            thread.start()
        }
        if separateHeatmaps, let heatmapDirectory {
            let state = self.state
            let thread = Thread { state.drawHeatmaps(inspector: inspector, directory: heatmapDirectory) }
            thread.name = "vinspect-heatmaps"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    deinit { state.cancel() }

    /// The next record in input order, waiting for it if needed; nil when all are done.
    public func next() -> InspectionRecord? { state.next() }

    /// Stops taking new images; records already finished can still be read.
    public func cancel() { state.cancel() }
}

/// The shared state of a batch: the lazy file walk, the results waiting in order.
/// Every field is read and written with `condition` held.
private final class BatchState: @unchecked Sendable {
    private let condition = NSCondition()
    private var files: InputFiles.Iterator
    private let window: Int
    private var taken = 0, delivered = 0
    private var exhausted = false, cancelled = false
    private var ready: [Int: InspectionRecord] = [:]
    /// Inspected records waiting for their heat maps (separate heat-map thread only); the
    /// window bounds them, as it bounds everything taken and not yet delivered.
    private var awaitingHeatmaps: [(record: InspectionRecord, image: Image)] = []
    private var activeWorkers: Int

    init(files: InputFiles.Iterator, window: Int, workers: Int) {
        self.files = files
        self.window = window
        activeWorkers = workers
    }

    func work(inspector: Inspector, heatmapDirectory: String?, separateHeatmaps: Bool, pool: ThreadPool?) {
        defer {
            condition.lock()
            activeWorkers -= 1
            condition.broadcast()
            condition.unlock()
        }
        while true {
            condition.lock()
            while !cancelled && !exhausted && taken - delivered >= window { condition.wait() }
            if cancelled || exhausted {
                condition.unlock()
                return
            }
            guard let path = files.next() else {
                exhausted = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let index = taken
            taken += 1
            condition.unlock()

            if separateHeatmaps {
                let (record, image) = inspector.inspectFile(index: index, path: path, pool: pool)
                condition.lock()
                if let image { awaitingHeatmaps.append((record, image)) } else { ready[index] = record }
                condition.broadcast()
                condition.unlock()
                continue
            }
            let record = inspector.record(index: index, path: path, heatmapDirectory: heatmapDirectory, pool: pool)

            condition.lock()
            ready[index] = record
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The heat-map thread: draws and writes the heat maps of inspected records in the
    /// order they were inspected, then hands each record on.
    func drawHeatmaps(inspector: Inspector, directory: String) {
        while true {
            condition.lock()
            // (Runs until the inspection workers are gone, cancelled or not: a record they
            // finish after a cancel is still handed on.)
            while awaitingHeatmaps.isEmpty && activeWorkers > 0 { condition.wait() }
            if awaitingHeatmaps.isEmpty {
                condition.unlock()
                return
            }
            var (record, image) = awaitingHeatmaps.removeFirst()
            condition.unlock()
            inspector.writeHeatmap(&record, image: image, directory: directory)
            condition.lock()
            ready[record.index] = record
            condition.broadcast()
            condition.unlock()
        }
    }

    func next() -> InspectionRecord? {
        condition.lock()
        defer { condition.unlock() }
        while ready[delivered] == nil && !(exhausted && delivered == taken) && !(cancelled && delivered == taken) {
            condition.wait()
        }
        guard let record = ready.removeValue(forKey: delivered) else { return nil }
        delivered += 1
        condition.broadcast()
        return record
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Batch inspection as an `AsyncSequence` of records in input order (see
/// ``Inspector/results(for:jobs:heatmapDirectory:)``).
public struct InspectionResults: AsyncSequence, Sendable {
    /// Each element is one input's record.
    public typealias Element = InspectionRecord
    let inspector: Inspector
    let paths: [String]
    let jobs: Int
    let heatmapDirectory: String?

    /// Starts the batch: worker threads begin inspecting ahead of the consumer.
    public func makeAsyncIterator() -> Iterator {
        Iterator(batch: inspector.batch(paths, jobs: jobs, heatmapDirectory: heatmapDirectory))
    }

    /// Waits for each record off the cooperative thread pool. Cancelling the task that
    /// iterates stops the batch: no new image is started, and the sequence ends (nil) at
    /// the next call.
    public struct Iterator: AsyncIteratorProtocol {
        let batch: InspectionBatch

        /// The next record in input order; nil when all inputs are done or the task was
        /// cancelled.
        public mutating func next() async -> InspectionRecord? {
            let batch = self.batch
            if Task.isCancelled {
                batch.cancel()
                return nil
            }
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().async { continuation.resume(returning: batch.next()) }
                }
            } onCancel: {
                batch.cancel()
            }
        }
    }
}

extension ThreadPool {
    /// The pool for a `threads` option: nil -> the shared pool, 1 or less -> none (the
    /// calling thread), n -> a pool of n threads.
    package static func forThreads(_ threads: Int?) -> ThreadPool? {
        switch threads {
        case nil: return .shared
        case let count? where count <= 1: return nil
        case let count?: return ThreadPool(threadCount: count)
        }
    }
}

// Report records (one per input) and the JSONL / CSV writers that stream them to a file,
// flushed record by record so that an interrupted run keeps everything it finished.
import Foundation
import ModelFile

#if canImport(Glibc)
import Glibc
#endif

/// One line of a report: the contract of `vinspect inspect --report` (see DESIGN.md).
public struct ReportRecord: Sendable, Equatable {
    /// The input path as given (joined with the folder when a folder was walked).
    public var path: String
    /// `ok`, `defect` or `error`.
    public var verdict: String
    /// Normalised anomaly score in [0, 1), 0.5 = threshold; nil for errors.
    public var score: Float?
    /// Raw anomaly score; nil for errors and classifier-only models.
    public var anomalyScore: Float?
    /// Raw anomaly threshold; nil for errors and classifier-only models.
    public var threshold: Float?
    /// Defect type (`unknown` when far from every known type); nil when OK or no classifier.
    public var defectType: String?
    /// How sure the classifier is of ``defectType``, in [0, 1]; nil with no type.
    public var typeConfidence: Float?
    /// Defect regions in original-image pixels.
    public var boxes: [DefectRegion]
    /// The heat-map file written for this input, if any.
    public var heatmap: String?
    /// Why the input could not be inspected; nil otherwise.
    public var error: String?
    /// Wall time for this input.
    public var milliseconds: Double

    /// The record of an inspected image.
    public init(path: String, result: InspectionResult, heatmap: String?) {
        self.path = path
        verdict = result.verdict.rawValue
        score = result.score
        anomalyScore = result.anomalyScore
        threshold = result.threshold
        defectType = result.defectType
        typeConfidence = result.typeConfidence
        boxes = result.boxes
        self.heatmap = heatmap
        error = nil
        milliseconds = result.milliseconds
    }

    /// The record of an input that could not be inspected.
    public init(path: String, error: String, milliseconds: Double = 0) {
        self.path = path
        verdict = "error"
        score = nil; anomalyScore = nil; threshold = nil; defectType = nil; typeConfidence = nil
        boxes = []
        heatmap = nil
        self.error = error
        self.milliseconds = milliseconds
    }

    /// The record as one line of JSON, fields in the contract's order, absent values `null`.
    public var jsonLine: String {
        func string(_ s: String?) -> String { s.map { JSONValue.string($0).description } ?? "null" }
        func number(_ x: Float?) -> String { x.map { $0.isFinite ? formatNumber(Double($0)) : "null" } ?? "null" }
        let boxText = boxes.map {
            "{\"x\":\($0.x),\"y\":\($0.y),\"width\":\($0.width),\"height\":\($0.height),\"area\":\($0.area),\"score\":\(number($0.score))}"
        }.joined(separator: ",")
        return "{\"path\":\(string(path)),\"verdict\":\(string(verdict)),\"score\":\(number(score)),"
            + "\"anomaly_score\":\(number(anomalyScore)),\"threshold\":\(number(threshold)),"
            + "\"defect_type\":\(string(defectType)),\"type_confidence\":\(number(typeConfidence)),"
            + "\"boxes\":[\(boxText)],\"heatmap\":\(string(heatmap)),\"error\":\(string(error)),"
            + "\"milliseconds\":\(formatNumber((milliseconds * 100).rounded() / 100))}"
    }

    /// The CSV header matching ``csvLine``.
    public static let csvHeader = "path,verdict,score,anomaly_score,threshold,defect_type,type_confidence,boxes,heatmap,error,milliseconds"

    /// The record as one CSV row (RFC 4180 quoting). Boxes are `x y width height score`
    /// groups separated by `;`.
    public var csvLine: String {
        func field(_ s: String?) -> String {
            guard let s else { return "" }
            if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
                return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            return s
        }
        func number(_ x: Float?) -> String { x.map { $0.isFinite ? formatNumber(Double($0)) : "" } ?? "" }
        let boxText = boxes.map { "\($0.x) \($0.y) \($0.width) \($0.height) \(number($0.score))" }.joined(separator: ";")
        return [field(path), verdict, number(score), number(anomalyScore), number(threshold), field(defectType),
                number(typeConfidence), field(boxText), field(heatmap), field(error),
                formatNumber((milliseconds * 100).rounded() / 100)].joined(separator: ",")
    }
}

/// A number as short JSON text (up to 6 significant digits; integers without a fraction).
func formatNumber(_ x: Double) -> String {
    if x == x.rounded() && abs(x) < 1e15 { return String(Int64(x)) }
    var text = String(format: "%.6g", x)
    if text.contains("e") { text = String(format: "%.6e", x) }
    return text
}

/// Why a report could not be written.
public enum ReportError: Error, CustomStringConvertible, Sendable {
    /// The file could not be created (missing folder, permissions).
    case cannotCreate(path: String, reason: String)
    /// A write failed (disk full, I/O error).
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotCreate(let path, let reason):
            return "\(path): cannot create the report (\(reason)); check that the folder exists and is writable"
        case .writeFailed(let path, let reason):
            return "\(path): writing the report failed (\(reason)); check the free space"
        }
    }
}

/// Streams report records to a file as JSON Lines (`.jsonl`, `.json`) or CSV (`.csv`),
/// one `write` per record, so that every finished record is on disk even if the process
/// is killed.
///
/// A new report file is written in place. When the file already exists it is not touched
/// until ``finish()``: the records go to ``writingTo`` (`PATH.partial-PID` beside it), which
/// `finish` renames over the old report, so a run killed at any moment leaves the old
/// report whole (and the new records in the partial file).
public final class ReportWriter {
    /// The two formats.
    public enum Format: String, Sendable {
        /// One JSON object a line (`.jsonl`).
        case jsonLines = "jsonl"
        /// Comma-separated values with a header line (`.csv`).
        case csv
    }

    /// The report file.
    public let path: String
    /// The file the records are written to now: ``path``, or the partial file beside it
    /// when ``path`` existed.
    public let writingTo: String
    /// JSON Lines or CSV.
    public let format: Format
    private let descriptor: Int32
    private var finished = false

    /// Creates the report file, or its partial file when one exists already; the format
    /// follows the extension (`.csv` gives CSV, anything else JSON Lines) unless given.
    ///
    /// - Throws: ``ReportError/cannotCreate(path:reason:)`` when the path is a folder,
    ///   FIFO or device, or cannot be created.
    public init(path: String, format: Format? = nil) throws(ReportError) {
        self.path = path
        self.format = format ?? (path.lowercased().hasSuffix(".csv") ? .csv : .jsonLines)
        var status = stat()
        let exists = stat(path, &status) == 0
        if exists, let kind = specialFileKind(status.st_mode) {
            throw .cannotCreate(path: path, reason: "it is \(kind), not a regular file")
        }
        writingTo = exists ? path + ".partial-\(getpid())" : path
        descriptor = open(writingTo, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0o644)
        if descriptor < 0 { throw .cannotCreate(path: writingTo, reason: String(cString: strerror(errno))) }
        if self.format == .csv { try writeLine(ReportRecord.csvHeader) }
    }

    deinit { close(descriptor) }

    /// Flushes the report to disk and, when it replaces an existing report, renames it
    /// over that one. Call it once, after the last record.
    public func finish() throws(ReportError) {
        guard !finished else { return }
        finished = true
        if fsync(descriptor) != 0 { throw .writeFailed(path: writingTo, reason: String(cString: strerror(errno))) }
        if writingTo != path && rename(writingTo, path) != 0 {
            throw .writeFailed(path: path, reason: "cannot replace it with \(writingTo): \(String(cString: strerror(errno)))")
        }
    }

    /// Appends one record.
    public func append(_ record: ReportRecord) throws(ReportError) {
        try writeLine(format == .csv ? record.csvLine : record.jsonLine)
    }

    private func writeLine(_ line: String) throws(ReportError) {
        var bytes = Array(line.utf8)
        bytes.append(10)
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
            done += count
        }
    }
}

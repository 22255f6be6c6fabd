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

#if canImport(Glibc)
import Glibc
#endif

/// `vinspect inspect MODEL PATH...`: batch inspection with a report and heat maps.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect images (files and folders, recursively) with a model and write one report record per image.",
        discussion: """
            Records come in input order, one per input: verdict ok / defect / error, score
            (0.5 is the threshold), raw anomaly score and threshold, defect type and confidence,
            boxes, heat-map file, error message, milliseconds. --report FILE.jsonl writes JSON
            Lines, FILE.csv writes CSV; without --report the records go to standard output as
            JSON Lines. Each record is written as soon as it and those before it are done, so
            an interrupted run keeps every finished record. Unreadable or corrupt files become
            error records and the run goes on.

            Progress goes to standard error: a progress bar on a terminal, a log line every
            few seconds otherwise; a summary at the end.

            Exit status: 0 completed; 1 defects found (only with --fail-on-defect); 2 some
            inputs could not be read; 3 could not run. When inputs were unreadable, 2 wins.

            Example:
              vinspect inspect line3.vimodel incoming/ --report report.jsonl --heatmaps heatmaps --jobs 2
            """)

    @Argument(help: "The model file (from `vinspect train`).")
    var model: String

    @Argument(help: "Image files or folders (walked recursively, in name order; hidden files skipped).")
    var paths: [String]

    @Option(help: "Write the records to this file: .jsonl (JSON Lines) or .csv.")
    var report: String?

    @Option(help: "Write a heat-map overlay PNG per image into this folder (created if needed).")
    var heatmaps: String?

    @Option(help: "Images inspected in parallel (each on its own thread; 1 lets one image use every core).")
    var jobs: Int = 1

    @Option(help: ArgumentHelp("Decide the defect types of the whole run together: the types' prototypes move toward this run's defects by N rounds of soft k-means before every defect is typed (transductive; helps when the run holds several defects of each type). The records are then written when the whole run is done, not one by one.", valueName: "N"))
    var refineTypes: Int = 0

    @OptionGroup var pixelLimit: PixelLimit
    var maxPixels: Int { pixelLimit.maxPixels }

    @Flag(help: "Exit with status 1 when any part is found defective.")
    var failOnDefect = false

    @Flag(help: "No progress output, only the summary.")
    var quiet = false

    func validate() throws {
        if jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be between 1 and 256") }
        if refineTypes < 0 || refineTypes > 100 { throw ValidationError("--refine-types must be between 0 and 100 (0: each image typed on its own)") }
        if paths.isEmpty { throw ValidationError("give at least one image file or folder to inspect") }
    }

    func run() throws {
        let summary = try runInspection(model: model, paths: paths, report: report, heatmaps: heatmaps, jobs: jobs, quiet: quiet,
                                        refineTypes: refineTypes, maxPixels: maxPixels)
        if summary.errors > 0 { throw ExitStatus.someInputsUnreadable }
        if failOnDefect && summary.defects > 0 { throw ExitStatus.defectsFound }
    }
}

/// Counts of a finished inspection run.
struct InspectionSummary {
    var ok = 0, defects = 0, errors = 0
    var slowest: (path: String, milliseconds: Double)?
    var seconds: Double = 0
    var heatmapMilliseconds = 0.0, heatmaps = 0
    var total: Int { ok + defects + errors }
}

/// Runs a batch inspection: report, heat maps, progress, summary. Shared by `inspect` and `demo`.
func runInspection(model path: String, paths: [String], report: String?, heatmaps: String?, jobs: Int,
                   quiet: Bool, refineTypes: Int = 0, maxPixels: Int = Image.defaultMaxPixels) throws -> InspectionSummary {
    let inspector = try Inspector(contentsOfFile: path, maxPixels: maxPixels)
    // Outputs must not replace what the run reads: checked before anything is written.
    for (option, output) in [("--report", report), ("--heatmaps", heatmaps)] {
        guard let output else { continue }
        if sameFile(output, path) { throw ValidationError("\(option) \(output) is the model file; write the output elsewhere") }
        if let input = paths.first(where: { sameFile(output, $0) }) {
            throw ValidationError("\(option) \(output) is the input \(input); write the output elsewhere (inside an input folder is fine: the walk leaves it out)")
        }
    }
    if let heatmaps {
        do { try FileManager.default.createDirectory(atPath: heatmaps, withIntermediateDirectories: true) } catch {
            throw ValidationError("--heatmaps \(heatmaps): cannot create the folder (\(error.localizedDescription))")
        }
    }
    let writer: ReportWriter? = try report.map { try ReportWriter(path: $0) }
    // Counting first costs one directory walk and keeps no paths, so that memory stays
    // bounded; it gives the progress display its total.
    let outputs = [report, writer?.writingTo, heatmaps].compactMap { $0 }
    let (total, skipped) = InputFiles(paths, excluding: outputs).census()
    let progress = Progress(total: total, quiet: quiet)
    var summary = InspectionSummary()
    let start = monotonicSeconds()
    func emit(_ record: InspectionRecord) throws {
        let line: ReportRecord
        switch record.outcome {
        case .success(let result):
            line = ReportRecord(path: record.path, result: result, heatmap: record.heatmap)
            if result.verdict == .defect { summary.defects += 1 } else { summary.ok += 1 }
            if summary.slowest == nil || result.milliseconds > summary.slowest!.milliseconds {
                summary.slowest = (record.path, result.milliseconds)
            }
            if let problem = record.heatmapError { progress.log("vinspect: heat map not written: \(problem)") }
            if let time = record.heatmapMilliseconds {
                summary.heatmapMilliseconds += time
                summary.heatmaps += 1
            }
        case .failure(let error):
            line = ReportRecord(path: record.path, error: error.description)
            summary.errors += 1
            progress.log("vinspect: error: \(error.description)")
        }
        if let writer { try writer.append(line) } else { print(line.jsonLine); fflush(nil) }
    }
    // With --refine-types the records wait for the whole run (without their maps, which
    // the report does not need and the heat maps already used).
    var held: [InspectionRecord] = []
    var done = 0, defects = 0, errors = 0
    for record in inspector.batch(paths, jobs: jobs, heatmapDirectory: heatmaps, excluding: outputs) {
        done += 1
        switch record.outcome {
        case .success(let result): if result.verdict == .defect { defects += 1 }
        case .failure: errors += 1
        }
        if refineTypes > 0 {
            var kept = record
            if case .success(var result) = record.outcome {
                result.anomalyMap = nil
                result.mask = nil
                kept.outcome = .success(result)
            }
            held.append(kept)
        } else {
            try emit(record)
        }
        progress.update(done: done, defects: defects, errors: errors)
    }
    if refineTypes > 0 {
        let successes = held.indices.compactMap { index -> (Int, InspectionResult)? in
            if case .success(let result) = held[index].outcome { return (index, result) }
            return nil
        }
        let refined = inspector.refiningTypes(successes.map(\.1), steps: refineTypes)
        for ((index, _), result) in zip(successes, refined) { held[index].outcome = .success(result) }
        for record in held { try emit(record) }
    }
    try writer?.finish()
    summary.seconds = monotonicSeconds() - start
    progress.finish()
    var text = "\(summary.total) image(s) in \(format(summary.seconds)) s"
    if summary.total > 0 { text += " (\(format(Double(summary.total) / max(summary.seconds, 1e-9))) images/s, \(jobs) job\(jobs == 1 ? "" : "s"))" }
    text += ": \(summary.ok) ok, \(summary.defects) defect, \(summary.errors) error"
    if skipped > 0 { text += "; \(skipped) other file\(skipped == 1 ? "" : "s") in the folders skipped (not .png, .jpg or .jpeg)" }
    if let slowest = summary.slowest { text += "; slowest \(slowest.path) (\(format(slowest.milliseconds)) ms)" }
    if let report { text += "; report \(report)" }
    if let heatmaps {
        text += "; heat maps in \(heatmaps)"
        if summary.heatmaps > 0 { text += " (\(format(summary.heatmapMilliseconds / Double(summary.heatmaps))) ms each to draw and write, not in the image times)" }
    }
    printError(text)
    return summary
}

/// Progress on standard error: a redrawn bar on a terminal, a line every 5 s otherwise.
final class Progress {
    let total: Int
    let quiet: Bool
    let isTerminal = isatty(2) != 0
    let start = monotonicSeconds()
    var lastDraw = 0.0
    var drawn = false

    init(total: Int, quiet: Bool) {
        self.total = total
        self.quiet = quiet
    }

    /// A message that must not be mixed into the bar.
    func log(_ message: String) {
        if isTerminal && drawn { printError("\r\u{1B}[K" + message) } else { printError(message) }
    }

    func update(done: Int, defects: Int, errors: Int) {
        guard !quiet else { return }
        let now = monotonicSeconds()
        let interval = isTerminal ? 0.1 : 5
        guard now - lastDraw >= interval || done == total else { return }
        lastDraw = now
        let elapsed = now - start
        let rate = Double(done) / max(elapsed, 1e-9)
        let left = rate > 0 ? Double(total - done) / rate : 0
        let counts = "\(done)/\(total)  \(format(rate)) img/s  ~\(clock(left)) left  (\(defects) defect, \(errors) error)"
        if isTerminal {
            let width = 30
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            printError("\r\u{1B}[K[\(bar)] \(counts)", newline: false)
            drawn = true
        } else {
            printError("inspect: \(counts)")
        }
    }

    func finish() {
        if isTerminal && drawn && !quiet { printError("") }
    }

    private func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

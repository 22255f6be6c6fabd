import Anomaly
import ArgumentParser
import Distillation
import Evaluation
import FewShot
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
@_spi(Engine) import VisualInspection

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `vinspect images PATH...`: decodes every image and describes it.
struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode images (files or folders, recursively) and describe each one.",
        discussion: """
            Prints one line per file: size, channels, bit depth and format, or the reason it
            cannot be read. Useful to check a folder from a camera before training on it.
            Exits with 2 when some files could not be read.
            """)

    @Argument(help: "Image files or folders (walked recursively, hidden files skipped).")
    var paths: [String]

    @Option(help: "Refuse images with more pixels than this (decompression-bomb guard).")
    var maxPixels: Int = Image.defaultMaxPixels

    func validate() throws {
        if maxPixels <= 0 { throw ValidationError("--max-pixels must be positive") }
    }

    func run() throws {
        var count = 0, failed = 0
        var totalMilliseconds = 0.0
        for path in InputFiles(paths) {
            count += 1
            let start = monotonicSeconds()
            if isFolder(path) {
                // The walk gives a folder only when it holds no image.
                failed += 1
                print("\(path): error: \(InspectionError.noImages(folder: path).description)")
                continue
            }
            do {
                let bytes = try readImageFile(path)
                let (image, info) = try Image.decode(bytes, source: path, maxPixels: maxPixels)
                let milliseconds = (monotonicSeconds() - start) * 1000
                totalMilliseconds += milliseconds
                var traits = [info.format.rawValue, "stored as \(info.storedColor)"]
                if info.isInterlacedOrProgressive { traits.append(info.format == .png ? "interlaced" : "progressive") }
                print("\(path): \(image), \(traits.joined(separator: ", ")), decoded in \(format(milliseconds)) ms")
            } catch {
                failed += 1
                print("\(path): error: \(error)")
            }
        }
        let decoded = count - failed
        var summary = "\(count) file\(count == 1 ? "" : "s"): \(decoded) decoded, \(failed) unreadable"
        if decoded > 0 { summary += "; mean decode time \(format(totalMilliseconds / Double(decoded))) ms" }
        print(summary)
        if count == 0 {
            printError("vinspect images: no files found under \(paths.joined(separator: ", "))")
            throw ExitStatus.couldNotRun
        }
        if failed > 0 { throw ExitStatus.someInputsUnreadable }
    }
}

func format(_ value: Double) -> String {
    let scaled = (value * 100).rounded() / 100
    return String(scaled)
}

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
}

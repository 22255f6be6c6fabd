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

/// The `vinspect` command-line tool.
@main
struct VInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vinspect",
        abstract: "Industrial visual inspection: learn good parts and defect types from a few images, then check every image from the line.",
        discussion: """
            Exit status:
              0  completed
              1  completed and defects were found (only with --fail-on-defect)
              2  completed, but some inputs could not be read (see the error records)
              3  could not run (bad options, unreadable model, unsupported CPU)
            """,
        version: VisualInspectionVersion.string,
        subcommands: [Train.self, AddClass.self, Inspect.self, Evaluate.self, FewShotTrain.self, FewShotEval.self, BackboneCommand.self, Info.self,
                      Demo.self, Images.self])

    /// Parses, checks the CPU, runs, and maps every outcome to the documented exit codes.
    static func main() {
        do {
            try CPUFeatures.check()
        } catch {
            printError("vinspect: \(error)")
            exit(withError: ExitCode(ExitStatus.couldNotRun.rawValue))
        }
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version: ArgumentParser prints them
            }
            printError(fullMessage(for: error))
            exit(withError: ExitCode(ExitStatus.couldNotRun.rawValue))
        }
        do {
            try command.run()
        } catch let status as ExitStatus {
            exit(withError: ExitCode(status.rawValue))
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help: a help command runs
            // A problem found while running belongs to the subcommand: its usage, not the root's.
            printError(message(for: error, in: type(of: command)))
            exit(withError: ExitCode(ExitStatus.couldNotRun.rawValue))
        }
    }

    /// The error and the usage line of the subcommand that failed.
    static func message(for error: any Error, in command: any ParsableCommand.Type) -> String {
        var path = [command._commandName]
        if BackboneCommand.configuration.subcommands.contains(where: { $0 == command }) { path.insert("backbone", at: 0) }
        let usage = command.usageString().replacingOccurrences(of: "\n", with: " ")
        let what = (error as? ValidationError)?.message ?? String(describing: error)
        return "Error: \(what)\nUsage: vinspect \(path.joined(separator: " ")) \(usage.split(separator: " ").dropFirst().joined(separator: " "))\n"
            + "  See 'vinspect \(path.joined(separator: " ")) --help' for more information."
    }
}

/// The arguments with a negative number after an option joined to it (`--jobs -1` becomes
/// `--jobs=-1`), so that the option's own check says what range is allowed instead of the
/// parser calling the value missing.
func joiningNegativeValues(_ arguments: [String]) -> [String] {
    var out: [String] = []
    for argument in arguments {
        if let last = out.last, last.hasPrefix("--"), last != "--", !last.contains("="), argument.count > 1, argument.first == "-",
           Double(argument) != nil {
            out[out.count - 1] = last + "=" + argument
        } else {
            out.append(argument)
        }
    }
    return out
}

/// The documented exit codes.
enum ExitStatus: Int32, Error {
    case completed = 0
    case defectsFound = 1
    case someInputsUnreadable = 2
    case couldNotRun = 3
}

/// Writes a line to standard error.
func printError(_ message: String, newline: Bool = true) {
    fflush(nil)  // what went to standard output before stays before
    var text = message
    if newline && !text.hasSuffix("\n") { text += "\n" }
    text.withUTF8 { bytes in
        var done = 0
        while done < bytes.count {
            let count = write(2, bytes.baseAddress! + done, bytes.count - done)
            if count <= 0 { return }
            done += count
        }
    }
}

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

/// The help text shared by every `--backbone` option.
let backboneHelp = ArgumentHelp(
    "Backbone: default (the compact network whose weights ship with vinspect), a vinspect backbone file (see `backbone import`), a PyTorch/safetensors checkpoint with --arch, or an architecture name (\(BackboneArchitecture.allCases.map(\.rawValue).joined(separator: ", ")): untrained weights, for tests only).")

/// The backbone options of the commands that train or evaluate: one declaration, one
/// spelling (`--backbone`, `--arch`), one help text.
struct BackboneOptions: ParsableArguments {
    @Option(help: backboneHelp)
    var backbone: String = "default"

    @Option(name: .customLong("arch"), help: "Architecture of a raw checkpoint given to --backbone.")
    var architecture: BackboneArchitecture?

    /// The network the options name.
    func load() throws -> any Backbone { try loadBackbone(backbone, architecture: architecture) }
}

/// Loads the backbone named on the command line: `default` (the shipped compact weights),
/// a vinspect backbone file, a raw checkpoint with its architecture, or an architecture
/// name (untrained weights).
func loadBackbone(_ backbone: String, architecture: BackboneArchitecture?) throws -> any Backbone {
    if backbone == "default" && !FileManager.default.fileExists(atPath: backbone) {
        return try DefaultBackbone.load()
    }
    if let named = BackboneArchitecture(rawValue: backbone), !FileManager.default.fileExists(atPath: backbone) {
        printError("vinspect: warning: --backbone \(backbone) has untrained weights; import pretrained ones with `vinspect backbone import`")
        return named.make()
    }
    if let architecture {
        return try BackboneStore.importWeights(from: backbone, architecture: architecture)
    }
    return try BackboneStore.load(from: backbone)
}

/// Checks, before any work, that a model file can be written at `path` without destroying
/// anything else: the folder exists and is writable, and what is there now, if anything, is
/// a model file (which is then replaced atomically). An image, a folder or any other file
/// is refused, so that `--output good/part.png` cannot overwrite a training image.
func checkModelOutput(_ path: String, option: String = "--output") throws {
    var status = stat()
    if stat(path, &status) == 0 {
        if (status.st_mode & S_IFMT) == S_IFDIR { throw ValidationError("\(option) \(path) is a folder; give a file name such as \(path)/model.vimodel") }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw ValidationError("\(option) \(path) is not a regular file; write the model elsewhere") }
        var head = [UInt8](repeating: 0, count: 4)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        let count = descriptor >= 0 ? read(descriptor, &head, 4) : -1
        if descriptor >= 0 { close(descriptor) }
        if count != 4 || head != [0x89, 0x56, 0x49, 0x4D] {
            throw ValidationError("\(option) \(path) exists and is not a vinspect model file; it would be overwritten: write the model elsewhere, or delete the file first")
        }
    }
    let slash = path.lastIndex(of: "/")
    let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    guard isFolder(folder) else {
        throw ValidationError("\(option) \(path): the folder \(folder) does not exist; create it first")
    }
    guard access(folder, W_OK) == 0 else { throw ValidationError("\(option) \(path): the folder \(folder) is not writable") }
}

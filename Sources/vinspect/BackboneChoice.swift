import ArgumentParser
import Foundation
import NeuralNet
import VisualInspection

/// The help text shared by every `--backbone` option.
let backboneHelp = ArgumentHelp(
    "Backbone: default (the compact network whose weights ship with vinspect), a vinspect backbone file (see `backbone import`), a PyTorch/safetensors checkpoint with --arch, or an architecture name (\(BackboneArchitecture.allCases.map(\.rawValue).joined(separator: ", ")): untrained weights, for tests only).")

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

import ArgumentParser
import Foundation
import NeuralNet
import VisualInspection

/// Loads the backbone named on the command line: a vinspect backbone file, a raw
/// checkpoint with its architecture, or an architecture name (untrained weights).
func loadBackbone(_ backbone: String, architecture: BackboneArchitecture?) throws -> any Backbone {
    if let named = BackboneArchitecture(rawValue: backbone), !FileManager.default.fileExists(atPath: backbone) {
        printError("vinspect: warning: --backbone \(backbone) has untrained weights; import pretrained ones with `vinspect backbone import`")
        return named.make()
    }
    if let architecture {
        return try BackboneStore.importWeights(from: backbone, architecture: architecture)
    }
    return try BackboneStore.load(from: backbone)
}

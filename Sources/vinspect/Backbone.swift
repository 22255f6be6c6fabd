import ArgumentParser
import NeuralNet
import VisualInspection

/// `vinspect backbone ...`: pretrained backbones.
struct BackboneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backbone",
        abstract: "Import pretrained backbone weights.",
        subcommands: [Import.self])

    /// `vinspect backbone import --arch NAME FILE --output FILE`.
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a PyTorch checkpoint or safetensors file into a vinspect backbone file.",
            discussion: """
                Reads PyTorch checkpoints (zip and legacy formats) through a restricted unpickler
                that executes nothing from the file, and safetensors files. Names follow
                torchvision (resnet18), EfficientNet-PyTorch or timm (efficientnet-lite0); every
                tensor's shape is checked. Example:
                  vinspect backbone import --arch efficientnet-lite0 efficientnet-lite0-57934424.pth --output lite0.vimodel
                """)

        @Option(name: .customLong("arch"), help: "The architecture: \(BackboneArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
        var architecture: BackboneArchitecture

        @Argument(help: "The weights file (.pth, .pt, .bin or .safetensors).")
        var weights: String

        @Option(help: "Where to write the backbone file.")
        var output: String

        func run() throws {
            let start = monotonicSeconds()
            let network = try BackboneStore.importWeights(from: weights, architecture: architecture)
            let name = weights.split(separator: "/").last.map(String.init) ?? weights
            try BackboneStore.save(network, to: output, source: name)
            print("imported \(network.architecture): \(network.parameterCount) parameters in \(network.namedState.count) tensors "
                  + "from \(weights) -> \(output) (\(format((monotonicSeconds() - start) * 1000)) ms)")
        }
    }
}

extension BackboneArchitecture: ExpressibleByArgument {}

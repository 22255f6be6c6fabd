// The backbone `vinspect train` uses when none is given: the project's compact network
// with weights that ship in the repository (see README, "The default backbone").
import Foundation
import NeuralNet

/// Finds and loads the shipped default backbone.
@_spi(Engine) public enum DefaultBackbone {
    /// The file name of the shipped weights.
    public static let fileName = "compact-default.vimodel"

    /// Where the file is looked for, in order: `VINSPECT_DEFAULT_BACKBONE`, the resource
    /// bundle beside the executable (where `swift build` puts it), the source tree this
    /// library was built from.
    public static var searchPaths: [String] {
        var paths: [String] = []
        if let override = ProcessInfo.processInfo.environment["VINSPECT_DEFAULT_BACKBONE"], !override.isEmpty {
            paths.append(override)
        }
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            paths.append(executable.appendingPathComponent("VisualInspection_VisualInspection.resources/\(fileName)").path)
        }
        paths.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Resources/\(fileName)").path)
        return paths
    }

    /// The first search path that holds a file, if any.
    public static var path: String? { searchPaths.first { isRegularFile($0) } }

    /// Loads the default backbone.
    ///
    /// - Throws: ``BackboneError`` when the file is missing (naming the places searched)
    ///   or damaged.
    public static func load() throws(BackboneError) -> any Backbone {
        guard let path else {
            throw .notABackbone(path: fileName, reason: "the shipped default backbone was not found in \(searchPaths.joined(separator: ", ")); pass --backbone FILE")
        }
        return try BackboneStore.load(from: path)
    }
}

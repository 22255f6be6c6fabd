// The types of the public API come from these modules, so `import VisualInspection` is
// all an integrator writes.
@_exported import Anomaly
@_exported import FewShot
@_exported import ImageIO
@_exported import ModelFile
@_exported import NeuralNet
@_exported import TensorCore

/// The version of the VisualInspection engine and the `vinspect` tool.
public enum VisualInspectionVersion {
    /// Semantic version, e.g. `0.1.0`.
    public static let string = "0.1.0"
}

/// Reads a whole image file, with errors that name it (see ``ImageError``).
public func readImageFile(_ path: String) throws(ImageError) -> [UInt8] {
    try ImageIO.readFile(path)
}

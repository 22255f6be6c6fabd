// `import VisualInspection` is all an integrator writes: images come with it, and the few
// types of the scorer that the API hands out (the anomaly map, the scorer's settings and
// the engine's choice of them, the errors of model files and of the CPU check).
// The compute engine (tensors, kernels, autograd, the thread pool), the model-file
// internals and the research tools (the Synthesis, Evaluation and Distillation modules)
// stay out of sight.
import Foundation
@_exported import ImageIO
@_exported import struct Anomaly.AnomalyMap
@_exported import struct Anomaly.AnomalyScorerOptions
@_exported import struct Anomaly.ScorerChoice
@_exported import enum ModelFile.ModelFileError
@_exported import struct TensorCore.CPUFeatureError

/// The version of the VisualInspection engine and the `vinspect` tool.
public enum VisualInspectionVersion {
    /// Semantic version, e.g. `0.1.0`.
    public static let string = "0.1.0"
}

/// Reads a whole image file, with errors that name it (see `ImageError`).
public func readImageFile(_ path: String) throws(ImageError) -> [UInt8] {
    try ImageIO.readFile(path)
}

extension Image {
    /// Reads and decodes a PNG or JPEG file (file URLs only); see
    /// `init(contentsOfFile:maxPixels:)`.
    public init(contentsOf url: URL, maxPixels: Int = Image.defaultMaxPixels) throws(ImageError) {
        try self.init(contentsOfFile: url.path, maxPixels: maxPixels)
    }

    /// Encodes and writes the image (file URLs only): JPEG for a `.jpg`/`.jpeg` name, PNG
    /// otherwise; see `write(toFile:jpegQuality:pngCompressionLevel:fastPNG:)`.
    public func write(to url: URL, jpegQuality: Int = 90) throws(ImageError) {
        try write(toFile: url.path, jpegQuality: jpegQuality)
    }
}

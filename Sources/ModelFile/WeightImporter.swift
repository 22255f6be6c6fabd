/// Reads weights from other tools' files into named Float32 tensors, never executing
/// anything from the file.
///
/// Formats, found from the bytes (not the name): safetensors, PyTorch checkpoints in the
/// zip and the legacy format (through a restricted unpickler that only knows the
/// operations and globals tensors need), and vinspect's own `.vimodel`. Details and
/// limits are documented at the top of SafeTensors.swift, TorchCheckpoint.swift,
/// Unpickler.swift and ZipArchive.swift.
///
/// ```swift
/// let weights = try WeightImporter.load(contentsOfFile: "efficientnet-lite0.pth")
/// print(weights[0].name, weights[0].shape)  // _conv_stem.weight [32, 3, 3, 3]
/// ```
public enum WeightImporter {
    /// Reads a weight file, memory-mapped, and returns its tensors in file order.
    ///
    /// - Parameter path: a `.safetensors`, `.pt`/`.pth`/`.bin` (PyTorch) or `.vimodel` file.
    /// - Returns: the tensors, converted to Float32, in the order the file lists them.
    /// - Throws: ``WeightImportError`` naming the file: missing, unreadable, unknown format,
    ///   truncated, damaged, a forbidden pickle global, an unsupported feature, a limit.
    public static func load(contentsOfFile path: String) throws(WeightImportError) -> [NamedTensor] {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch {
            switch error {
            case .notFound: throw .fileNotFound(path: path)
            case .folder: throw .unreadable(path: path, reason: "it is a folder")
            case .empty: throw .empty(path: path)
            case .unreadable(let reason): throw .unreadable(path: path, reason: reason)
            }
        }
        return try read(file.bytes, source: path)
    }

    /// Decodes a weight file held in memory.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - source: the name to put in error messages.
    /// - Throws: ``WeightImportError`` naming `source`.
    public static func decode(_ bytes: [UInt8], source: String = "<memory>") throws(WeightImportError) -> [NamedTensor] {
        if bytes.isEmpty { throw .empty(path: source) }
        let copy = MappedFile(copying: bytes)
        return try read(copy.bytes, source: source)
    }

    /// The format the bytes are in, or nil if none the importer reads.
    public static func detectFormat(_ bytes: [UInt8]) -> WeightFileFormat? {
        bytes.withUnsafeBytes { sniff($0) }
    }

    static func sniff(_ bytes: UnsafeRawBufferPointer) -> WeightFileFormat? {
        let head = Array(bytes.prefix(9))
        if head.starts(with: ModelFile.magic) { return .vinspectModel }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .pytorchZip }
        // safetensors before pickles: its header length's low byte may be 0x80.
        if head.count == 9 && head[8] == UInt8(ascii: "{") && loadLE(bytes.baseAddress!, 0, as: UInt64.self) <= UInt64(bytes.count - 8) {
            return .safetensors
        }
        if head.count >= 2 && head[0] == 0x80 && (2...5).contains(head[1]) { return .pytorchLegacy }
        return nil
    }

    static func read(_ bytes: UnsafeRawBufferPointer, source path: String) throws(WeightImportError) -> [NamedTensor] {
        guard let format = sniff(bytes) else {
            throw .unknownFormat(path: path, detected: describe(bytes))
        }
        switch format {
        case .vinspectModel:
            do {
                return try ModelFile.decode(bytes, source: path, verifyChecksum: true).tensors
            } catch {
                throw .modelFile(error)
            }
        case .pytorchZip: return try TorchCheckpointReader.readZip(bytes, path: path)
        case .pytorchLegacy: return try TorchCheckpointReader.readLegacy(bytes, path: path)
        case .safetensors: return try SafeTensorsReader.read(bytes, path: path)
        }
    }

    private static func describe(_ bytes: UnsafeRawBufferPointer) -> String {
        let head = Array(bytes.prefix(16))
        if head.first == 0x80 { return "a Python pickle of an unknown protocol" }
        if head.starts(with: Array("\u{89}HDF".utf8)) || head.starts(with: [0x89, 0x48, 0x44, 0x46]) { return "an HDF5 file (Keras?); export safetensors instead" }
        if head.starts(with: [0x08]) { return "it may be an ONNX or TensorFlow protobuf" }
        if !head.isEmpty && head.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) }) {
            return "it looks like a text file"
        }
        return "unrecognised content"
    }
}

/// The weight-file formats ``WeightImporter`` reads.
public enum WeightFileFormat: String, Sendable, Equatable, CustomStringConvertible {
    case safetensors = "safetensors"
    case pytorchZip = "PyTorch checkpoint (zip)"
    case pytorchLegacy = "PyTorch checkpoint (legacy)"
    case vinspectModel = "vinspect model file"

    public var description: String { rawValue }
}

/// Why weights could not be imported. Every case names the file.
///
/// Weight files come from outside (downloads, other teams), and a pickle can be hostile:
/// the messages say what is wrong and what to do.
public enum WeightImportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at that path.
    case fileNotFound(path: String)
    /// The path exists but could not be read (a folder, no permission, an I/O error).
    case unreadable(path: String, reason: String)
    /// The file has no bytes.
    case empty(path: String)
    /// The file is none of the formats the importer reads; `detected` says what it looks like.
    case unknownFormat(path: String, detected: String)
    /// The file ends before its structure does.
    case truncated(path: String, format: WeightFileFormat, detail: String)
    /// The file's structure is inconsistent (bad offsets, bad pickle, bad checksum).
    case corrupt(path: String, format: WeightFileFormat, detail: String)
    /// The pickle asks to call or load a global outside the allow-list, e.g. `os.system`.
    case forbiddenGlobal(path: String, global: String)
    /// A valid file using a feature this importer does not read (a dtype, compression).
    case unsupported(path: String, format: WeightFileFormat, detail: String)
    /// A size or count beyond the importer's limits (a guard against hostile files).
    case limitExceeded(path: String, format: WeightFileFormat, detail: String)
    /// The file holds no tensors.
    case noTensors(path: String, format: WeightFileFormat)
    /// Two tensors would get the same name.
    case duplicateName(path: String, format: WeightFileFormat, name: String)
    /// The model file reader's error, for `.vimodel` files passed to the importer.
    case modelFile(ModelFileError)

    /// A stable, machine-readable name for the kind of failure, e.g. `forbidden-global`.
    public var kind: String {
        switch self {
        case .fileNotFound: return "file-not-found"
        case .unreadable: return "unreadable"
        case .empty: return "empty"
        case .unknownFormat: return "unknown-format"
        case .truncated: return "truncated"
        case .corrupt: return "corrupt"
        case .forbiddenGlobal: return "forbidden-global"
        case .unsupported: return "unsupported"
        case .limitExceeded: return "limit-exceeded"
        case .noTensors: return "no-tensors"
        case .duplicateName: return "duplicate-name"
        case .modelFile(let error): return error.kind
        }
    }

    /// The file the error is about.
    public var path: String {
        switch self {
        case .fileNotFound(let path), .unreadable(let path, _), .empty(let path), .unknownFormat(let path, _),
             .truncated(let path, _, _), .corrupt(let path, _, _), .forbiddenGlobal(let path, _),
             .unsupported(let path, _, _), .limitExceeded(let path, _, _), .noTensors(let path, _),
             .duplicateName(let path, _, _):
            return path
        case .modelFile(let error): return error.path
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such weight file; check the path"
        case .unreadable(let path, let reason):
            return "\(path): cannot be read (\(reason)); check that it is a readable weight file"
        case .empty(let path):
            return "\(path): the weight file is empty (0 bytes); download or copy it again"
        case .unknownFormat(let path, let detected):
            return "\(path): not a safetensors file or PyTorch checkpoint (\(detected)); export the weights with torch.save or safetensors"
        case .truncated(let path, let format, let detail):
            return "\(path): incomplete \(format) file (\(detail)); the download or copy was probably interrupted, fetch it again"
        case .corrupt(let path, let format, let detail):
            return "\(path): damaged or invalid \(format) file (\(detail)); fetch it again or export it again"
        case .forbiddenGlobal(let path, let global):
            return "\(path): refusing to load: the checkpoint asks to call \(global), which a weights file never needs; it may be malicious — re-export it as a state dict (model.state_dict()) or as safetensors"
        case .unsupported(let path, let format, let detail):
            return "\(path): \(format) file uses something this importer does not read (\(detail)); re-export it as float32 safetensors"
        case .limitExceeded(let path, let format, let detail):
            return "\(path): \(format) file exceeds a safety limit (\(detail)); if the file is genuine, re-export it as safetensors"
        case .noTensors(let path, let format):
            return "\(path): the \(format) file holds no tensors; check that it is a weights file (model.state_dict())"
        case .duplicateName(let path, let format, let name):
            return "\(path): the \(format) file gives two tensors the name \"\(name)\"; export it again"
        case .modelFile(let error):
            return error.description
        }
    }
}

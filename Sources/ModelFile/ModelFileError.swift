/// Why a vinspect model file could not be read or written. Every case names the file.
///
/// Model files come from outside the program (copied between machines, downloaded), so
/// the messages say what is wrong and what to do about it.
public enum ModelFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at that path.
    case fileNotFound(path: String)
    /// The path exists but could not be read (a folder, no permission, an I/O error).
    case unreadable(path: String, reason: String)
    /// The file has no bytes.
    case empty(path: String)
    /// The file does not start with the model-file magic; `detected` says what it looks like.
    case notAModelFile(path: String, detected: String)
    /// The file was written by a newer, incompatible format version.
    case newerMajorVersion(path: String, found: ModelFileVersion, supportedMajor: Int)
    /// The file ends before the sections its header announces.
    case truncated(path: String, detail: String)
    /// The stored checksum disagrees with the bytes: the file was damaged after writing.
    case checksumMismatch(path: String, stored: UInt32, computed: UInt32)
    /// A header field, the tensor table or the metadata is inconsistent or out of range.
    case corrupt(path: String, detail: String)
    /// Two tensors in the table have the same name.
    case duplicateTensorName(path: String, name: String)
    /// The caller asked to write something the format cannot hold (the writer's check).
    case invalidContent(path: String, detail: String)
    /// The file could not be written.
    case writeFailed(path: String, reason: String)

    /// A stable, machine-readable name for the kind of failure, e.g. `checksum-mismatch`.
    public var kind: String {
        switch self {
        case .fileNotFound: return "file-not-found"
        case .unreadable: return "unreadable"
        case .empty: return "empty"
        case .notAModelFile: return "not-a-model-file"
        case .newerMajorVersion: return "newer-major-version"
        case .truncated: return "truncated"
        case .checksumMismatch: return "checksum-mismatch"
        case .corrupt: return "corrupt"
        case .duplicateTensorName: return "duplicate-tensor-name"
        case .invalidContent: return "invalid-content"
        case .writeFailed: return "write-failed"
        }
    }

    /// The file the error is about.
    public var path: String {
        switch self {
        case .fileNotFound(let path), .unreadable(let path, _), .empty(let path),
             .notAModelFile(let path, _), .newerMajorVersion(let path, _, _), .truncated(let path, _),
             .checksumMismatch(let path, _, _), .corrupt(let path, _), .duplicateTensorName(let path, _),
             .invalidContent(let path, _), .writeFailed(let path, _):
            return path
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such model file; check the path"
        case .unreadable(let path, let reason):
            return "\(path): cannot be read (\(reason)); check that it is a readable model file"
        case .empty(let path):
            return "\(path): the model file is empty (0 bytes); the copy probably failed, copy it again"
        case .notAModelFile(let path, let detected):
            return "\(path): not a vinspect model file (\(detected)); give the file `vinspect train` wrote (the model comes first: vinspect inspect MODEL IMAGE...); PyTorch or safetensors weights are imported with `vinspect backbone import --arch NAME FILE --output FILE`"
        case .newerMajorVersion(let path, let found, let supported):
            return "\(path): this model needs vinspect format \(found.major).x; this build reads \(supported).x — update vinspect"
        case .truncated(let path, let detail):
            return "\(path): incomplete model file (\(detail)); the copy was probably interrupted, copy it again"
        case .checksumMismatch(let path, let stored, let computed):
            let hex = { (v: UInt32) in "0x" + String(v, radix: 16, uppercase: true) }
            return "\(path): the model file is damaged (checksum \(hex(computed)), expected \(hex(stored))); copy it again from the original"
        case .corrupt(let path, let detail):
            return "\(path): damaged or invalid model file (\(detail)); copy it again from the original"
        case .duplicateTensorName(let path, let name):
            return "\(path): invalid model file, the tensor \"\(name)\" appears twice; the file was not written by vinspect, export it again"
        case .invalidContent(let path, let detail):
            return "\(path): cannot write the model (\(detail)); fix the tensors or metadata passed to the writer"
        case .writeFailed(let path, let reason):
            return "\(path): could not write the model file (\(reason)); check the folder exists and is writable"
        }
    }
}

/// A model-file format version: readers accept any minor version of their major version.
public struct ModelFileVersion: Sendable, Equatable, Comparable, CustomStringConvertible {
    /// Incompatible changes raise the major version; a reader refuses a newer major.
    public var major: Int
    /// Compatible additions raise the minor version; a reader skips what it does not know.
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static func < (a: Self, b: Self) -> Bool { (a.major, a.minor) < (b.major, b.minor) }

    public var description: String { "\(major).\(minor)" }
}

/// Why an image could not be read or written. Every case names the file.
///
/// These errors come from outside the program (files, user input); the messages say
/// what is wrong and what to do about it.
public enum ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file at that path.
    case fileNotFound(path: String)
    /// The path exists but could not be read (a folder, no permission, an I/O error).
    case unreadable(path: String, reason: String)
    /// The file has no bytes.
    case empty(path: String)
    /// The file is not a PNG or JPEG; `detected` says what it looks like, if known.
    case unsupportedFormat(path: String, detected: String)
    /// The file is a PNG or JPEG but is damaged.
    case corrupt(path: String, format: ImageFormat, detail: String)
    /// The file ends before the image does.
    case truncated(path: String, format: ImageFormat, detail: String)
    /// The declared size exceeds the pixel limit (a guard against decompression bombs).
    case tooLarge(path: String, detail: String, limit: Int)
    /// Memory for the image could not be allocated.
    case outOfMemory(path: String, detail: String)
    /// A valid file of a variant this reader does not handle.
    case unsupportedVariant(path: String, format: ImageFormat, detail: String)
    /// The image could not be encoded or the file not written.
    case writeFailed(path: String, reason: String)

    /// A stable, machine-readable name for the kind of failure, e.g. `truncated`
    /// (for reports and scripts; the ``description`` is for people).
    public var kind: String {
        switch self {
        case .fileNotFound: return "file-not-found"
        case .unreadable: return "unreadable"
        case .empty: return "empty"
        case .unsupportedFormat: return "unsupported-format"
        case .corrupt: return "corrupt"
        case .truncated: return "truncated"
        case .tooLarge: return "too-large"
        case .outOfMemory: return "out-of-memory"
        case .unsupportedVariant: return "unsupported-variant"
        case .writeFailed: return "write-failed"
        }
    }

    /// The file the error is about.
    public var path: String {
        switch self {
        case .fileNotFound(let path), .unreadable(let path, _), .empty(let path),
             .unsupportedFormat(let path, _), .corrupt(let path, _, _), .truncated(let path, _, _),
             .tooLarge(let path, _, _), .outOfMemory(let path, _), .unsupportedVariant(let path, _, _),
             .writeFailed(let path, _):
            return path
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file; check the path"
        case .unreadable(let path, let reason):
            return "\(path): cannot be read (\(reason)); check that it is a readable file"
        case .empty(let path):
            return "\(path): the file is empty (0 bytes); the copy from the camera probably failed, take the image again"
        case .unsupportedFormat(let path, let detected):
            return "\(path): not a PNG or JPEG image (\(detected)); convert it to PNG or JPEG"
        case .corrupt(let path, let format, let detail):
            return "\(path): damaged \(format) file (\(detail)); take or copy the image again"
        case .truncated(let path, let format, let detail):
            return "\(path): incomplete \(format) file, it ends before the image does (\(detail)); the copy was probably interrupted, copy it again"
        case .tooLarge(let path, let detail, let limit):
            return "\(path): image too large (\(detail)); the limit is \(limit) pixels; if the image is genuine, raise it with --max-pixels (vinspect inspect, train, images) or the maxPixels argument (library)"
        case .outOfMemory(let path, let detail):
            return "\(path): not enough memory to decode the image (\(detail))"
        case .unsupportedVariant(let path, let format, let detail):
            return "\(path): a \(format) variant this reader does not support (\(detail)); save it as 8-bit PNG or baseline JPEG"
        case .writeFailed(let path, let reason):
            return "\(path): could not write the image (\(reason)); check the folder exists and is writable"
        }
    }
}

/// The image file formats the reader understands.
public enum ImageFormat: String, Sendable, Equatable, CustomStringConvertible {
    /// Portable Network Graphics.
    case png = "PNG"
    /// JPEG (baseline or progressive).
    case jpeg = "JPEG"

    public var description: String { rawValue }

    /// Recognises a format by the file's first bytes (never by its name).
    /// Returns nil when the bytes are not PNG or JPEG.
    public static func sniff<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> ImageFormat? {
        let head = Array(bytes.prefix(8))
        if head.count >= 8, head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        return nil
    }

    /// A short guess at what a non-image file is, for error messages.
    static func describeUnknown<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        let head = Array(bytes.prefix(16))
        func starts(_ prefix: [UInt8]) -> Bool { head.starts(with: prefix) }
        if starts(Array("%PDF".utf8)) { return "it is a PDF document" }
        if starts(Array("GIF8".utf8)) { return "it is a GIF image" }
        if starts(Array("BM".utf8)) { return "it looks like a BMP image" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "it is a TIFF image" }
        if starts(Array("RIFF".utf8)) && head.count >= 12 && Array(head[8..<12]) == Array("WEBP".utf8) {
            return "it is a WebP image"
        }
        if starts([0x50, 0x4B, 0x03, 0x04]) { return "it is a ZIP archive" }
        if starts([0x89, 0x50, 0x4E, 0x47]) { return "it starts like a PNG but the signature is damaged" }
        if starts([0xFF, 0xD8]) { return "it starts like a JPEG but the marker is damaged" }
        if !head.isEmpty && head.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) }) {
            return "it looks like a text file"
        }
        return "unrecognised content"
    }
}

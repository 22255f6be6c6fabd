import CCodecs

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about an image file that decoding reveals beyond the pixels.
public struct ImageFileInfo: Sendable, Equatable {
    /// The file format found by its first bytes.
    public var format: ImageFormat
    /// PNG: Adam7 interlaced; JPEG: progressive.
    public var isInterlacedOrProgressive: Bool
    /// How the file stored colour: e.g. `palette`, `grey`, `RGB`, `CMYK`.
    public var storedColor: String
}

extension Image {
    /// The pixel limit used when none is given: 100 megapixels (e.g. 10 000 x 10 000),
    /// larger than industrial cameras deliver and small enough that a hostile header
    /// cannot make the decoder allocate gigabytes.
    public static let defaultMaxPixels = 100_000_000

    /// Reads and decodes a PNG or JPEG file; the format is found from the bytes, not the name.
    ///
    /// - Parameters:
    ///   - path: the file to read.
    ///   - maxPixels: refuse images whose declared `width * height` exceeds this.
    /// - Throws: ``ImageError`` naming the file: missing, unreadable, empty, not an image,
    ///   damaged, truncated or too large.
    public init(contentsOfFile path: String, maxPixels: Int = Image.defaultMaxPixels) throws(ImageError) {
        let bytes = try readFile(path)
        self = try Image.decode(bytes, source: path, maxPixels: maxPixels).image
    }

    /// Decodes PNG or JPEG bytes held in memory.
    ///
    /// - Parameters:
    ///   - bytes: the encoded file.
    ///   - source: the name to put in error messages (a path, a camera id).
    ///   - maxPixels: refuse images whose declared `width * height` exceeds this.
    /// - Returns: the image and what the file said about itself.
    /// - Throws: ``ImageError`` naming `source`.
    public static func decode(
        _ bytes: [UInt8], source: String = "<memory>", maxPixels: Int = Image.defaultMaxPixels
    ) throws(ImageError) -> (image: Image, info: ImageFileInfo) {
        if bytes.isEmpty { throw .empty(path: source) }
        guard let format = ImageFormat.sniff(bytes) else {
            throw .unsupportedFormat(path: source, detected: ImageFormat.describeUnknown(bytes))
        }
        var result = vi_decoded()
        let status = bytes.withUnsafeBufferPointer { buffer in
            switch format {
            case .png: return vi_png_decode(buffer.baseAddress, buffer.count, Int64(maxPixels), &result)
            case .jpeg: return vi_jpeg_decode(buffer.baseAddress, buffer.count, Int64(maxPixels), &result)
            }
        }
        let message = withUnsafeBytes(of: result.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard status == VI_OK, let pixels = result.pixels else {
            vi_free(result.pixels)
            switch status {
            case VI_ERR_TRUNCATED: throw .truncated(path: source, format: format, detail: message)
            case VI_ERR_TOO_LARGE: throw .tooLarge(path: source, detail: message, limit: maxPixels)
            case VI_ERR_NO_MEMORY: throw .outOfMemory(path: source, detail: message)
            case VI_ERR_UNSUPPORTED: throw .unsupportedVariant(path: source, format: format, detail: message)
            default: throw .corrupt(path: source, format: format, detail: message.isEmpty ? "decoder error" : message)
            }
        }
        defer { vi_free(pixels) }
        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        let count = width * height * channels
        let image: Image
        if result.bit_depth == 16 {
            let values = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: pixels, byteCount: count * 2)
                initialized = count
            }
            image = Image(width: width, height: height, channels: channels, pixels16: values)
        } else {
            let values = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                buffer.baseAddress!.update(from: pixels, count: count)
                initialized = count
            }
            image = Image(width: width, height: height, channels: channels, pixels: values)
        }
        let stored: String
        switch (format, result.source_color) {
        case (.png, 0): stored = "grey"
        case (.png, 2): stored = "RGB"
        case (.png, 3): stored = "palette"
        case (.png, 4): stored = "grey+alpha"
        case (.png, 6): stored = "RGBA"
        case (.jpeg, 1): stored = "grey"
        case (.jpeg, 4): stored = "CMYK"
        case (.jpeg, 5): stored = "YCCK"
        case (.jpeg, _): stored = "YCbCr"
        default: stored = "unknown"
        }
        let info = ImageFileInfo(format: format,
                                 isInterlacedOrProgressive: result.interlaced_or_progressive != 0,
                                 storedColor: stored)
        return (image, info)
    }

    /// Encodes the image as PNG: grey, grey+alpha, RGB or RGBA, at its bit depth.
    /// - Parameters:
    ///   - compressionLevel: zlib level, 0 (fastest) to 9 (smallest).
    ///   - fast: for files written on a hot path, such as heat maps: 8-bit images go
    ///     through the project's own encoder (one filter for every row, deflate blocks of
    ///     literals and runs, no long-range match search; `compressionLevel` unused), about
    ///     3.5x faster than libpng with zlib level 1, one filter and run-length matching
    ///     (800 x 600 RGB overlays: 4 against 15 ms) for files of about the same size;
    ///     16-bit ones through libpng with one filter and run-length matching.
    public func pngData(compressionLevel: Int = 6, fast: Bool = false) throws(ImageError) -> [UInt8] {
        var encoded = vi_encoded()
        let status: vi_status
        switch samples {
        case .uint8(let values) where fast:
            status = values.withUnsafeBufferPointer {
                vi_png_encode_fast($0.baseAddress, Int32(width), Int32(height), Int32(channels), &encoded)
            }
        case .uint8(let values):
            status = values.withUnsafeBufferPointer {
                vi_png_encode($0.baseAddress, Int32(width), Int32(height), Int32(channels), 8,
                              Int32(compressionLevel), 0, &encoded)
            }
        case .uint16(let values):
            status = values.withUnsafeBytes {
                vi_png_encode($0.bindMemory(to: UInt8.self).baseAddress, Int32(width), Int32(height),
                              Int32(channels), 16, Int32(compressionLevel), fast ? 1 : 0, &encoded)
            }
        }
        return try Image.take(&encoded, status: status, what: "PNG")
    }

    /// Adler-32 (RFC 1950) of `bytes` continuing from `adler` (1 to start) as the fast PNG
    /// encoder computes it, vectorised (exposed so that tests can compare it with the
    /// checksum's definition).
    public static func fastPNGAdler32(_ bytes: [UInt8], continuing adler: UInt32 = 1) -> UInt32 {
        bytes.withUnsafeBufferPointer { vi_adler32(adler, $0.baseAddress, $0.count) }
    }

    /// Encodes the image as baseline JPEG. Alpha is dropped; 16-bit samples keep their
    /// high byte.
    /// - Parameter quality: 1 (smallest) to 100 (best).
    public func jpegData(quality: Int = 90) throws(ImageError) -> [UInt8] {
        let opaque = hasAlpha ? droppingAlpha() : self
        var encoded = vi_encoded()
        let status = opaque.pixels.withUnsafeBufferPointer {
            vi_jpeg_encode($0.baseAddress, Int32(width), Int32(height), Int32(opaque.channels),
                           Int32(quality), &encoded)
        }
        return try Image.take(&encoded, status: status, what: "JPEG")
    }

    /// Encodes and writes the image; the format follows the file name's extension
    /// (`.jpg`/`.jpeg` for JPEG, anything else PNG).
    public func write(toFile path: String, jpegQuality: Int = 90, pngCompressionLevel: Int = 6,
                      fastPNG: Bool = false) throws(ImageError) {
        let lower = path.lowercased()
        let isJPEG = lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
        let bytes: [UInt8]
        do {
            bytes = isJPEG ? try jpegData(quality: jpegQuality) : try pngData(compressionLevel: pngCompressionLevel, fast: fastPNG)
        } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        try writeFile(path, bytes)
    }

    private static func take(_ encoded: inout vi_encoded, status: vi_status, what: String) throws(ImageError) -> [UInt8] {
        defer { vi_free(encoded.bytes) }
        guard status == VI_OK, let bytes = encoded.bytes else {
            let message = withUnsafeBytes(of: encoded.message) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            throw .writeFailed(path: "<memory>", reason: "\(what) encoding failed: \(message)")
        }
        return Array(UnsafeBufferPointer(start: bytes, count: encoded.size))
    }
}

/// The libpng and libjpeg versions this program uses, e.g. `libpng 1.6.39, libjpeg API 62`.
public var codecVersions: String {
    var buffer = [CChar](repeating: 0, count: 128)
    vi_codec_versions(&buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

// MARK: - Files

/// The largest file the reader accepts: no PNG or JPEG within the pixel limit is larger,
/// and it keeps a mistaken path (a video, a disk image) from filling memory.
let maximumFileBytes = 1 << 31

/// What a path that is not a regular file is ("a folder", "a FIFO (named pipe)", ...), nil
/// for a regular file.
public func specialFileKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFDIR: return "a folder"
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFSOCK: return "a socket"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    default: return "not a regular file"
    }
}

/// Reads a whole file with POSIX calls, turning each failure into an ``ImageError``
/// that names it (missing, a folder, unreadable, empty, larger than 2 GiB).
public func readFile(_ path: String) throws(ImageError) -> [UInt8] {
    // Only regular files are opened: a FIFO (a camera tool's pipe) would block `open` until
    // a writer came, a device would never end. The check is repeated on the descriptor,
    // which is opened without blocking in case the path changed in between.
    var before = stat()
    if stat(path, &before) == 0, let kind = specialFileKind(before.st_mode) {
        throw .unreadable(path: path, reason: "it is \(kind), not an image file")
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    if descriptor < 0 {
        let code = errno
        if code == ENOENT || code == ENOTDIR { throw .fileNotFound(path: path) }
        throw .unreadable(path: path, reason: String(cString: strerror(code)))
    }
    defer { close(descriptor) }
    var status = stat()
    if fstat(descriptor, &status) != 0 {
        throw .unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    if let kind = specialFileKind(status.st_mode) { throw .unreadable(path: path, reason: "it is \(kind), not an image file") }
    let size = Int(status.st_size)
    if size == 0 { throw .empty(path: path) }
    if size > maximumFileBytes {
        throw .unreadable(path: path, reason: "the file is \(size) bytes, more than the 2 GiB an image file may have")
    }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    var failure: Int32 = 0
    bytes.withUnsafeMutableBytes { buffer in
        while done < size {
            let count = read(descriptor, buffer.baseAddress! + done, size - done)
            if count < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            if count == 0 { break }  // the file shrank while we read it
            done += count
        }
    }
    if failure != 0 { throw .unreadable(path: path, reason: String(cString: strerror(failure))) }
    if done < size { bytes.removeLast(size - done) }
    if bytes.isEmpty { throw .empty(path: path) }
    return bytes
}

/// Writes a whole file atomically: to a temporary name beside it, then renamed.
func writeFile(_ path: String, _ bytes: [UInt8]) throws(ImageError) {
    let temporary = path + ".partial-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if descriptor < 0 { throw .writeFailed(path: path, reason: String(cString: strerror(errno))) }
    var failure: Int32 = 0
    bytes.withUnsafeBytes { buffer in
        var done = 0
        while done < buffer.count {
            let count = write(descriptor, buffer.baseAddress! + done, buffer.count - done)
            if count < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            done += count
        }
    }
    if close(descriptor) != 0 && failure == 0 { failure = errno }
    if failure == 0 && rename(temporary, path) != 0 { failure = errno }
    if failure != 0 {
        unlink(temporary)
        throw .writeFailed(path: path, reason: String(cString: strerror(failure)))
    }
}

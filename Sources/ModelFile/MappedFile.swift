#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be opened and mapped; each reader turns it into its own error type.
enum FileOpenFailure: Error {
    case notFound
    case folder
    case empty
    case unreadable(String)
}

/// Read-only bytes of a whole file, memory-mapped, or a private copy of bytes in memory.
///
/// The readers validate every offset against `bytes.count` before touching memory and
/// copy tensors out, so nothing refers to the mapping after the reader returns and the
/// mapping is released in `deinit`.
///
/// One hazard no reader can rule out: if another program truncates the file while it is
/// mapped, touching the lost pages raises SIGBUS. Write model files atomically (the writer
/// here does: temporary file, then rename) so that a file being read is never shortened.
final class MappedFile {
    /// The file's bytes; `count` is the file size.
    let bytes: UnsafeRawBufferPointer
    private let unmapLength: Int  // 0 when the bytes were allocated, not mapped

    /// Maps the file at `path` read-only.
    init(path: String) throws(FileOpenFailure) {
        // Only regular files are opened (a FIFO would block `open` until a writer came);
        // the descriptor is opened without blocking and checked again.
        var before = stat()
        if stat(path, &before) == 0 {
            switch before.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw .folder
            case S_IFIFO: throw .unreadable("it is a FIFO (named pipe), not a file")
            case S_IFSOCK: throw .unreadable("it is a socket, not a file")
            default: throw .unreadable("it is a device, not a file")
            }
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if descriptor < 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw .notFound }
            if code == EISDIR { throw .folder }
            throw .unreadable(String(cString: strerror(code)))
        }
        defer { close(descriptor) }
        var status = stat()
        if fstat(descriptor, &status) != 0 { throw .unreadable(String(cString: strerror(errno))) }
        if (status.st_mode & S_IFMT) == S_IFDIR { throw .folder }
        if (status.st_mode & S_IFMT) != S_IFREG { throw .unreadable("not a regular file") }
        let size = Int(status.st_size)
        if size == 0 { throw .empty }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw .unreadable("cannot map the file into memory: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(address), count: size)
        unmapLength = size
    }

    /// A private copy of bytes held in memory (for decoding buffers and for tests).
    init(copying source: [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        source.withUnsafeBytes { buffer.copyMemory(from: $0) }
        bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: source.count)
        unmapLength = 0
    }

    deinit {
        if unmapLength > 0 {
            munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), unmapLength)
        } else {
            bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() }
        }
    }
}

/// Writes bytes to `path` atomically: a temporary file beside it, flushed, then renamed,
/// so a reader never sees a half-written file. Returns the errno text on failure.
func writeFileAtomically(_ path: String, _ chunks: [[UInt8]]) -> String? {
    let temporary = path + ".partial-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if descriptor < 0 { return String(cString: strerror(errno)) }
    var failure: Int32 = 0
    outer: for chunk in chunks {
        chunk.withUnsafeBytes { buffer in
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
        if failure != 0 { break outer }
    }
    if failure == 0 && fsync(descriptor) != 0 { failure = errno }
    if close(descriptor) != 0 && failure == 0 { failure = errno }
    if failure == 0 && rename(temporary, path) != 0 { failure = errno }
    if failure != 0 {
        unlink(temporary)
        return String(cString: strerror(failure))
    }
    return nil
}

// MARK: - Bounds-checked reading

/// A read position over bytes that may be hostile: every read checks the remaining length
/// first and throws ``OutOfBytes`` instead of reading past the end.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    var position: Int

    init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }
    var isAtEnd: Bool { position >= bytes.count }

    /// The next `count` bytes, advancing past them.
    mutating func take(_ count: Int) throws(OutOfBytes) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw OutOfBytes(needed: count, at: position) }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
        position += count
        return slice
    }

    mutating func u8() throws(OutOfBytes) -> UInt8 {
        guard remaining >= 1 else { throw OutOfBytes(needed: 1, at: position) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() throws(OutOfBytes) -> UInt16 { UInt16(littleEndian: try load(UInt16.self)) }
    mutating func u32() throws(OutOfBytes) -> UInt32 { UInt32(littleEndian: try load(UInt32.self)) }
    mutating func u64() throws(OutOfBytes) -> UInt64 { UInt64(littleEndian: try load(UInt64.self)) }

    private mutating func load<T: FixedWidthInteger>(_ type: T.Type) throws(OutOfBytes) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw OutOfBytes(needed: size, at: position) }
        defer { position += size }
        return bytes.baseAddress!.loadUnaligned(fromByteOffset: position, as: T.self)
    }
}

/// A read that would have gone past the end of the bytes.
struct OutOfBytes: Error {
    var needed: Int
    var at: Int
}

/// Reads a little-endian integer at a byte offset the caller has already checked.
@inline(__always)
func loadLE<T: FixedWidthInteger>(_ base: UnsafeRawPointer, _ offset: Int, as: T.Type) -> T {
    T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
}

// MARK: - Overflow-checked arithmetic

/// `a * b`, or nil if it overflows `Int` or either is negative.
func checkedMultiply(_ a: Int, _ b: Int) -> Int? {
    guard a >= 0, b >= 0 else { return nil }
    let (result, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : result
}

/// `a + b`, or nil if it overflows `Int` or either is negative.
func checkedAdd(_ a: Int, _ b: Int) -> Int? {
    guard a >= 0, b >= 0 else { return nil }
    let (result, overflow) = a.addingReportingOverflow(b)
    return overflow ? nil : result
}

/// The product of the dimensions, or nil if one is negative or the product overflows.
func checkedElementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for dimension in shape {
        guard let next = checkedMultiply(count, dimension) else { return nil }
        count = next
    }
    return count
}

/// A `UInt64` from a file as `Int`, or nil if it does not fit.
func intFromFile(_ value: UInt64) -> Int? { value <= UInt64(Int.max) ? Int(value) : nil }

// MARK: - Conversion to Float32

/// Float16 bits to Float, written out because `Float16` is missing on some platforms
/// (macOS on Intel).
@inline(__always)
func floatFromHalfBits(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F {  // infinity or NaN
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    if exponent == 0 {  // zero or subnormal: mantissa * 2^-24
        let magnitude = Float(mantissa) * (1.0 / 16_777_216.0)
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}

/// Converts `count` little-endian elements of `type` starting at `source` to Float32.
/// The caller has checked that `count * type.byteWidth` bytes are readable there.
func convertToFloat(_ source: UnsafeRawPointer, count: Int, type: SourceScalarType, into destination: UnsafeMutablePointer<Float>) {
    switch type {
    case .float32:
        for i in 0..<count { destination[i] = Float(bitPattern: loadLE(source, i * 4, as: UInt32.self)) }
    case .float16:
        for i in 0..<count { destination[i] = floatFromHalfBits(loadLE(source, i * 2, as: UInt16.self)) }
    case .bfloat16:
        for i in 0..<count { destination[i] = Float(bitPattern: UInt32(loadLE(source, i * 2, as: UInt16.self)) << 16) }
    case .float64:
        for i in 0..<count { destination[i] = Float(Double(bitPattern: loadLE(source, i * 8, as: UInt64.self))) }
    case .int64:
        for i in 0..<count { destination[i] = Float(loadLE(source, i * 8, as: Int64.self)) }
    case .int32:
        for i in 0..<count { destination[i] = Float(loadLE(source, i * 4, as: Int32.self)) }
    case .int16:
        for i in 0..<count { destination[i] = Float(loadLE(source, i * 2, as: Int16.self)) }
    case .int8:
        for i in 0..<count { destination[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
    case .uint8:
        for i in 0..<count { destination[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
    case .bool:
        for i in 0..<count { destination[i] = source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
    }
}

/// `count` elements of `type` at `source` as a new Float array (bounds checked by the caller).
func floatArray(_ source: UnsafeRawPointer, count: Int, type: SourceScalarType) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { convertToFloat(source, count: count, type: type, into: buffer.baseAddress!) }
        initialized = count
    }
}

// The vinspect model file (`.vimodel`), format 1.0
// =================================================
//
// One self-contained file: header, metadata, tensor table, aligned tensor blob, checksum.
// All integers are little-endian and unsigned. Offsets are from the start of the file
// unless said otherwise.
//
// Fixed header (72 bytes in 1.0):
//
//   offset size field
//        0    8 magic 89 56 49 4D 0D 0A 1A 0A ("\x89VIM\r\n\x1A\n": the high byte and the
//               line endings reveal 7-bit and text-mode transfers, as in PNG)
//        8    2 major version (1)
//       10    2 minor version (0)
//       12    4 flags: written 0, ignored by 1.x readers
//       16    8 metadata offset
//       24    8 metadata length in bytes (at most 16 MiB)
//       32    8 tensor table offset
//       40    8 tensor table length in bytes
//       48    4 tensor count (at most 1 000 000)
//       52    4 reserved: written 0, ignored
//       56    8 blob offset (a multiple of 64)
//       64    8 blob length in bytes
//
// Metadata: UTF-8 JSON, one object, free-form (architecture, preprocessing, thresholds,
// class names, creation info). Readers ignore keys they do not know.
//
// Tensor table: `tensor count` entries, one after another:
//
//   size  field
//      4  entry length in bytes, this field included (readers skip to the next entry by
//         it, so a later minor version may append fields)
//      1  element type: 1 float32, 2 float16, 3 bfloat16 (1.0 writers write 1)
//      1  rank R (at most 8)
//      2  name length N in bytes (1 ... 4096)
//      N  name, UTF-8, unique in the file
//    8*R  dimensions, outermost first
//      8  data offset, relative to the blob (a multiple of 64)
//      8  data length in bytes (= product of dimensions * element size)
//
// The metadata and the table lie between the fixed header and the blob; the blob holds
// each tensor's row-major little-endian elements, each starting on a 64-byte boundary
// (zero padding between). After the blob, an 8-byte trailer ends the file:
//
//      4  CRC-32 (IEEE, as zip) of every byte before the trailer
//      4  end marker 89 45 4E 44 ("\x89END")
//
// So a 1.x file is exactly `blob offset + blob length + 8` bytes long.
//
// Versions: a newer major version is refused with a message naming it; a newer minor
// version is read (unknown flags, header bytes after the 1.0 fields, and entry fields
// after the 1.0 fields are skipped).
//
// Reading: the file is memory-mapped; every offset, length and shape product is checked
// with overflow-checked arithmetic against the file size before any byte is touched, the
// checksum is verified, and each tensor is copied out into a Float array. The mapping is
// released before the reader returns, so the returned value owns all its memory.

/// A vinspect model: free-form JSON metadata and named Float32 tensors, in one file.
///
/// ```swift
/// let model = ModelFile(metadata: ["architecture": .string("resnet18")], tensors: weights)
/// try model.write(toFile: "part-a.vimodel")
/// let loaded = try ModelFile(contentsOfFile: "part-a.vimodel")
/// ```
public struct ModelFile: Sendable, Equatable {
    /// The version this build writes; it reads any `1.x`.
    public static let currentVersion = ModelFileVersion(major: 1, minor: 0)
    /// The largest metadata this reader accepts (16 MiB).
    public static let maximumMetadataBytes = 16 << 20
    /// The largest tensor count this reader accepts.
    public static let maximumTensorCount = 1_000_000
    /// The longest tensor name, in UTF-8 bytes.
    public static let maximumNameBytes = 4096
    /// The largest tensor rank.
    public static let maximumRank = 8

    /// The format version the file was written with (``currentVersion`` for a new model).
    public var version: ModelFileVersion
    /// Free-form metadata: architecture, preprocessing, thresholds, class names, creation info.
    public var metadata: [String: JSONValue]
    /// The tensors, in file order.
    public var tensors: [NamedTensor]

    /// A model to be written.
    public init(metadata: [String: JSONValue], tensors: [NamedTensor]) {
        self.version = ModelFile.currentVersion
        self.metadata = metadata
        self.tensors = tensors
    }

    /// The tensor with this name, if any.
    public subscript(name: String) -> NamedTensor? { tensors.first { $0.name == name } }

    /// Reads a model file, memory-mapping it, checking it completely and copying the
    /// tensors out.
    ///
    /// - Parameters:
    ///   - path: the `.vimodel` file.
    ///   - verifyChecksum: check the CRC-32 trailer (default); turn off only to inspect a
    ///     damaged file. Structure is checked either way, so reading never goes out of bounds.
    /// - Throws: ``ModelFileError`` naming the file.
    public init(contentsOfFile path: String, verifyChecksum: Bool = true) throws(ModelFileError) {
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
        self = try ModelFile.decode(file.bytes, source: path, verifyChecksum: verifyChecksum)
    }

    /// Decodes a model file held in memory.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - source: the name to put in error messages.
    ///   - verifyChecksum: check the CRC-32 trailer.
    /// - Throws: ``ModelFileError`` naming `source`.
    public static func decode(_ bytes: [UInt8], source: String = "<memory>", verifyChecksum: Bool = true) throws(ModelFileError) -> ModelFile {
        if bytes.isEmpty { throw .empty(path: source) }
        let copy = MappedFile(copying: bytes)
        return try decode(copy.bytes, source: source, verifyChecksum: verifyChecksum)
    }

    static let magic: [UInt8] = [0x89, 0x56, 0x49, 0x4D, 0x0D, 0x0A, 0x1A, 0x0A]
    static let endMarker: [UInt8] = [0x89, 0x45, 0x4E, 0x44]
    static let fixedHeaderSize = 72
    static let trailerSize = 8

    /// Element types of the tensor table.
    enum ElementCode: UInt8 {
        case float32 = 1, float16 = 2, bfloat16 = 3
        var type: SourceScalarType {
            switch self {
            case .float32: return .float32
            case .float16: return .float16
            case .bfloat16: return .bfloat16
            }
        }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, source path: String, verifyChecksum: Bool) throws(ModelFileError) -> ModelFile {
        let size = bytes.count
        if size == 0 { throw .empty(path: path) }
        let head = Array(bytes.prefix(8))
        guard head == magic else {
            if magic.starts(with: head) { throw .truncated(path: path, detail: "only \(size) bytes, not even the file signature") }
            throw .notAModelFile(path: path, detected: describeUnknown(head, bytes))
        }
        guard size >= 12 else { throw .truncated(path: path, detail: "only \(size) bytes, the header needs \(fixedHeaderSize)") }
        let base = bytes.baseAddress!
        let major = Int(loadLE(base, 8, as: UInt16.self)), minor = Int(loadLE(base, 10, as: UInt16.self))
        let version = ModelFileVersion(major: major, minor: minor)
        if major > currentVersion.major { throw .newerMajorVersion(path: path, found: version, supportedMajor: currentVersion.major) }
        if major < 1 { throw .corrupt(path: path, detail: "format version \(version) does not exist") }
        guard size >= fixedHeaderSize else {
            throw .truncated(path: path, detail: "only \(size) bytes, the header needs \(fixedHeaderSize)")
        }

        // Header fields, each checked to fit in Int before any arithmetic.
        func field(_ offset: Int, _ name: String) throws(ModelFileError) -> Int {
            guard let value = intFromFile(loadLE(base, offset, as: UInt64.self)) else {
                throw .corrupt(path: path, detail: "header field \(name) is out of range")
            }
            return value
        }
        let metadataOffset = try field(16, "metadata offset"), metadataLength = try field(24, "metadata length")
        let tableOffset = try field(32, "table offset"), tableLength = try field(40, "table length")
        let tensorCount = Int(loadLE(base, 48, as: UInt32.self))
        let blobOffset = try field(56, "blob offset"), blobLength = try field(64, "blob length")

        guard let blobEnd = checkedAdd(blobOffset, blobLength), let expectedSize = checkedAdd(blobEnd, trailerSize) else {
            throw .corrupt(path: path, detail: "blob offset \(blobOffset) + length \(blobLength) overflows")
        }
        if size < expectedSize {
            throw .truncated(path: path, detail: "the file is \(size) bytes, its header announces \(expectedSize)")
        }
        if size > expectedSize {
            throw .corrupt(path: path, detail: "the file is \(size) bytes, its header announces \(expectedSize); bytes were added")
        }
        guard Array(UnsafeRawBufferPointer(rebasing: bytes[(size - 4)..<size])) == endMarker else {
            throw .corrupt(path: path, detail: "the end marker is missing")
        }
        if verifyChecksum {
            let stored = loadLE(base, blobEnd, as: UInt32.self)
            let computed = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<blobEnd]))
            if stored != computed { throw .checksumMismatch(path: path, stored: stored, computed: computed) }
        }

        if blobOffset % 64 != 0 { throw .corrupt(path: path, detail: "blob offset \(blobOffset) is not a multiple of 64") }
        if metadataLength > maximumMetadataBytes {
            throw .corrupt(path: path, detail: "metadata of \(metadataLength) bytes exceeds the \(maximumMetadataBytes)-byte limit")
        }
        if tensorCount > maximumTensorCount {
            throw .corrupt(path: path, detail: "\(tensorCount) tensors exceed the limit of \(maximumTensorCount)")
        }
        // Metadata and table lie between the fixed header and the blob.
        for (name, offset, length) in [("metadata", metadataOffset, metadataLength), ("tensor table", tableOffset, tableLength)] {
            guard offset >= fixedHeaderSize, let end = checkedAdd(offset, length), end <= blobOffset else {
                throw .corrupt(path: path, detail: "the \(name) (offset \(offset), \(length) bytes) lies outside the header area")
            }
        }

        let metadata = try parseMetadata(UnsafeRawBufferPointer(rebasing: bytes[metadataOffset..<(metadataOffset + metadataLength)]), path: path)
        let blob = UnsafeRawBufferPointer(rebasing: bytes[blobOffset..<blobEnd])
        let table = UnsafeRawBufferPointer(rebasing: bytes[tableOffset..<(tableOffset + tableLength)])
        let tensors = try parseTable(table, count: tensorCount, blob: blob, path: path)
        var model = ModelFile(metadata: metadata, tensors: tensors)
        model.version = version
        return model
    }

    private static func parseMetadata(_ bytes: UnsafeRawBufferPointer, path: String) throws(ModelFileError) -> [String: JSONValue] {
        if bytes.isEmpty { return [:] }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(bytes).value
        } catch {
            throw .corrupt(path: path, detail: "the metadata is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard case .object(let members) = parsed else { throw .corrupt(path: path, detail: "the metadata is not a JSON object") }
        return members
    }

    private static func parseTable(_ table: UnsafeRawBufferPointer, count: Int, blob: UnsafeRawBufferPointer, path: String) throws(ModelFileError) -> [NamedTensor] {
        var tensors: [NamedTensor] = []
        tensors.reserveCapacity(min(count, table.count / 20))
        var names = Set<String>()
        var ranges: [(start: Int, end: Int, name: String)] = []
        var cursor = ByteCursor(table)
        for index in 0..<count {
            let entryStart = cursor.position
            let entryLength: Int, code: UInt8, rank: Int, nameLength: Int
            do {
                entryLength = Int(try cursor.u32())
                code = try cursor.u8()
                rank = Int(try cursor.u8())
                nameLength = Int(try cursor.u16())
            } catch {
                throw .corrupt(path: path, detail: "the tensor table ends inside entry \(index) of \(count)")
            }
            guard entryLength >= 8, entryLength <= table.count - entryStart else {
                throw .corrupt(path: path, detail: "tensor table entry \(index) (\(entryLength) bytes) runs past the table")
            }
            // Read the entry within its own bounds, so a bad length cannot reach the next one.
            var entry = ByteCursor(UnsafeRawBufferPointer(rebasing: table[entryStart..<(entryStart + entryLength)]), at: 8)
            guard let element = ElementCode(rawValue: code) else {
                throw .corrupt(path: path, detail: "tensor table entry \(index) has unknown element type \(code)")
            }
            if rank > maximumRank { throw .corrupt(path: path, detail: "tensor table entry \(index) has rank \(rank), the limit is \(maximumRank)") }
            if nameLength == 0 || nameLength > maximumNameBytes {
                throw .corrupt(path: path, detail: "tensor table entry \(index) has a name of \(nameLength) bytes")
            }
            let name: String, shape: [Int], offset: Int, length: Int
            do {
                guard let decoded = String(validating: try entry.take(nameLength), as: UTF8.self) else {
                    throw ModelFileError.corrupt(path: path, detail: "tensor table entry \(index) has a name that is not UTF-8")
                }
                name = decoded
                var dims: [Int] = []
                for _ in 0..<rank {
                    guard let dim = intFromFile(try entry.u64()) else {
                        throw ModelFileError.corrupt(path: path, detail: "tensor \"\(decoded)\" has a dimension out of range")
                    }
                    dims.append(dim)
                }
                shape = dims
                guard let o = intFromFile(try entry.u64()), let l = intFromFile(try entry.u64()) else {
                    throw ModelFileError.corrupt(path: path, detail: "tensor \"\(decoded)\" has a data offset or length out of range")
                }
                offset = o
                length = l
            } catch let error as ModelFileError {
                throw error
            } catch {
                throw .corrupt(path: path, detail: "tensor table entry \(index) is shorter than its fields (\(entryLength) bytes)")
            }
            cursor.position = entryStart + entryLength
            if !names.insert(name).inserted { throw .duplicateTensorName(path: path, name: name) }
            guard let elements = checkedElementCount(shape), let expected = checkedMultiply(elements, element.type.byteWidth) else {
                throw .corrupt(path: path, detail: "tensor \"\(name)\" has shape \(shape), whose size overflows")
            }
            if length != expected {
                throw .corrupt(path: path, detail: "tensor \"\(name)\" has shape \(shape) of \(expected) bytes but declares \(length)")
            }
            if offset % 64 != 0 { throw .corrupt(path: path, detail: "tensor \"\(name)\" starts at blob offset \(offset), not a multiple of 64") }
            guard let end = checkedAdd(offset, length), end <= blob.count else {
                throw .corrupt(path: path, detail: "tensor \"\(name)\" (blob offset \(offset), \(length) bytes) lies past the end of the blob (\(blob.count) bytes)")
            }
            ranges.append((offset, end, name))
            let scalars = floatArray(blob.baseAddress! + offset, count: elements, type: element.type)
            tensors.append(NamedTensor(name: name, shape: shape, scalars: scalars, sourceType: element.type))
        }
        ranges.sort { $0.start < $1.start }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.start < a.end && b.end > b.start {
            throw .corrupt(path: path, detail: "tensors \"\(a.name)\" and \"\(b.name)\" overlap in the blob")
        }
        return tensors
    }

    private static func describeUnknown(_ head: [UInt8], _ bytes: UnsafeRawBufferPointer) -> String {
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "it is a zip archive, perhaps a PyTorch checkpoint" }
        if head.first == 0x80 { return "it looks like a Python pickle, perhaps a legacy PyTorch checkpoint" }
        if bytes.count > 8 && bytes[8] == UInt8(ascii: "{") { return "it looks like a safetensors file" }
        if head.starts(with: [0x89, 0x56, 0x49, 0x4D]) { return "it starts like a model file but the signature is damaged" }
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "it is a PNG image" }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "it is a JPEG image" }
        return "unrecognised content"
    }
}

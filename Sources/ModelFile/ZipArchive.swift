// A minimal zip reader for PyTorch checkpoints (APPNOTE.TXT, the parts needed):
//
//   end of central directory (EOCD, signature PK\5\6) in the last 65 557 bytes:
//     +10 entry count (2), +12 directory size (4), +16 directory offset (4)
//   zip64: when those are 0xFFFF / 0xFFFFFFFF, the zip64 locator (PK\6\7) just before
//     the EOCD gives the zip64 EOCD (PK\6\6): +32 entry count, +40 size, +48 offset (8 each)
//   central directory entries (PK\1\2): +8 flags, +10 method, +16 CRC-32, +20 compressed
//     size, +24 size, +28 name length, +30 extra length, +32 comment length, +42 local
//     header offset, +46 name; a zip64 extra field (id 1) holds the 8-byte values whose
//     32-bit fields are 0xFFFFFFFF, in the order size, compressed size, offset
//   local header (PK\3\4): +26 name length, +28 extra length, data after +30 + both
//
// Only stored (uncompressed) members are read: PyTorch writes its checkpoints stored, and
// the data stays memory-mapped; a compressed (deflate) member is refused with a message.
// Encrypted members are refused. Every member's CRC-32 is checked when it is read.

/// One member of a zip archive: where its bytes lie in the file.
struct ZipMember {
    var name: String
    var method: UInt16
    var flags: UInt16
    var crc: UInt32
    var size: Int
    var dataOffset: Int
}

enum ZipArchive {
    static let maximumEntries = 1_000_000

    /// Lists the members of the archive, checking every offset against the file size.
    static func members(_ bytes: UnsafeRawBufferPointer, path: String) throws(WeightImportError) -> [ZipMember] {
        let format = WeightFileFormat.pytorchZip
        func corrupt(_ detail: String) -> WeightImportError { .corrupt(path: path, format: format, detail: detail) }
        let size = bytes.count
        let base = bytes.baseAddress!
        // The EOCD is 22 bytes plus a comment of up to 65 535.
        var eocd = -1
        if size >= 22 {
            var at = size - 22
            let lowest = max(0, size - 22 - 65_535)
            while at >= lowest {
                if loadLE(base, at, as: UInt32.self) == 0x0605_4B50 { eocd = at; break }
                at -= 1
            }
        }
        guard eocd >= 0 else { throw .truncated(path: path, format: format, detail: "the zip directory at the end of the file is missing") }
        var count = Int(loadLE(base, eocd + 10, as: UInt16.self))
        var directorySize = Int(loadLE(base, eocd + 12, as: UInt32.self))
        var directoryOffset = Int(loadLE(base, eocd + 16, as: UInt32.self))
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            guard eocd >= 20, loadLE(base, eocd - 20, as: UInt32.self) == 0x0706_4B50,
                  let zip64 = intFromFile(loadLE(base, eocd - 12, as: UInt64.self)),
                  let zip64End = checkedAdd(zip64, 56), zip64End <= eocd,
                  loadLE(base, zip64, as: UInt32.self) == 0x0606_4B50,
                  let c = intFromFile(loadLE(base, zip64 + 32, as: UInt64.self)),
                  let s = intFromFile(loadLE(base, zip64 + 40, as: UInt64.self)),
                  let o = intFromFile(loadLE(base, zip64 + 48, as: UInt64.self)) else {
                throw corrupt("the zip64 directory record is missing or damaged")
            }
            (count, directorySize, directoryOffset) = (c, s, o)
        }
        if count > maximumEntries { throw .limitExceeded(path: path, format: format, detail: "\(count) zip members") }
        guard let directoryEnd = checkedAdd(directoryOffset, directorySize), directoryEnd <= size else {
            throw .truncated(path: path, format: format, detail: "the zip directory lies past the end of the file")
        }
        var cursor = ByteCursor(UnsafeRawBufferPointer(rebasing: bytes[directoryOffset..<directoryEnd]))
        var members: [ZipMember] = []
        for index in 0..<count {
            do {
                guard try cursor.u32() == 0x0201_4B50 else { throw corrupt("zip directory entry \(index) is damaged") }
                _ = try cursor.take(4)
                let flags = try cursor.u16(), method = try cursor.u16()
                _ = try cursor.take(4)
                let crc = try cursor.u32()
                var compressed = UInt64(try cursor.u32()), uncompressed = UInt64(try cursor.u32())
                let nameLength = Int(try cursor.u16()), extraLength = Int(try cursor.u16()), commentLength = Int(try cursor.u16())
                _ = try cursor.take(8)
                var localOffset = UInt64(try cursor.u32())
                let nameBytes = try cursor.take(nameLength)
                var extra = ByteCursor(try cursor.take(extraLength))
                _ = try cursor.take(commentLength)
                while extra.remaining >= 4 {
                    let id = try extra.u16(), length = Int(try extra.u16())
                    var field = ByteCursor(try extra.take(length))
                    if id == 1 {
                        if uncompressed == 0xFFFF_FFFF { uncompressed = try field.u64() }
                        if compressed == 0xFFFF_FFFF { compressed = try field.u64() }
                        if localOffset == 0xFFFF_FFFF { localOffset = try field.u64() }
                    }
                }
                guard let name = String(validating: nameBytes, as: UTF8.self) else { throw corrupt("zip member \(index) has a name that is not UTF-8") }
                guard let local = intFromFile(localOffset), let storedSize = intFromFile(compressed),
                      let localFixedEnd = checkedAdd(local, 30), localFixedEnd <= size,
                      loadLE(base, local, as: UInt32.self) == 0x0403_4B50 else {
                    throw corrupt("the local header of zip member \"\(name)\" is missing")
                }
                let dataOffset = local + 30 + Int(loadLE(base, local + 26, as: UInt16.self)) + Int(loadLE(base, local + 28, as: UInt16.self))
                guard let dataEnd = checkedAdd(dataOffset, storedSize), dataEnd <= size else {
                    throw WeightImportError.truncated(path: path, format: format, detail: "zip member \"\(name)\" ends past the end of the file")
                }
                if method == 0 && UInt64(storedSize) != uncompressed { throw corrupt("stored zip member \"\(name)\" has two different sizes") }
                members.append(ZipMember(name: name, method: method, flags: flags, crc: crc, size: storedSize, dataOffset: dataOffset))
            } catch let error as WeightImportError {
                throw error
            } catch {
                throw corrupt("zip directory entry \(index) runs past the directory")
            }
        }
        return members
    }

    /// The bytes of a stored member, after checking its CRC-32.
    static func data(of member: ZipMember, in bytes: UnsafeRawBufferPointer, path: String) throws(WeightImportError) -> UnsafeRawBufferPointer {
        let format = WeightFileFormat.pytorchZip
        if member.flags & 1 != 0 { throw .unsupported(path: path, format: format, detail: "zip member \"\(member.name)\" is encrypted") }
        guard member.method == 0 else {
            let method = member.method == 8 ? "deflate" : "method \(member.method)"
            throw .unsupported(path: path, format: format, detail: "zip member \"\(member.name)\" is compressed (\(method)); PyTorch writes checkpoints uncompressed — save it again with torch.save instead of re-zipping it")
        }
        let data = UnsafeRawBufferPointer(rebasing: bytes[member.dataOffset..<(member.dataOffset + member.size)])
        let computed = CRC32.checksum(data)
        if computed != member.crc {
            throw .corrupt(path: path, format: format, detail: "zip member \"\(member.name)\" fails its CRC-32 check")
        }
        return data
    }
}

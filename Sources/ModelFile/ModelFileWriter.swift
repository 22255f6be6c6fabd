// Writes the format described at the top of ModelFileReader.swift.

extension ModelFile {
    /// The file's bytes: header, metadata, table, 64-byte-aligned blob, checksum trailer.
    ///
    /// - Throws: ``ModelFileError/invalidContent(path:detail:)`` (path `<memory>`) when the
    ///   model cannot be represented: duplicate or empty names, names over 4096 bytes, rank
    ///   over 8, metadata over 16 MiB or holding NaN/infinity, too many tensors.
    public func serialized() throws(ModelFileError) -> [UInt8] {
        var crc = CRC32()
        var out: [UInt8] = []
        for chunk in try chunks(path: "<memory>") {
            out += chunk
            chunk.withUnsafeBytes { crc.update($0) }
        }
        return out + trailer(crc.value)
    }

    /// Writes the model file atomically: to a temporary file beside `path`, then renamed,
    /// so readers see either the old file or the complete new one.
    ///
    /// - Throws: ``ModelFileError`` naming `path`.
    public func write(toFile path: String) throws(ModelFileError) {
        let parts = try chunks(path: path)
        var crc = CRC32()
        for chunk in parts { chunk.withUnsafeBytes { crc.update($0) } }
        if let reason = writeFileAtomically(path, parts + [trailer(crc.value)]) {
            throw .writeFailed(path: path, reason: reason)
        }
    }

    private func trailer(_ crc: UInt32) -> [UInt8] {
        var bytes: [UInt8] = []
        append(UInt32(crc), to: &bytes)
        return bytes + ModelFile.endMarker
    }

    /// Everything before the trailer, as the header-and-table chunk and one chunk per tensor.
    private func chunks(path: String) throws(ModelFileError) -> [[UInt8]] {
        func invalid(_ detail: String) -> ModelFileError { .invalidContent(path: path, detail: detail) }
        let metaValue = JSONValue.object(metadata)
        guard metaValue.isRepresentable else { throw invalid("the metadata holds NaN or infinity, which JSON cannot carry") }
        let metadataBytes = Array(metaValue.description.utf8)
        if metadataBytes.count > ModelFile.maximumMetadataBytes { throw invalid("the metadata is \(metadataBytes.count) bytes, the limit is \(ModelFile.maximumMetadataBytes)") }
        if tensors.count > ModelFile.maximumTensorCount { throw invalid("\(tensors.count) tensors, the limit is \(ModelFile.maximumTensorCount)") }

        var table: [UInt8] = []
        var names = Set<String>()
        var blobLength = 0
        var offsets: [Int] = []
        for tensor in tensors {
            let name = Array(tensor.name.utf8)
            if name.isEmpty || name.count > ModelFile.maximumNameBytes { throw invalid("tensor name \"\(tensor.name)\" must have 1 to \(ModelFile.maximumNameBytes) bytes") }
            if !names.insert(tensor.name).inserted { throw invalid("the tensor name \"\(tensor.name)\" appears twice") }
            if tensor.shape.count > ModelFile.maximumRank { throw invalid("tensor \"\(tensor.name)\" has rank \(tensor.shape.count), the limit is \(ModelFile.maximumRank)") }
            let length = tensor.scalars.count * 4
            let entryLength = 4 + 1 + 1 + 2 + name.count + 8 * tensor.shape.count + 16
            append(UInt32(entryLength), to: &table)
            table.append(ElementCode.float32.rawValue)
            table.append(UInt8(tensor.shape.count))
            append(UInt16(name.count), to: &table)
            table += name
            for dim in tensor.shape { append(UInt64(dim), to: &table) }
            append(UInt64(blobLength), to: &table)
            append(UInt64(length), to: &table)
            offsets.append(blobLength)
            blobLength += (length + 63) / 64 * 64
        }
        let metadataOffset = ModelFile.fixedHeaderSize
        let tableOffset = metadataOffset + metadataBytes.count
        let blobOffset = (tableOffset + table.count + 63) / 64 * 64

        var head: [UInt8] = ModelFile.magic
        append(UInt16(ModelFile.currentVersion.major), to: &head)
        append(UInt16(ModelFile.currentVersion.minor), to: &head)
        append(UInt32(0), to: &head)
        for value in [metadataOffset, metadataBytes.count, tableOffset, table.count] { append(UInt64(value), to: &head) }
        append(UInt32(tensors.count), to: &head)
        append(UInt32(0), to: &head)
        append(UInt64(blobOffset), to: &head)
        append(UInt64(blobLength), to: &head)
        head += metadataBytes
        head += table
        head += [UInt8](repeating: 0, count: blobOffset - head.count)

        var parts = [head]
        for tensor in tensors {
            let length = tensor.scalars.count * 4
            let padded = (length + 63) / 64 * 64
            var data = [UInt8](repeating: 0, count: padded)
            data.withUnsafeMutableBytes { raw in
                for (i, value) in tensor.scalars.enumerated() {
                    raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                }
            }
            parts.append(data)
        }
        return parts
    }

    private func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

// safetensors (https://huggingface.co/docs/safetensors), as this importer reads it:
//
//   8 bytes   N, the header length, little-endian unsigned
//   N bytes   UTF-8 JSON object: {"<name>": {"dtype": "F32", "shape": [2, 3],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {string: string}}
//             (may end with spaces)
//   rest      the data; offsets are relative to its start, little-endian, row-major
//
// Element types: F32, F16, BF16, F64 are converted to Float32; the integer types I64,
// I32, I16, I8, U8 and BOOL are converted too (exact up to 2^24), so that buffers such as
// `num_batches_tracked` come along; any other type (F8_*, U16, U32, U64, ...) is refused.
// Each tensor's byte range must lie inside the data and match its shape exactly; the
// header is limited to 100 MB and 1 000 000 tensors. Tensors keep the header's order.

enum SafeTensorsReader {
    static let maximumHeaderBytes = 100_000_000

    static func read(_ bytes: UnsafeRawBufferPointer, path: String) throws(WeightImportError) -> [NamedTensor] {
        let format = WeightFileFormat.safetensors
        func corrupt(_ detail: String) -> WeightImportError { .corrupt(path: path, format: format, detail: detail) }
        guard bytes.count >= 8 else { throw .truncated(path: path, format: format, detail: "\(bytes.count) bytes, fewer than the 8-byte header length") }
        let declared = loadLE(bytes.baseAddress!, 0, as: UInt64.self)
        guard declared <= UInt64(maximumHeaderBytes) else {
            throw .limitExceeded(path: path, format: format, detail: "a header of \(declared) bytes, the limit is \(maximumHeaderBytes)")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw .truncated(path: path, format: format, detail: "the header needs \(headerLength) bytes, the file has \(bytes.count - 8) after its length")
        }
        let header: JSONValue, order: [String]
        do {
            (header, order) = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)]))
        } catch {
            throw corrupt("the header is not valid JSON: \(error.reason) at byte \(8 + error.offset)")
        }
        guard case .object(let entries) = header else { throw corrupt("the header is not a JSON object") }
        if entries.count > 1_000_001 { throw .limitExceeded(path: path, format: format, detail: "\(entries.count) tensors") }
        let data = UnsafeRawBufferPointer(rebasing: bytes[(8 + headerLength)...])
        var tensors: [NamedTensor] = []
        for name in order where name != "__metadata__" {
            guard case .object(let info) = entries[name]! else { throw corrupt("the entry for \"\(name)\" is not an object") }
            guard let dtype = info["dtype"]?.stringValue else { throw corrupt("tensor \"\(name)\" has no dtype") }
            let type: SourceScalarType
            switch dtype {
            case "F32": type = .float32
            case "F16": type = .float16
            case "BF16": type = .bfloat16
            case "F64": type = .float64
            case "I64": type = .int64
            case "I32": type = .int32
            case "I16": type = .int16
            case "I8": type = .int8
            case "U8": type = .uint8
            case "BOOL": type = .bool
            default: throw .unsupported(path: path, format: format, detail: "tensor \"\(name)\" has element type \(dtype)")
            }
            guard let dims = info["shape"]?.arrayValue, dims.count <= 64 else { throw corrupt("tensor \"\(name)\" has no valid shape") }
            var shape: [Int] = []
            for dim in dims {
                guard let n = dim.intValue, n >= 0 else { throw corrupt("tensor \"\(name)\" has a dimension that is not a count: \(dim)") }
                shape.append(n)
            }
            guard let offsets = info["data_offsets"]?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue, begin >= 0, begin <= end else {
                throw corrupt("tensor \"\(name)\" has no valid data_offsets")
            }
            guard let count = checkedElementCount(shape), let length = checkedMultiply(count, type.byteWidth) else {
                throw corrupt("tensor \"\(name)\" has shape \(shape), whose size overflows")
            }
            if end - begin != length { throw corrupt("tensor \"\(name)\" has shape \(shape) (\(length) bytes) but data_offsets span \(end - begin) bytes") }
            if end > data.count {
                throw .truncated(path: path, format: format, detail: "tensor \"\(name)\" ends at data byte \(end), the data has \(data.count)")
            }
            tensors.append(NamedTensor(name: name, shape: shape, scalars: floatArray(data.baseAddress! + begin, count: count, type: type), sourceType: type))
        }
        return tensors
    }
}

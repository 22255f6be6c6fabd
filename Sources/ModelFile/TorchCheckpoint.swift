// PyTorch checkpoints, read without executing anything (see Unpickler.swift).
//
// Zip format (torch.save since PyTorch 1.6): a zip archive of stored members under one
// folder `<prefix>/`: `data.pkl` (the pickled object), `data/<key>` (each storage's raw
// little-endian elements), `version`, and in newer files `byteorder` ("little"). Tensors
// in data.pkl are `_rebuild_tensor_v2(storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata])` whose storage comes from the persistent id
// `('storage', torch.<Kind>Storage, key, location, numel)`.
//
// Legacy format (`_use_new_zipfile_serialization=False`): five pickles back to back —
// the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict
// (`little_endian` must be true), the object with persistent ids
// `('storage', torch.<Kind>Storage, root_key, location, numel, view_metadata)`, the list
// of storage keys — then for each key in that order an 8-byte little-endian element count
// and the storage's raw little-endian elements. `view_metadata` is None or
// `(view_key, offset, size)`, a view into the root storage.
//
// Which tensors are taken from the object: see ``TensorCollector``. Tensors may be
// non-contiguous (any non-negative strides): their elements are gathered in row-major
// order after checking that the largest index stays inside the storage.

enum TorchCheckpointReader {
    /// Reads a zip-format checkpoint.
    static func readZip(_ bytes: UnsafeRawBufferPointer, path: String) throws(WeightImportError) -> [NamedTensor] {
        let format = WeightFileFormat.pytorchZip
        let members = try ZipArchive.members(bytes, path: path)
        guard let pickle = members.filter({ $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") })
            .min(by: { $0.name.count < $1.name.count }) else {
            throw .unknownFormat(path: path, detected: "a zip archive without data.pkl, so not a PyTorch checkpoint")
        }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        var byName: [String: ZipMember] = [:]
        for member in members { byName[member.name] = member }
        if let order = byName[prefix + "byteorder"] {
            let text = String(decoding: try ZipArchive.data(of: order, in: bytes, path: path), as: UTF8.self)
            if !text.hasPrefix("little") {
                throw .unsupported(path: path, format: format, detail: "byte order \"\(text)\"; load and save it on a little-endian machine")
            }
        }
        let unpickler = Unpickler(bytes: try ZipArchive.data(of: pickle, in: bytes, path: path), path: path, format: format, legacy: false)
        let root = try unpickler.load(at: 0).value
        var collector = TensorCollector(path: path, format: format)
        try collector.collect(root)
        var storages: [String: UnsafeRawBufferPointer] = [:]
        var tensors: [NamedTensor] = []
        for (name, tensor) in collector.found {
            let key = tensor.storage.key
            if storages[key] == nil {
                guard let member = byName[prefix + "data/" + key] else {
                    throw .corrupt(path: path, format: format, detail: "tensor \"\(name)\" uses storage \"\(key)\", which the archive lacks")
                }
                storages[key] = try ZipArchive.data(of: member, in: bytes, path: path)
            }
            tensors.append(try materialize(tensor, name: name, root: storages[key]!, path: path, format: format))
        }
        return try finish(tensors, path: path, format: format)
    }

    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Reads a legacy-format checkpoint.
    static func readLegacy(_ bytes: UnsafeRawBufferPointer, path: String) throws(WeightImportError) -> [NamedTensor] {
        let format = WeightFileFormat.pytorchLegacy
        func corrupt(_ detail: String) -> WeightImportError { .corrupt(path: path, format: format, detail: detail) }
        let unpickler = Unpickler(bytes: bytes, path: path, format: format, legacy: true)
        let (magic, afterMagic) = try unpickler.load(at: 0)
        guard case .bigInt(let digits) = magic, digits == legacyMagic else {
            throw .unknownFormat(path: path, detected: "a Python pickle that is not a PyTorch checkpoint")
        }
        let (protocolVersion, afterProtocol) = try unpickler.load(at: afterMagic)
        guard case .int(1001) = protocolVersion else { throw .unsupported(path: path, format: format, detail: "serialization protocol \(protocolVersion)") }
        let (sysInfo, afterInfo) = try unpickler.load(at: afterProtocol)
        if case .dict(let info) = sysInfo, let at = info.stringIndex["little_endian"], case .bool(false) = info.items[at] {
            throw .unsupported(path: path, format: format, detail: "saved on a big-endian machine; load and save it on a little-endian one")
        }
        let (root, afterRoot) = try unpickler.load(at: afterInfo)
        let (keyList, afterKeys) = try unpickler.load(at: afterRoot)
        guard case .list(let keys) = keyList else { throw corrupt("the storage key list is a \(keyList.typeName)") }

        // The storages follow, in key order: an 8-byte element count, then the elements.
        var storages: [String: UnsafeRawBufferPointer] = [:]
        var position = afterKeys
        for item in keys.items {
            let key: String
            switch item {
            case .string(let s): key = s
            case .int(let n): key = String(n)
            default: throw corrupt("a storage key that is a \(item.typeName)")
            }
            guard let type = unpickler.storageTypes[key] else { throw corrupt("storage \"\(key)\" is listed but no tensor uses it") }
            guard bytes.count - position >= 8 else {
                throw .truncated(path: path, format: format, detail: "the data of storage \"\(key)\" is missing")
            }
            guard let count = intFromFile(loadLE(bytes.baseAddress!, position, as: UInt64.self)),
                  let length = checkedMultiply(count, type.byteWidth) else {
                throw corrupt("storage \"\(key)\" declares an impossible element count")
            }
            guard length <= bytes.count - position - 8 else {
                throw .truncated(path: path, format: format, detail: "storage \"\(key)\" needs \(length) bytes, \(bytes.count - position - 8) remain")
            }
            if storages.updateValue(UnsafeRawBufferPointer(rebasing: bytes[(position + 8)..<(position + 8 + length)]), forKey: key) != nil {
                throw corrupt("storage \"\(key)\" is listed twice")
            }
            position += 8 + length
        }
        var collector = TensorCollector(path: path, format: format)
        try collector.collect(root)
        var tensors: [NamedTensor] = []
        for (name, tensor) in collector.found {
            guard let data = storages[tensor.storage.key] else {
                throw corrupt("tensor \"\(name)\" uses storage \"\(tensor.storage.key)\", whose data the file lacks")
            }
            tensors.append(try materialize(tensor, name: name, root: data, path: path, format: format))
        }
        return try finish(tensors, path: path, format: format)
    }

    private static func finish(_ tensors: [NamedTensor], path: String, format: WeightFileFormat) throws(WeightImportError) -> [NamedTensor] {
        if tensors.isEmpty { throw .noTensors(path: path, format: format) }
        var names = Set<String>()
        for tensor in tensors where !names.insert(tensor.name).inserted {
            throw .duplicateName(path: path, format: format, name: tensor.name)
        }
        return tensors
    }

    /// The tensor's elements, gathered through its strides from the root storage's bytes.
    static func materialize(_ tensor: PickledTensor, name: String, root: UnsafeRawBufferPointer, path: String, format: WeightFileFormat) throws(WeightImportError) -> NamedTensor {
        func corrupt(_ detail: String) -> WeightImportError { .corrupt(path: path, format: format, detail: "tensor \"\(name)\": \(detail)") }
        let storage = tensor.storage
        let width = storage.type.byteWidth
        let size = tensor.size, stride = tensor.stride
        guard size.count == stride.count else { throw corrupt("size \(size) and stride \(stride) differ in length") }
        guard size.allSatisfy({ $0 >= 0 }) else { throw corrupt("negative size \(size)") }
        guard stride.allSatisfy({ $0 >= 0 }), tensor.offset >= 0 else { throw corrupt("negative stride \(stride) or storage offset \(tensor.offset)") }
        guard let count = checkedElementCount(size) else { throw corrupt("size \(size) overflows") }
        if count == 0 { return NamedTensor(name: name, shape: size, scalars: [], sourceType: storage.type) }
        // Stride-0 (broadcast) views can describe any number of elements with a few bytes
        // of storage; refuse more elements than the storage holds, or a hostile size such
        // as [2^40] with stride [0] would allocate terabytes.
        if count > storage.elementCount {
            throw .limitExceeded(path: path, format: format, detail: "tensor \"\(name)\" has \(count) elements but its storage only \(storage.elementCount) (a broadcast view); save a contiguous copy (tensor.contiguous())")
        }
        // The largest element index the tensor touches, relative to its storage (view).
        var last = tensor.offset
        for (n, s) in zip(size, stride) {
            guard let step = checkedMultiply(n - 1, s), let sum = checkedAdd(last, step) else { throw corrupt("size \(size) and stride \(stride) overflow") }
            last = sum
        }
        let available = root.count / width  // elements physically present
        guard last < storage.elementCount, let absoluteLast = checkedAdd(storage.baseOffset, last), absoluteLast < available else {
            throw corrupt("storage offset \(tensor.offset), size \(size) and stride \(stride) reach element \(last), past the end of its storage of \(min(storage.elementCount, available)) elements")
        }
        let start = storage.baseOffset + tensor.offset
        let base = root.baseAddress!
        var contiguous = true
        var expected = 1
        for (n, s) in zip(size, stride).reversed() where n > 1 {
            if s != expected { contiguous = false }
            expected *= n
        }
        if contiguous {
            return NamedTensor(name: name, shape: size, scalars: floatArray(base + start * width, count: count, type: storage.type), sourceType: storage.type)
        }
        // Gather: walk the indices like an odometer, last dimension fastest.
        var scalars = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: size.count)
        var element = start
        scalars.withUnsafeMutableBufferPointer { out in
            for i in 0..<count {
                convertToFloat(base + element * width, count: 1, type: storage.type, into: out.baseAddress! + i)
                var d = size.count - 1
                while d >= 0 {
                    index[d] += 1
                    element += stride[d]
                    if index[d] < size[d] { break }
                    element -= stride[d] * size[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return NamedTensor(name: name, shape: size, scalars: scalars, sourceType: storage.type)
    }
}

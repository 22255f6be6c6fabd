// A restricted Python unpickler: enough of pickle protocols 2-5 to read PyTorch state
// dicts, and nothing that can run code.
//
// What it does differently from Python's unpickler:
// - GLOBAL / STACK_GLOBAL resolve only an allow-list (`collections.OrderedDict`,
//   `torch._utils._rebuild_tensor_v2`, `_rebuild_tensor`, `_rebuild_parameter` and the
//   typed storage classes `torch.<Kind>Storage`); any other name is refused on sight,
//   before anything could call it, with a ``WeightImportError/forbiddenGlobal(path:global:)``.
// - REDUCE "calls" only those names, and only by building inert descriptions: an empty
//   dictionary for OrderedDict, a ``PickledTensor`` for the rebuild functions.
// - BUILD (`__setstate__`) keeps the object and drops the state (a state dict's
//   `_metadata`); NEWOBJ, INST, OBJ, EXT* and every other opcode are refused.
// - Limits: MARK nesting (1000), memo index (2^24); every opcode consumes input, so the
//   time is linear in the file's length.
// - Containers are reference objects, as in Python (a dict is filled after it is
//   memoized). Every container is kept in an arena and emptied when the unpickler goes
//   away, so that freeing a deeply nested or cyclic structure never recurses.

/// A Python container (list, tuple or dict) built by the unpickler.
final class PickleContainer {
    var items: [PickleValue] = []
    /// For dicts: the keys, parallel to `items`, and where each string key sits.
    var keys: [PickleValue] = []
    var stringIndex: [String: Int] = [:]

    func setItem(_ key: PickleValue, _ value: PickleValue) {
        if case .string(let s) = key {
            if let at = stringIndex[s] { items[at] = value; return }
            stringIndex[s] = items.count
        }
        keys.append(key)
        items.append(value)
    }
}

/// Where a tensor's elements are: a storage key, the element type, and how many elements.
struct PickledStorage {
    var type: SourceScalarType
    var key: String
    var elementCount: Int
    /// Legacy views: the element offset of this view inside the root storage.
    var baseOffset: Int = 0
}

/// A tensor as `_rebuild_tensor_v2` describes it; its elements are read later.
struct PickledTensor {
    var storage: PickledStorage
    var offset: Int
    var size: [Int]
    var stride: [Int]
}

/// The names the unpickler resolves.
enum AllowedGlobal: Equatable {
    case orderedDict, rebuildTensorV2, rebuildTensor, rebuildParameter
    case storageType(SourceScalarType)

    static func resolve(module: String, name: String) -> AllowedGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch", let storage) where storage.hasSuffix("Storage"):
            // Inert data classes; only referenced in persistent ids, never called.
            switch storage {
            case "FloatStorage": return .storageType(.float32)
            case "HalfStorage": return .storageType(.float16)
            case "BFloat16Storage": return .storageType(.bfloat16)
            case "DoubleStorage": return .storageType(.float64)
            case "LongStorage": return .storageType(.int64)
            case "IntStorage": return .storageType(.int32)
            case "ShortStorage": return .storageType(.int16)
            case "CharStorage": return .storageType(.int8)
            case "ByteStorage": return .storageType(.uint8)
            case "BoolStorage": return .storageType(.bool)
            default: return nil
            }
        default: return nil
        }
    }
}

/// A value on the unpickler's stack.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes(Int)  // only the length: state dicts never need byte strings' contents
    case tuple(PickleContainer)
    case list(PickleContainer)
    case dict(PickleContainer)
    case global(AllowedGlobal)
    case storage(PickledStorage)
    case tensor(PickledTensor)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "a class or function"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// Reads pickles from bytes that may be hostile; see the notes at the top of this file.
final class Unpickler {
    private let bytes: UnsafeRawBufferPointer
    private let path: String
    private let format: WeightFileFormat
    /// Legacy checkpoints use 6-field persistent ids (with view metadata), zip ones 5.
    private let legacy: Bool
    private var arena: [PickleContainer] = []
    /// The element type of every storage key a persistent id named, for the legacy
    /// format, whose storage data follows the pickles.
    private(set) var storageTypes: [String: SourceScalarType] = [:]

    static let maximumMarkDepth = 1000
    static let maximumMemoIndex = 1 << 24

    init(bytes: UnsafeRawBufferPointer, path: String, format: WeightFileFormat, legacy: Bool) {
        self.bytes = bytes
        self.path = path
        self.format = format
        self.legacy = legacy
    }

    deinit {
        // Break every link first, so that releasing the containers never recurses.
        for container in arena {
            container.items.removeAll()
            container.keys.removeAll()
        }
    }

    private func corrupt(_ detail: String, at offset: Int) -> WeightImportError {
        .corrupt(path: path, format: format, detail: "pickle at byte \(offset): \(detail)")
    }

    private func newContainer() -> PickleContainer {
        let container = PickleContainer()
        arena.append(container)
        return container
    }

    /// Reads one pickle starting at `position`, up to and including its STOP opcode.
    /// - Returns: the value and the offset just after STOP.
    func load(at start: Int) throws(WeightImportError) -> (value: PickleValue, end: Int) {
        var cursor = ByteCursor(bytes, at: start)
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        func truncated() -> WeightImportError {
            .truncated(path: path, format: format, detail: "the pickle ends at byte \(bytes.count) without its STOP opcode")
        }
        func pop(_ at: Int) throws(WeightImportError) -> PickleValue {
            if let floor = marks.last, stack.count <= floor { throw corrupt("an opcode takes a value across a MARK", at: at) }
            guard let value = stack.popLast() else { throw corrupt("an opcode needs a value but the stack is empty", at: at) }
            return value
        }
        func popMark(_ at: Int) throws(WeightImportError) -> [PickleValue] {
            guard let mark = marks.popLast() else { throw corrupt("no MARK to close", at: at) }
            let items = Array(stack[mark...])
            stack.removeSubrange(mark...)
            return items
        }
        func put(_ index: Int, _ at: Int) throws(WeightImportError) {
            if index > Unpickler.maximumMemoIndex {
                throw .limitExceeded(path: path, format: format, detail: "memo index \(index) at byte \(at) exceeds \(Unpickler.maximumMemoIndex)")
            }
            guard let top = stack.last, marks.last.map({ stack.count > $0 }) ?? true else {
                throw corrupt("PUT with nothing to store", at: at)
            }
            memo[index] = top
        }
        func get(_ index: Int, _ at: Int) throws(WeightImportError) {
            guard let value = memo[index] else { throw corrupt("GET of memo index \(index), which was never stored", at: at) }
            stack.append(value)
        }
        func string(_ count: Int, _ at: Int) throws(WeightImportError) -> String {
            guard let raw = try? cursor.take(count) else { throw truncated() }
            guard let text = String(validating: raw, as: UTF8.self) else { throw corrupt("a string that is not UTF-8", at: at) }
            return text
        }
        func line(_ at: Int) throws(WeightImportError) -> String {
            var text: [UInt8] = []
            while true {
                guard let byte = try? cursor.u8() else { throw truncated() }
                if byte == 0x0A { break }
                text.append(byte)
                if text.count > 512 { throw corrupt("a GLOBAL name longer than 512 bytes", at: at) }
            }
            guard let decoded = String(validating: text, as: UTF8.self) else { throw corrupt("a GLOBAL name that is not UTF-8", at: at) }
            return decoded
        }
        func resolve(_ module: String, _ name: String) throws(WeightImportError) -> PickleValue {
            guard let global = AllowedGlobal.resolve(module: module, name: name) else {
                throw .forbiddenGlobal(path: path, global: "\(module).\(name)")
            }
            return .global(global)
        }

        func readU8() throws(WeightImportError) -> UInt8 { do { return try cursor.u8() } catch { throw truncated() } }
        func readU16() throws(WeightImportError) -> UInt16 { do { return try cursor.u16() } catch { throw truncated() } }
        func readU32() throws(WeightImportError) -> UInt32 { do { return try cursor.u32() } catch { throw truncated() } }
        func readU64() throws(WeightImportError) -> UInt64 { do { return try cursor.u64() } catch { throw truncated() } }
        func readBytes(_ count: Int) throws(WeightImportError) -> UnsafeRawBufferPointer {
            do { return try cursor.take(count) } catch { throw truncated() }
        }

        while true {
            let at = cursor.position
            guard let opcode = try? cursor.u8() else { throw truncated() }
            switch opcode {
            case 0x80:  // PROTO
                let version = try readU8()
                if version > 5 { throw .unsupported(path: path, format: format, detail: "pickle protocol \(version)") }
            case 0x95:  // FRAME: a length hint only
                _ = try readU64()
            case 0x2E:  // STOP
                guard marks.isEmpty, stack.count == 1 else { throw corrupt("STOP with \(stack.count) values and \(marks.count) open MARKs", at: at) }
                return (stack[0], cursor.position)
            case 0x28:  // MARK
                if marks.count >= Unpickler.maximumMarkDepth {
                    throw .limitExceeded(path: path, format: format, detail: "the pickle nests more than \(Unpickler.maximumMarkDepth) levels at byte \(at)")
                }
                marks.append(stack.count)
            case 0x7D: stack.append(.dict(newContainer()))  // EMPTY_DICT
            case 0x5D: stack.append(.list(newContainer()))  // EMPTY_LIST
            case 0x29: stack.append(.tuple(newContainer()))  // EMPTY_TUPLE
            case 0x74, 0x6C:  // TUPLE, LIST
                let container = newContainer()
                container.items = try popMark(at)
                stack.append(opcode == 0x74 ? .tuple(container) : .list(container))
            case 0x64:  // DICT
                let items = try popMark(at)
                if items.count % 2 != 0 { throw corrupt("DICT with an odd number of values", at: at) }
                let container = newContainer()
                for i in stride(from: 0, to: items.count, by: 2) { container.setItem(items[i], items[i + 1]) }
                stack.append(.dict(container))
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                var items: [PickleValue] = []
                for _ in 0..<Int(opcode - 0x84) { items.insert(try pop(at), at: 0) }
                let container = newContainer()
                container.items = items
                stack.append(.tuple(container))
            case 0x71: try put(Int(try readU8()), at)  // BINPUT
            case 0x72: try put(Int(try readU32()), at)  // LONG_BINPUT
            case 0x94: try put(memo.count, at)  // MEMOIZE
            case 0x68: try get(Int(try readU8()), at)  // BINGET
            case 0x6A: try get(Int(try readU32()), at)  // LONG_BINGET
            case 0x4A: stack.append(.int(Int(Int32(bitPattern: try readU32()))))  // BININT
            case 0x4B: stack.append(.int(Int(try readU8())))  // BININT1
            case 0x4D: stack.append(.int(Int(try readU16())))  // BININT2
            case 0x8A, 0x8B:  // LONG1, LONG4
                let count = opcode == 0x8A ? Int(try readU8()) : Int(try readU32())
                let raw = Array(try readBytes(count))
                if raw.isEmpty {
                    stack.append(.int(0))
                } else if raw.count <= 8 {
                    var value: UInt64 = raw.last! >= 0x80 ? .max : 0  // sign extension
                    for (i, byte) in raw.enumerated() {
                        value &= ~(0xFF << (8 * UInt64(i)))
                        value |= UInt64(byte) << (8 * UInt64(i))
                    }
                    stack.append(.int(Int(Int64(bitPattern: value))))
                } else {
                    stack.append(.bigInt(raw))
                }
            case 0x47:  // BINFLOAT: big-endian
                stack.append(.float(Double(bitPattern: UInt64(bigEndian: UInt64(littleEndian: try readU64())))))
            case 0x58: stack.append(.string(try string(Int(try readU32()), at)))  // BINUNICODE
            case 0x8C: stack.append(.string(try string(Int(try readU8()), at)))  // SHORT_BINUNICODE
            case 0x8D:  // BINUNICODE8
                guard let count = intFromFile(try readU64()) else { throw truncated() }
                stack.append(.string(try string(count, at)))
            case 0x55, 0x54:  // SHORT_BINSTRING, BINSTRING (Python 2 str): Latin-1
                let count = opcode == 0x55 ? Int(try readU8()) : Int(Int32(bitPattern: try readU32()))
                if count < 0 { throw corrupt("BINSTRING with a negative length", at: at) }
                let raw = try readBytes(count)
                stack.append(.string(String(raw.map { Character(Unicode.Scalar($0)) })))
            case 0x43, 0x42, 0x8E:  // SHORT_BINBYTES, BINBYTES, BINBYTES8
                let length = opcode == 0x43 ? Int(try readU8()) : opcode == 0x42 ? Int(try readU32()) : (intFromFile(try readU64()) ?? Int.max)
                _ = try readBytes(length)
                stack.append(.bytes(length))
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x30: _ = try pop(at)  // POP
            case 0x31: _ = try popMark(at)  // POP_MARK
            case 0x32:  // DUP
                let top = try pop(at)
                stack.append(top)
                stack.append(top)
            case 0x73:  // SETITEM
                let value = try pop(at), key = try pop(at)
                guard case .dict(let dict) = try pop(at) else { throw corrupt("SETITEM on something that is not a dict", at: at) }
                dict.setItem(key, value)
                stack.append(.dict(dict))
            case 0x75:  // SETITEMS
                let items = try popMark(at)
                if items.count % 2 != 0 { throw corrupt("SETITEMS with an odd number of values", at: at) }
                guard case .dict(let dict) = try pop(at) else { throw corrupt("SETITEMS on something that is not a dict", at: at) }
                for i in stride(from: 0, to: items.count, by: 2) { dict.setItem(items[i], items[i + 1]) }
                stack.append(.dict(dict))
            case 0x61:  // APPEND
                let value = try pop(at)
                guard case .list(let list) = try pop(at) else { throw corrupt("APPEND to something that is not a list", at: at) }
                list.items.append(value)
                stack.append(.list(list))
            case 0x65:  // APPENDS
                let items = try popMark(at)
                guard case .list(let list) = try pop(at) else { throw corrupt("APPENDS to something that is not a list", at: at) }
                list.items += items
                stack.append(.list(list))
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(at)
                stack.append(try resolve(module, try line(at)))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(at), module = try pop(at)
                guard case .string(let m) = module, case .string(let n) = name else {
                    throw corrupt("STACK_GLOBAL without two strings", at: at)
                }
                stack.append(try resolve(m, n))
            case 0x52:  // REDUCE
                let arguments = try pop(at), callable = try pop(at)
                stack.append(try reduce(callable, arguments, at))
            case 0x62:  // BUILD: keep the object, drop the state (__setstate__ is never run)
                _ = try pop(at)
                let object = try pop(at)
                stack.append(object)
            case 0x51:  // BINPERSID
                stack.append(try persistentLoad(try pop(at), at))
            default:
                throw .unsupported(path: path, format: format, detail: "pickle opcode 0x\(String(opcode, radix: 16)) at byte \(at), which a PyTorch state dict does not use")
            }
        }
    }

    private func intTuple(_ value: PickleValue, _ what: String, _ at: Int) throws(WeightImportError) -> [Int] {
        guard case .tuple(let tuple) = value else { throw corrupt("\(what) is a \(value.typeName), not a tuple", at: at) }
        if tuple.items.count > 64 { throw .limitExceeded(path: path, format: format, detail: "a tensor with \(tuple.items.count) dimensions") }
        var result: [Int] = []
        for item in tuple.items {
            guard case .int(let n) = item else { throw corrupt("\(what) holds a \(item.typeName), not an int", at: at) }
            result.append(n)
        }
        return result
    }

    /// The allowed "calls": inert descriptions, never code.
    private func reduce(_ callable: PickleValue, _ arguments: PickleValue, _ at: Int) throws(WeightImportError) -> PickleValue {
        guard case .global(let global) = callable else { throw corrupt("REDUCE of a \(callable.typeName), which cannot be called", at: at) }
        guard case .tuple(let argumentTuple) = arguments else { throw corrupt("REDUCE arguments are not a tuple", at: at) }
        let args = argumentTuple.items
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw .unsupported(path: path, format: format, detail: "OrderedDict built from arguments at byte \(at)") }
            return .dict(newContainer())
        case .rebuildTensorV2, .rebuildTensor:
            guard args.count >= 4, case .storage(let storage) = args[0], case .int(let offset) = args[1] else {
                throw corrupt("_rebuild_tensor without (storage, offset, size, stride)", at: at)
            }
            let size = try intTuple(args[2], "a tensor size", at)
            let stride = try intTuple(args[3], "a tensor stride", at)
            return .tensor(PickledTensor(storage: storage, offset: offset, size: size, stride: stride))
        case .rebuildParameter:
            guard let first = args.first, case .tensor = first else { throw corrupt("_rebuild_parameter without a tensor", at: at) }
            return first
        case .storageType:
            throw corrupt("a storage class is called directly", at: at)
        }
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`.
    private func persistentLoad(_ pid: PickleValue, _ at: Int) throws(WeightImportError) -> PickleValue {
        guard case .tuple(let tuple) = pid, tuple.items.count == (legacy ? 6 : 5),
              case .string("storage") = tuple.items[0] else {
            throw corrupt("a persistent id that is not a ('storage', ...) tuple of \(legacy ? 6 : 5) fields", at: at)
        }
        let items = tuple.items
        guard case .global(.storageType(let type)) = items[1] else { throw corrupt("a persistent id without a storage type", at: at) }
        let key: String
        switch items[2] {
        case .string(let s): key = s
        case .int(let n): key = String(n)
        default: throw corrupt("a storage key that is a \(items[2].typeName)", at: at)
        }
        guard case .int(let count) = items[4], count >= 0 else { throw corrupt("a storage element count that is not a count", at: at) }
        if let known = storageTypes.updateValue(type, forKey: key), known != type {
            throw corrupt("storage \"\(key)\" is named with two element types", at: at)
        }
        var storage = PickledStorage(type: type, key: key, elementCount: count)
        if legacy, case .tuple(let view) = items[5] {
            // (view_key, offset, view_size): a view into the root storage `key`.
            guard view.items.count == 3, case .int(let offset) = view.items[1], case .int(let viewSize) = view.items[2],
                  offset >= 0, viewSize >= 0, let end = checkedAdd(offset, viewSize), end <= count else {
                throw corrupt("storage view metadata that does not fit its storage", at: at)
            }
            storage.baseOffset = offset
            storage.elementCount = viewSize
        }
        return .storage(storage)
    }
}

/// Finds the tensors in an unpickled checkpoint.
///
/// The rule, in order:
/// 1. If the top level is a dict with a key `state_dict`, `model_state_dict`, `model` or
///    `module` (first found in that order) whose value is a dict holding tensors, only
///    that dict is read (training checkpoints keep optimizer state and counters beside it).
/// 2. Otherwise every tensor reachable through dicts, lists and tuples is taken, named by
///    its path of keys and indices joined with dots (`encoder.w`, `decoder.0`); values
///    that are not tensors (epoch numbers, strings) are skipped.
/// Names keep the file's order. Nesting deeper than 64 levels or more than 10 million
/// visited values (a cyclic or exponentially shared structure) is refused.
struct TensorCollector {
    let path: String
    let format: WeightFileFormat
    private(set) var found: [(name: String, tensor: PickledTensor)] = []
    private var visits = 0

    init(path: String, format: WeightFileFormat) {
        self.path = path
        self.format = format
    }

    static let preferredKeys = ["state_dict", "model_state_dict", "model", "module"]

    mutating func collect(_ root: PickleValue) throws(WeightImportError) {
        if case .dict(let dict) = root {
            for key in TensorCollector.preferredKeys {
                if let at = dict.stringIndex[key], case .dict(let inner) = dict.items[at] {
                    var probe = TensorCollector(path: path, format: format)
                    try probe.walk(.dict(inner), prefix: "", depth: 0)
                    if !probe.found.isEmpty {
                        found = probe.found
                        return
                    }
                }
            }
        }
        try walk(root, prefix: "", depth: 0)
    }

    private mutating func walk(_ value: PickleValue, prefix: String, depth: Int) throws(WeightImportError) {
        visits += 1
        if visits > 10_000_000 {
            throw .limitExceeded(path: path, format: format, detail: "more than 10 million values in the checkpoint's structure")
        }
        if depth > 64 {
            throw .limitExceeded(path: path, format: format, detail: "the checkpoint nests more than 64 levels (or refers to itself)")
        }
        func join(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }
        switch value {
        case .tensor(let tensor):
            found.append((prefix, tensor))
        case .dict(let dict):
            for (key, item) in zip(dict.keys, dict.items) {
                let name: String
                switch key {
                case .string(let s): name = s
                case .int(let n): name = String(n)
                default: continue
                }
                try walk(item, prefix: join(name), depth: depth + 1)
            }
        case .list(let list), .tuple(let list):
            for (index, item) in list.items.enumerated() { try walk(item, prefix: join(String(index)), depth: depth + 1) }
        default:
            break
        }
    }
}

/// A JSON value: the model file's free-form metadata and the safetensors header.
///
/// Numbers are Double, as in JavaScript; integers are exact up to 2^53.
/// Example: `["classes": .array([.string("ok"), .string("scratch")]), "threshold": .number(0.42)]`.
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The string, if this is a string.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The number, if this is a number.
    public var numberValue: Double? { if case .number(let n) = self { return n } else { return nil } }
    /// The integer, if this is a number with an exact integer value within ±2^53.
    public var intValue: Int? {
        guard case .number(let n) = self, n.rounded() == n, abs(n) <= 9_007_199_254_740_992 else { return nil }
        return Int(n)
    }
    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// The members, if this is an object.
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }

    /// Compact JSON text with object keys sorted, so equal values give equal bytes.
    public var description: String {
        var out = ""
        JSONValue.write(self, to: &out)
        return out
    }

    /// Parses JSON text (the same strict parser that reads model files); nil when the text
    /// is not one valid JSON value.
    ///
    /// - Parameter text: e.g. the output of `JSONEncoder`, to store a `Codable` value as metadata.
    public init?(parsing text: String) {
        var bytes = Array(text.utf8)
        guard let value = bytes.withUnsafeMutableBytes({ raw in try? JSONParser.parse(UnsafeRawBufferPointer(raw)).value }) else {
            return nil
        }
        self = value
    }

    static func write(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if !n.isFinite { out += "null" }  // JSON has no NaN or infinity; the writer refuses them first
            else if n.rounded() == n && abs(n) < 1e15 { out += String(Int64(n)) }
            else { out += "\(n)" }
        case .string(let s): writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                writeString(key, to: &out)
                out += ":"
                write(members[key]!, to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Whether every number inside is finite (JSON cannot carry NaN or infinity).
    var isRepresentable: Bool {
        switch self {
        case .number(let n): return n.isFinite
        case .array(let items): return items.allSatisfy(\.isRepresentable)
        case .object(let members): return members.values.allSatisfy(\.isRepresentable)
        default: return true
        }
    }
}

/// Why JSON text could not be parsed: a short reason and the byte offset.
struct JSONParseError: Error {
    var reason: String
    var offset: Int
}

/// A strict JSON parser (RFC 8259) over bytes that may come from a hostile file.
///
/// Bounded: nesting deeper than `maxDepth` is refused, so a file of ten thousand `[`
/// cannot exhaust the stack; every loop advances through the input, so parsing time is
/// linear in its length. Duplicate object keys are refused, since a reader that kept the
/// first and one that kept the last would disagree about the same file.
struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private let maxDepth: Int
    /// The keys of the outermost object in file order (safetensors keeps tensors in it).
    private(set) var topLevelKeys: [String] = []

    /// Parses a whole document; trailing white space is allowed, anything else is not.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONParseError) -> (value: JSONValue, topLevelKeys: [String]) {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipSpace()
        let value = try parser.parseValue(depth: 0)
        parser.skipSpace()
        if parser.position != bytes.count { throw JSONParseError(reason: "unexpected text after the JSON value", offset: parser.position) }
        return (value, parser.topLevelKeys)
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipSpace() {
        while let c = current, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { position += 1 }
    }

    private func fail(_ reason: String) -> JSONParseError { JSONParseError(reason: reason, offset: position) }

    private mutating func expect(_ literal: String, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        for byte in literal.utf8 {
            guard current == byte else { throw fail("invalid literal") }
            position += 1
        }
        return value
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let c = current else { throw fail("the JSON ends early") }
        switch c {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character")
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw fail("nested deeper than \(maxDepth) levels") }
        position += 1
        var members: [String: JSONValue] = [:]
        var order: [String] = []
        skipSpace()
        if current == UInt8(ascii: "}") { position += 1; return .object(members) }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a key in quotes") }
            let key = try parseString()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after a key") }
            position += 1
            skipSpace()
            let value = try parseValue(depth: depth)
            if members.updateValue(value, forKey: key) != nil { throw fail("the key \"\(key)\" appears twice") }
            if depth == 1 { order.append(key) }
            skipSpace()
            guard let c = current else { throw fail("the JSON ends inside an object") }
            position += 1
            if c == UInt8(ascii: "}") { break }
            if c != UInt8(ascii: ",") { throw fail("expected ',' or '}' in an object") }
        }
        if depth == 1 { topLevelKeys = order }
        return .object(members)
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        if depth > maxDepth { throw fail("nested deeper than \(maxDepth) levels") }
        position += 1
        var items: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue(depth: depth))
            skipSpace()
            guard let c = current else { throw fail("the JSON ends inside an array") }
            position += 1
            if c == UInt8(ascii: "]") { break }
            if c != UInt8(ascii: ",") { throw fail("expected ',' or ']' in an array") }
        }
        return .array(items)
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let c = current else { throw fail("the JSON ends inside a \\u escape") }
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid \\u escape")
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // the opening quote
        var utf8: [UInt8] = []
        while true {
            guard let c = current else { throw fail("the JSON ends inside a string") }
            position += 1
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw fail("a control character inside a string") }
            if c != UInt8(ascii: "\\") { utf8.append(c); continue }
            guard let e = current else { throw fail("the JSON ends inside a string") }
            position += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard current == UInt8(ascii: "\\") else { throw fail("a lone surrogate in a \\u escape") }
                    position += 1
                    guard current == UInt8(ascii: "u") else { throw fail("a lone surrogate in a \\u escape") }
                    position += 1
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("a lone surrogate in a \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("a lone surrogate in a \\u escape") }
                utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw fail("invalid escape in a string")
            }
        }
        guard let string = String(validating: utf8, as: UTF8.self) else { throw fail("a string that is not valid UTF-8") }
        return string
    }

    private mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        func isDigit(_ c: UInt8?) -> Bool { c.map { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false }
        guard isDigit(current) else { throw fail("invalid number") }
        if current == UInt8(ascii: "0") { position += 1 } else { while isDigit(current) { position += 1 } }
        if current == UInt8(ascii: ".") {
            position += 1
            guard isDigit(current) else { throw fail("invalid number") }
            while isDigit(current) { position += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard isDigit(current) else { throw fail("invalid number") }
            while isDigit(current) { position += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw fail("number out of range") }
        return value
    }
}

import Foundation

/// A streaming JSON encoder for list elements, several times faster than `JSONEncoder`
/// because it writes bytes as the value encodes itself instead of building a tree first.
///
/// It covers what chat messages and similar records are made of: structs (keyed containers),
/// arrays, optionals, strings, booleans, integers, finite floating-point numbers, `Date`
/// (as `JSONEncoder` writes it by default) and `Data` (base64). Anything else — nested
/// containers requested up front, super encoders, `URL`, `Decimal`, non-finite numbers — makes
/// ``encode(_:)`` return `nil`, and the caller encodes the value with `JSONEncoder` instead.
/// Its output is read by `JSONDecoder` with the default strategies. Keys are written in the
/// order the value encodes them (not sorted), which is fine for list elements: the codec
/// compares them by value, not by bytes.
package struct FastJSONEncoder {
    package init() {}

    /// The JSON of `value`, or `nil` when the value uses something this encoder does not cover.
    package func encode<T: Encodable>(_ value: T) -> Data? {
        let writer = JSONByteWriter()
        guard writer.write(value), !writer.unsupported else { return nil }
        return Data(writer.bytes)
    }
}

/// Where the bytes go, and whether the value used anything unsupported.
final class JSONByteWriter {
    var bytes: [UInt8] = []
    var unsupported = false
    /// How deep values nest; a type that encodes itself as itself would recurse forever.
    private var depth = 0

    init() { bytes.reserveCapacity(512) }

    /// Writes one value: a special-cased type, or whatever the value's `encode(to:)` writes
    /// through exactly one container. Returns `false` when unsupported.
    func write<T: Encodable>(_ value: T) -> Bool {
        // Type identity checks are cheap; dynamic casts (`as?`) are not.
        if T.self == String.self {
            writeString(unsafeBitCast(value, to: String.self))
            return true
        }
        if T.self == Data.self {
            writeString(unsafeBitCast(value, to: Data.self).base64EncodedString())
            return true
        }
        if T.self == URL.self || T.self == Decimal.self {
            unsupported = true
            return false
        }
        guard depth < 64 else {
            unsupported = true
            return false
        }
        depth += 1
        defer { depth -= 1 }
        let frame = JSONFrame(writer: self)
        do {
            try value.encode(to: JSONStreamEncoder(frame: frame))
        } catch {
            unsupported = true
            return false
        }
        switch frame.opened {
        case .object: bytes.append(UInt8(ascii: "}"))
        case .array: bytes.append(UInt8(ascii: "]"))
        case .value: break
        case .none, .several:
            unsupported = true
            return false
        }
        return !unsupported
    }

    func writeString(_ text: String) {
        // Most text needs no escaping: append it in one go (each append to a stored property
        // pays an exclusivity check, so per-byte appends would cost more than the copy).
        guard Self.needsEscaping(text) else {
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: text.utf8)
            bytes.append(UInt8(ascii: "\""))
            return
        }
        var escaped: [UInt8] = [UInt8(ascii: "\"")]
        escaped.reserveCapacity(text.utf8.count + 8)
        let hex = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                escaped.append(UInt8(ascii: "\\"))
                escaped.append(byte)
            case 0..<0x20:
                escaped.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                escaped.append(hex[Int(byte >> 4)])
                escaped.append(hex[Int(byte & 0xf)])
            default: escaped.append(byte)
            }
        }
        escaped.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: escaped)
    }

    /// Whether `text` holds a byte JSON must escape (a control character, `"` or `\\`).
    static func needsEscaping(_ text: String) -> Bool {
        let found = text.utf8.withContiguousStorageIfAvailable { firstByteToEscape($0, from: 0) < $0.count }
        return found ?? text.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }

    func writeNumber<N: BinaryInteger>(_ number: N) {
        bytes.append(contentsOf: String(number).utf8)
    }

    func writeNumber<F: BinaryFloatingPoint & LosslessStringConvertible>(_ number: F) {
        guard number.isFinite else {
            unsupported = true
            bytes.append(UInt8(ascii: "0"))
            return
        }
        bytes.append(contentsOf: number.description.utf8)
    }

    func writeLiteral(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
}

/// One value being encoded: which container it opened.
final class JSONFrame {
    enum Opened { case none, object, array, value, several }
    let writer: JSONByteWriter
    var opened = Opened.none
    var isFirst = true

    init(writer: JSONByteWriter) { self.writer = writer }

    func open(_ kind: Opened) {
        guard opened == .none else {
            opened = .several
            writer.unsupported = true
            return
        }
        opened = kind
        switch kind {
        case .object: writer.bytes.append(UInt8(ascii: "{"))
        case .array: writer.bytes.append(UInt8(ascii: "["))
        default: break
        }
    }

    func separator() {
        if isFirst { isFirst = false } else { writer.bytes.append(UInt8(ascii: ",")) }
    }
}

struct JSONStreamEncoder: Encoder {
    let frame: JSONFrame
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        frame.open(.object)
        return KeyedEncodingContainer(JSONStreamKeyedContainer<Key>(frame: frame))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        frame.open(.array)
        return JSONStreamUnkeyedContainer(frame: frame)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        frame.open(.value)
        return JSONStreamSingleValueContainer(frame: frame)
    }
}

/// Writes one value of a container (after its key or separator).
private func writeValue<T: Encodable>(_ value: T, in frame: JSONFrame) throws {
    let writer = frame.writer
    // Type identity checks are cheap; dynamic casts (`as?`) are not.
    if T.self == String.self {
        writer.writeString(unsafeBitCast(value, to: String.self))
    } else if T.self == Int.self {
        writer.writeNumber(unsafeBitCast(value, to: Int.self))
    } else if T.self == Bool.self {
        writer.writeLiteral(unsafeBitCast(value, to: Bool.self) ? "true" : "false")
    } else if T.self == Double.self {
        writer.writeNumber(unsafeBitCast(value, to: Double.self))
    } else if let number = integer(value) {
        writer.bytes.append(contentsOf: number.utf8)
    } else if T.self == Float.self {
        writer.writeNumber(unsafeBitCast(value, to: Float.self))
    } else {
        guard writer.write(value) else { throw CancellationError() }
    }
}

/// The decimal text of a fixed-width integer other than `Int`, or `nil`.
private func integer<T>(_ value: T) -> String? {
    switch T.self {
    case is Int8.Type: String(unsafeBitCast(value, to: Int8.self))
    case is Int16.Type: String(unsafeBitCast(value, to: Int16.self))
    case is Int32.Type: String(unsafeBitCast(value, to: Int32.self))
    case is Int64.Type: String(unsafeBitCast(value, to: Int64.self))
    case is UInt.Type: String(unsafeBitCast(value, to: UInt.self))
    case is UInt8.Type: String(unsafeBitCast(value, to: UInt8.self))
    case is UInt16.Type: String(unsafeBitCast(value, to: UInt16.self))
    case is UInt32.Type: String(unsafeBitCast(value, to: UInt32.self))
    case is UInt64.Type: String(unsafeBitCast(value, to: UInt64.self))
    default: nil
    }
}

struct JSONStreamKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let frame: JSONFrame
    var codingPath: [any CodingKey] { [] }

    private func key(_ key: Key) {
        frame.separator()
        frame.writer.writeString(key.stringValue)
        frame.writer.bytes.append(UInt8(ascii: ":"))
    }

    mutating func encodeNil(forKey key: Key) throws {
        self.key(key)
        frame.writer.writeLiteral("null")
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        self.key(key)
        try writeValue(value, in: frame)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        frame.writer.unsupported = true
        return KeyedEncodingContainer(DiscardingKeyedContainer<NestedKey>())
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        frame.writer.unsupported = true
        return DiscardingUnkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        frame.writer.unsupported = true
        return DiscardingEncoder()
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        frame.writer.unsupported = true
        return DiscardingEncoder()
    }
}

struct JSONStreamUnkeyedContainer: UnkeyedEncodingContainer {
    let frame: JSONFrame
    var codingPath: [any CodingKey] { [] }
    private(set) var count = 0

    init(frame: JSONFrame) { self.frame = frame }

    mutating func encodeNil() throws {
        frame.separator()
        frame.writer.writeLiteral("null")
        count += 1
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        frame.separator()
        try writeValue(value, in: frame)
        count += 1
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        frame.writer.unsupported = true
        return KeyedEncodingContainer(DiscardingKeyedContainer<NestedKey>())
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        frame.writer.unsupported = true
        return DiscardingUnkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        frame.writer.unsupported = true
        return DiscardingEncoder()
    }
}

struct JSONStreamSingleValueContainer: SingleValueEncodingContainer {
    let frame: JSONFrame
    var codingPath: [any CodingKey] { [] }
    private var written = false

    init(frame: JSONFrame) { self.frame = frame }

    mutating func encodeNil() throws {
        try once()
        frame.writer.writeLiteral("null")
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try once()
        try writeValue(value, in: frame)
    }

    private mutating func once() throws {
        guard !written else {
            frame.writer.unsupported = true
            throw CancellationError()
        }
        written = true
    }
}

/// The index of the first byte at or after `start` that JSON must escape in a string (a control
/// character, `"` or `\\`), or `buffer.count` when there is none; looked for eight bytes at a time.
func firstByteToEscape(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
    guard let base = buffer.baseAddress else { return buffer.count }
    let raw = UnsafeRawPointer(base)
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    var offset = start
    while offset + 8 <= buffer.count {
        let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        // A byte below 0x20, or a zero byte after xor with `"` or `\\` (exact tests).
        let control = (word &- ones &* 0x20) & ~word & highs
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let quotes = (quote &- ones) & ~quote & highs
        let backslashes = (backslash &- ones) & ~backslash & highs
        if control | quotes | backslashes != 0 { break }
        offset += 8
    }
    while offset < buffer.count {
        let byte = buffer[offset]
        if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return offset }
        offset += 1
    }
    return buffer.count
}

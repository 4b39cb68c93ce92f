import Foundation

/// A JSON decoder for the common shapes of stored state, several times faster than
/// `JSONDecoder` for small values (a chat message, a number), whose fixed cost per call is
/// what a read after a save mostly pays.
///
/// It covers objects (keyed containers, in any key order, unknown keys ignored), arrays,
/// `null`, booleans, strings, integers and `Double`, and `Date` and `Data` as `JSONDecoder`
/// reads them by default (seconds since 2001, base64). It never gives another value than
/// `JSONDecoder` would: anything it does not cover, or any doubt (a number with a fraction
/// read as an integer, a `Float`, `URL` or `Decimal`, a super decoder, duplicate or escaped
/// keys, invalid UTF-8, a type whose decoding throws), makes ``decode(_:from:)`` return `nil`,
/// and the caller decodes with `JSONDecoder`, which then also gives the real error.
///
/// Public only as SPI, for the benchmarks that measure it (`@_spi(Benchmarks) import Checkpointing`).
@_spi(Benchmarks) public struct FastJSONDecoder {
    /// Creates a decoder.
    public init() {}

    /// The value `JSONDecoder` (default strategies, no `userInfo`) decodes from `data`, or
    /// `nil` when this decoder cannot tell it.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) -> T? {
        guard let input = FastJSONInput(data) else { return nil }
        var scanner = JSONScanner(input.bytes)
        guard let value = scanner.skipValue(), scanner.atEndAfterWhitespace() else { return nil }
        guard let decoded = try? input.decode(T.self, at: value, parent: nil, key: nil), !input.gaveUp else { return nil }
        return decoded
    }
}

/// Why the fast decoder gave up: the caller decodes with `JSONDecoder` instead.
struct FastJSONUnsupported: Error {}

/// The bytes being decoded, copied once and owned here, so that a container a user's
/// `init(from:)` keeps can never outlive them.
final class FastJSONInput {
    let bytes: UnsafeBufferPointer<UInt8>
    /// Whether the decoder gave up anywhere, even where the type's own `init(from:)` caught the
    /// error and went on (`try?`): `JSONDecoder` might have succeeded there, so the value that
    /// came out is not trusted.
    private(set) var gaveUp = false

    func giveUp() -> FastJSONUnsupported {
        gaveUp = true
        return FastJSONUnsupported()
    }

    init?(_ data: Data) {
        guard !data.isEmpty else { return nil }
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: data.count)
        _ = buffer.initialize(from: data)
        bytes = UnsafeBufferPointer(buffer)
    }

    deinit {
        bytes.deallocate()
    }

    func decode<T: Decodable>(_ type: T.Type, at range: Range<Int>, parent: FastJSONDecoderImpl?, key: (any CodingKey)?)
        throws -> T
    {
        // Type identity checks are cheap; what `JSONDecoder` special-cases is handled here too.
        if T.self == String.self { return unsafeBitCast(try string(at: range), to: T.self) }
        if T.self == Int.self { return unsafeBitCast(try integer(Int.self, at: range), to: T.self) }
        if T.self == Bool.self { return unsafeBitCast(try bool(at: range), to: T.self) }
        if T.self == Double.self { return unsafeBitCast(try double(at: range), to: T.self) }
        if T.self == Data.self {
            guard let data = Data(base64Encoded: try string(at: range)) else { throw giveUp() }
            return unsafeBitCast(data, to: T.self)
        }
        if T.self == Float.self || T.self == URL.self || T.self == Decimal.self { throw giveUp() }
        return try T(from: FastJSONDecoderImpl(input: self, range: range, parent: parent, key: key))
    }

    func isNull(_ range: Range<Int>) -> Bool {
        range.count == 4 && bytes[range.lowerBound] == UInt8(ascii: "n")
    }

    func bool(at range: Range<Int>) throws -> Bool {
        switch bytes[range.lowerBound] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw giveUp()
        }
    }

    /// An integer written without fraction or exponent, that fits `T`.
    func integer<T: FixedWidthInteger>(_ type: T.Type, at range: Range<Int>) throws -> T {
        var index = range.lowerBound
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        guard index < range.upperBound else { throw giveUp() }
        var magnitude: UInt64 = 0
        while index < range.upperBound {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { throw giveUp() }
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { throw giveUp() }
            magnitude = sum
            index += 1
        }
        if negative {
            guard T.isSigned, magnitude <= UInt64(Int64.max) + 1 else { throw giveUp() }
            let value = magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
            guard let exact = T(exactly: value) else { throw giveUp() }
            return exact
        }
        guard let exact = T(exactly: magnitude) else { throw giveUp() }
        return exact
    }

    /// A finite number (the scanner checked its grammar), correctly rounded.
    func double(at range: Range<Int>) throws -> Double {
        guard bytes[range.lowerBound] != UInt8(ascii: "\""), bytes[range.lowerBound] != UInt8(ascii: "n"),
            bytes[range.lowerBound] != UInt8(ascii: "t"), bytes[range.lowerBound] != UInt8(ascii: "f"),
            bytes[range.lowerBound] != UInt8(ascii: "{"), bytes[range.lowerBound] != UInt8(ascii: "[")
        else { throw giveUp() }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw giveUp() }
        // `JSONDecoder` rejects some zeros with an exponent ("0e1", "-0.0e1") and takes others
        // ("0e10", "0e+1"): those are left to it.
        if value == 0, text.utf8.contains(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            throw giveUp()
        }
        return value
    }

    func string(at range: Range<Int>) throws -> String {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { throw giveUp() }
        let content = UnsafeBufferPointer(rebasing: bytes[(range.lowerBound + 1)..<(range.upperBound - 1)])
        guard content.contains(UInt8(ascii: "\\")) else {
            guard let text = String(validating: content, as: UTF8.self) else { throw giveUp() }
            return text
        }
        var unescaped: [UInt8] = []
        unescaped.reserveCapacity(content.count)
        var index = 0
        while index < content.count {
            let byte = content[index]
            index += 1
            guard byte == UInt8(ascii: "\\") else {
                unescaped.append(byte)
                continue
            }
            guard index < content.count else { throw giveUp() }
            let escape = content[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): unescaped.append(escape)
            case UInt8(ascii: "b"): unescaped.append(0x08)
            case UInt8(ascii: "f"): unescaped.append(0x0C)
            case UInt8(ascii: "n"): unescaped.append(0x0A)
            case UInt8(ascii: "r"): unescaped.append(0x0D)
            case UInt8(ascii: "t"): unescaped.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(content, &index)
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low one.
                    guard index + 1 < content.count, content[index] == UInt8(ascii: "\\"),
                        content[index + 1] == UInt8(ascii: "u")
                    else { throw giveUp() }
                    index += 2
                    let low = try hex4(content, &index)
                    guard (0xDC00..<0xE000).contains(low) else { throw giveUp() }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw giveUp()
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw giveUp() }
                unescaped.append(contentsOf: Array(String(Character(unicode)).utf8))
            default:
                throw giveUp()
            }
        }
        guard let text = String(validating: unescaped, as: UTF8.self) else { throw giveUp() }
        return text
    }

    private func hex4(_ content: UnsafeBufferPointer<UInt8>, _ index: inout Int) throws -> UInt32 {
        guard index + 4 <= content.count else { throw giveUp() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = content[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw giveUp()
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// The members of the object at `range`, in order: each key's content bytes and its value.
    func members(at range: Range<Int>) throws -> [(key: Range<Int>, value: Range<Int>)] {
        guard bytes[range.lowerBound] == UInt8(ascii: "{") else { throw giveUp() }
        var scanner = JSONScanner(bytes, at: range.lowerBound + 1)
        var members: [(key: Range<Int>, value: Range<Int>)] = []
        scanner.skipWhitespace()
        if scanner.consume(UInt8(ascii: "}")) { return members }
        repeat {
            scanner.skipWhitespace()
            guard let key = scanner.skipString(), let value = scanner.skipMemberValue() else { throw giveUp() }
            let content = (key.lowerBound + 1)..<(key.upperBound - 1)
            // An escaped key would need unescaping to compare; a repeated one, a rule for which wins.
            let keyBytes = UnsafeBufferPointer(rebasing: bytes[content])
            guard !keyBytes.contains(UInt8(ascii: "\\")) else { throw giveUp() }
            for member in members where member.key.count == content.count {
                if memcmp(bytes.baseAddress! + member.key.lowerBound, bytes.baseAddress! + content.lowerBound, content.count) == 0 {
                    throw giveUp()
                }
            }
            members.append((content, value))
            scanner.skipWhitespace()
        } while scanner.consume(UInt8(ascii: ","))
        guard scanner.consume(UInt8(ascii: "}")) else { throw giveUp() }
        return members
    }

    /// The elements of the array at `range`.
    func elements(at range: Range<Int>) throws -> [Range<Int>] {
        guard bytes[range.lowerBound] == UInt8(ascii: "[") else { throw giveUp() }
        var scanner = JSONScanner(bytes, at: range.lowerBound + 1)
        var elements: [Range<Int>] = []
        scanner.skipWhitespace()
        if scanner.consume(UInt8(ascii: "]")) { return elements }
        repeat {
            guard let element = scanner.skipValue() else { throw giveUp() }
            elements.append(element)
            scanner.skipWhitespace()
        } while scanner.consume(UInt8(ascii: ","))
        guard scanner.consume(UInt8(ascii: "]")) else { throw giveUp() }
        return elements
    }

    func keyString(_ range: Range<Int>) -> String? {
        String(validating: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    func keyMatches(_ range: Range<Int>, _ key: String) -> Bool {
        var key = key
        return key.withUTF8 { utf8 in
            utf8.count == range.count
                && (range.isEmpty || memcmp(utf8.baseAddress!, bytes.baseAddress! + range.lowerBound, range.count) == 0)
        }
    }
}

/// Finds where JSON values begin and end, checking their grammar on the way.
struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    mutating func atEndAfterWhitespace() -> Bool {
        skipWhitespace()
        return index == bytes.count
    }

    /// `: value` after a key.
    mutating func skipMemberValue() -> Range<Int>? {
        skipWhitespace()
        guard consume(UInt8(ascii: ":")) else { return nil }
        return skipValue()
    }

    /// Skips one value (after whitespace) and returns its range.
    mutating func skipValue(depth: Int = 0) -> Range<Int>? {
        skipWhitespace()
        guard index < bytes.count, depth < 64 else { return nil }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "{"):
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return start..<index }
            repeat {
                skipWhitespace()
                guard skipString() != nil, skipMemberValue(depth: depth) != nil else { return nil }
                skipWhitespace()
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "}")) ? start..<index : nil
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if consume(UInt8(ascii: "]")) { return start..<index }
            repeat {
                guard skipValue(depth: depth + 1) != nil else { return nil }
                skipWhitespace()
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "]")) ? start..<index : nil
        case UInt8(ascii: "t"): return skipLiteral("true")
        case UInt8(ascii: "f"): return skipLiteral("false")
        case UInt8(ascii: "n"): return skipLiteral("null")
        default: return skipNumber()
        }
    }

    private mutating func skipMemberValue(depth: Int) -> Range<Int>? {
        skipWhitespace()
        guard consume(UInt8(ascii: ":")) else { return nil }
        return skipValue(depth: depth + 1)
    }

    private mutating func skipLiteral(_ literal: StaticString) -> Range<Int>? {
        let start = index
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count, memcmp(bytes.baseAddress! + index, literal.utf8Start, count) == 0 else {
            return nil
        }
        index += count
        return start..<index
    }

    /// A string with its quotes; raw control characters (which JSON forbids) end the scan.
    mutating func skipString() -> Range<Int>? {
        let start = index
        guard consume(UInt8(ascii: "\"")) else { return nil }
        while index < bytes.count {
            index = firstByteToEscape(bytes, from: index)
            guard index < bytes.count else { return nil }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") { return start..<index }
            if byte == UInt8(ascii: "\\") {
                guard index < bytes.count else { return nil }
                index += 1
            } else if byte < 0x20 {
                return nil
            }
        }
        return nil
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`
    private mutating func skipNumber() -> Range<Int>? {
        let start = index
        _ = consume(UInt8(ascii: "-"))
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            guard skipDigits() else { return nil }
        }
        if consume(UInt8(ascii: ".")) { guard skipDigits() else { return nil } }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            guard skipDigits() else { return nil }
        }
        return start..<index
    }

    private mutating func skipDigits() -> Bool {
        let start = index
        while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
        return index > start
    }
}

/// A coding key for an array element, as `JSONDecoder` names it.
struct FastJSONIndexKey: CodingKey {
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
    let index: Int

    init(index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

/// One value being decoded; its coding path is built only when asked for.
final class FastJSONDecoderImpl: Decoder {
    let input: FastJSONInput
    let range: Range<Int>
    let parent: FastJSONDecoderImpl?
    let key: (any CodingKey)?

    init(input: FastJSONInput, range: Range<Int>, parent: FastJSONDecoderImpl?, key: (any CodingKey)?) {
        self.input = input
        self.range = range
        self.parent = parent
        self.key = key
    }

    var codingPath: [any CodingKey] {
        var path: [any CodingKey] = []
        var node: FastJSONDecoderImpl? = self
        while let current = node {
            if let key = current.key { path.append(key) }
            node = current.parent
        }
        return path.reversed()
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(FastJSONKeyedContainer<Key>(decoder: self, members: try input.members(at: range)))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        FastJSONUnkeyedContainer(decoder: self, elements: try input.elements(at: range))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        FastJSONSingleValueContainer(decoder: self)
    }

    func child(_ range: Range<Int>, key: any CodingKey) -> FastJSONDecoderImpl {
        FastJSONDecoderImpl(input: input, range: range, parent: self, key: key)
    }
}

struct FastJSONKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: FastJSONDecoderImpl
    let members: [(key: Range<Int>, value: Range<Int>)]

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { members.compactMap { decoder.input.keyString($0.key).flatMap(Key.init(stringValue:)) } }

    private func value(_ key: Key) -> Range<Int>? {
        let name = key.stringValue
        for member in members where decoder.input.keyMatches(member.key, name) { return member.value }
        return nil
    }

    private func required(_ key: Key) throws -> Range<Int> {
        guard let range = value(key) else { throw decoder.input.giveUp() }
        return range
    }

    func contains(_ key: Key) -> Bool { value(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { decoder.input.isNull(try required(key)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let range = try required(key)
        return try decoder.input.decode(T.self, at: range, parent: decoder, key: key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let range = value(key), !decoder.input.isNull(range) else { return nil }
        return try decoder.input.decode(T.self, at: range, parent: decoder, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try decoder.child(try required(key), key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try decoder.child(try required(key), key: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { throw decoder.input.giveUp() }
    func superDecoder(forKey key: Key) throws -> any Decoder { throw decoder.input.giveUp() }
}

struct FastJSONUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: FastJSONDecoderImpl
    let elements: [Range<Int>]
    var currentIndex = 0

    init(decoder: FastJSONDecoderImpl, elements: [Range<Int>]) {
        self.decoder = decoder
        self.elements = elements
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private func current() throws -> Range<Int> {
        guard currentIndex < elements.count else { throw decoder.input.giveUp() }
        return elements[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard decoder.input.isNull(try current()) else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let value = try decoder.input.decode(
            T.self, at: try current(), parent: decoder, key: FastJSONIndexKey(index: currentIndex))
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let container = try decoder.child(try current(), key: FastJSONIndexKey(index: currentIndex)).container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try decoder.child(try current(), key: FastJSONIndexKey(index: currentIndex)).unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder { throw decoder.input.giveUp() }
}

struct FastJSONSingleValueContainer: SingleValueDecodingContainer {
    let decoder: FastJSONDecoderImpl

    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.input.isNull(decoder.range) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // The value itself, with the same coding path (a single value container adds no key).
        if T.self == String.self || T.self == Int.self || T.self == Bool.self || T.self == Double.self
            || T.self == Data.self || T.self == Float.self || T.self == URL.self || T.self == Decimal.self
        {
            return try decoder.input.decode(T.self, at: decoder.range, parent: decoder.parent, key: decoder.key)
        }
        return try T(from: decoder)
    }

    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.input.integer(Int8.self, at: decoder.range) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.input.integer(Int16.self, at: decoder.range) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.input.integer(Int32.self, at: decoder.range) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.input.integer(Int64.self, at: decoder.range) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.input.integer(UInt.self, at: decoder.range) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.input.integer(UInt8.self, at: decoder.range) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.input.integer(UInt16.self, at: decoder.range) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.input.integer(UInt32.self, at: decoder.range) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.input.integer(UInt64.self, at: decoder.range) }
}

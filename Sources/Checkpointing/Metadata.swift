import Foundation

/// A small, queryable dictionary stored in plain text beside each checkpoint.
///
/// ``Checkpointer/history(thread:namespace:before:limit:where:)`` filters on it. It is never
/// encrypted: do not put secrets or personal data in metadata.
///
/// Keys and string values are stored with their UTF-8 bytes and filters match them by bytes
/// on every backend: a key or value written with "é" (U+00E9) does not match one written with
/// "e" and U+0301. Being a Swift `Dictionary`, one metadata value holds at most one of two
/// such keys (Swift calls them equal), so normalize keys if your input may spell them both ways.
public typealias Metadata = [String: MetadataValue]

/// One JSON-like metadata value.
public enum MetadataValue: Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    /// A string.
    case string(String)
    /// An integer.
    case int(Int)
    /// A floating-point number. One with no fraction is stored as JSON `1` and reads back as ``int(_:)``.
    case double(Double)
    /// A boolean.
    case bool(Bool)
    /// JSON `null`.
    case null

    /// A string value from a literal.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer value from a literal.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A floating-point value from a literal.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// A boolean value from a literal.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// ``null`` from `nil`.
    public init(nilLiteral: ()) { self = .null }

    /// Decodes any JSON scalar.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    /// Encodes the JSON scalar.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value):
            // A value with no fraction is written as the integer it is: `JSONEncoder` writes
            // 2^60 as 1.152921504606847e+18, which reads back as another integer.
            if let integer = Int(exactly: value) { try container.encode(integer) } else { try container.encode(value) }
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    /// The value as JSON-like text.
    public var description: String {
        switch self {
        case .string(let value): value.debugDescription
        case .int(let value): String(value)
        case .double(let value): String(value)
        case .bool(let value): String(value)
        case .null: "null"
        }
    }
}

extension MetadataValue {
    /// Whether a stored value matches a filter's value, as every backend compares them:
    /// numbers by their exact value (`5` matches `5.0`, never `5.5`), strings by their UTF-8
    /// bytes (as the stores compare them), every other type only itself (`true` is not `1`,
    /// the string `"5"` is not the number `5`).
    package func matchesFilter(_ filter: MetadataValue) -> Bool {
        switch (self, filter) {
        case (.int(let stored), .int(let wanted)): stored == wanted
        case (.double(let stored), .double(let wanted)): stored == wanted
        case (.int(let stored), .double(let wanted)), (.double(let wanted), .int(let stored)):
            Int(exactly: wanted) == stored
        case (.string(let stored), .string(let wanted)): BytewiseString.equal(stored, wanted)
        default: self == filter
        }
    }
}

extension Dictionary where Key == String, Value == MetadataValue {
    /// Whether every entry of `filter` is present here with a matching value; see
    /// ``MetadataValue/matchesFilter(_:)``. Keys match by their UTF-8 bytes, as the stores
    /// compare them: a dictionary holds at most one of two canonically equivalent keys, so
    /// the key it finds is the only candidate.
    package func matches(_ filter: Metadata) -> Bool {
        filter.allSatisfy { key, value in
            guard let index = index(forKey: key), BytewiseString.equal(self[index].key, key) else { return false }
            return self[index].value.matchesFilter(value)
        }
    }

    /// The canonical JSON text of this metadata (keys sorted).
    ///
    /// A number with no fraction that fits an `Int` is written as an integer (`-0.0` as `0`, see
    /// ``MetadataValue/encode(to:)``), so that the text is the same after a store that keeps
    /// numbers by value (PostgreSQL's `jsonb`) gives it back and it is decoded and encoded
    /// again: row checksums cover it.
    package func jsonData() throws(CheckpointError) -> Data {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return try encoder.encode(self)
        } catch {
            throw CheckpointError(.encodingFailed, "metadata could not be encoded as JSON")
        }
    }

    /// Decodes metadata from its JSON text.
    package static func decodeJSON(_ data: Data) throws(CheckpointError) -> Metadata {
        do {
            return try JSONDecoder().decode(Metadata.self, from: data)
        } catch {
            throw CheckpointError(.corruptData, "stored metadata is not valid JSON")
        }
    }
}

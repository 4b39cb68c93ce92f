import Foundation

/// How a thread's `State` type evolved across deploys: the version the code writes now, and
/// the steps that bring a checkpoint of an older version up to it when it is read.
///
/// Every deploy of an agent may change its state type, while paused threads wait for days.
/// Give the façade the versions and old checkpoints keep loading:
///
/// ```swift
/// let versions = StateVersions(current: 3, upgrades: [
///     StateUpgrade(from: 1) { state in             // v2 added `mood` and renamed `name`
///         state.setDefault("neutral", for: "mood")
///         state.rename("name", to: "title")
///     },
///     StateUpgrade(from: 2) { state in             // v3 made `count` an Int
///         if case .string(let text)? = state["count"] { state["count"] = .int(Int(text) ?? 0) }
///     },
/// ])
/// let thread = try checkpointer.thread("user-42", as: AgentState.self, versions: versions)
/// ```
///
/// - A checkpoint saved without versions (or with `current: 1`) is version 1.
/// - Upgrades run on read, in memory, over the stored channels as ``JSONValue``s; old
///   checkpoints are never rewritten. The first save after reading an upgraded checkpoint
///   stores every channel anew (in the new shape), later saves only what changed.
/// - A checkpoint of a version newer than `current` (written by a newer deploy) fails to read
///   with ``CheckpointError/Code/decodingFailed``, rather than being misread.
/// - Whole-state sealing is opened before the upgrades run, so they see plaintext. A ``Sealed``
///   field (marked-fields sealing) is bound to its channel and field path: an upgrade may
///   change what is around it, but not move or rename the channel or field that holds it.
public struct StateVersions: Sendable {
    /// The version this code writes (1 or more).
    public var current: Int
    /// The upgrade steps, at most one per version below ``current``.
    public var upgrades: [StateUpgrade]

    /// The channel where a checkpoint's version is stored (absent for version 1).
    package static let channel = "$version"

    /// Creates the versions.
    ///
    /// - Parameters:
    ///   - current: the version saves write.
    ///   - upgrades: for each older version that checkpoints may have, the step from it to the
    ///     next; a version without a step reads unchanged into the next.
    public init(current: Int, upgrades: [StateUpgrade] = []) {
        self.current = current
        self.upgrades = upgrades
    }

    func validate() throws(CheckpointError) {
        guard current >= 1 else { throw CheckpointError(.invalidArgument, "a state version is 1 or more") }
        var seen: Set<Int> = []
        for upgrade in upgrades {
            guard upgrade.from >= 1, upgrade.from < current else {
                throw CheckpointError(
                    .invalidArgument, "an upgrade from version \(upgrade.from) does not lead to version \(current)")
            }
            guard seen.insert(upgrade.from).inserted else {
                throw CheckpointError(.invalidArgument, "two upgrades from version \(upgrade.from)")
            }
        }
    }

    /// The version a checkpoint's channels were saved at, and the channels without the marker.
    static func split(_ channels: [String: ChannelValue]) throws(CheckpointError) -> (Int, [String: ChannelValue]) {
        var channels = channels
        guard let marker = channels.removeValue(forKey: channel) else { return (1, channels) }
        guard case .value(let data) = marker, let text = String(data: data, encoding: .utf8), let version = Int(text),
            version >= 1
        else {
            throw CheckpointError(.corruptData, "a checkpoint's state version marker is malformed")
        }
        return (version, channels)
    }

    /// Brings channels saved at `version` up to ``current``.
    func upgrade(_ channels: [String: ChannelValue], from version: Int) throws -> [String: ChannelValue] {
        var state = try StoredState(channels: channels, version: version)
        for next in version..<current {
            state.version = next
            if let step = upgrades.first(where: { $0.from == next }) {
                do {
                    try step.transform(&state)
                } catch let error as CheckpointError {
                    throw error
                } catch {
                    throw CheckpointError(
                        .decodingFailed, "the upgrade from state version \(next) failed: \(type(of: error))")
                }
            }
        }
        state.version = current
        return try state.channels()
    }
}

/// One step of a state's evolution: from version ``from`` to the next.
public struct StateUpgrade: Sendable {
    /// The version this step upgrades (to `from + 1`).
    public let from: Int
    let transform: @Sendable (inout StoredState) throws -> Void

    /// Creates a step that changes a checkpoint of version `from` into version `from + 1`.
    public init(from version: Int, _ transform: @escaping @Sendable (inout StoredState) throws -> Void) {
        self.from = version
        self.transform = transform
    }
}

/// A checkpoint's state as an upgrade step sees it: its top-level properties (channels) as
/// JSON values.
public struct StoredState: Sendable {
    /// The version the state has while a step runs (the step's `from`).
    public internal(set) var version: Int
    /// The top-level properties by name.
    public var properties: [String: JSONValue]
    /// Whether the state was stored whole (a state that is not a keyed container at the top).
    private let whole: Bool

    init(channels: [String: ChannelValue], version: Int) throws {
        self.version = version
        if channels.count == 1, case .value(let data)? = channels[wholeStateChannel] {
            let value = try JSONValue.parse(data)
            guard case .object(let object) = value else {
                properties = [wholeStateChannel: value]
                whole = true
                return
            }
            properties = object
            whole = true
            return
        }
        whole = false
        var properties: [String: JSONValue] = [:]
        for (name, channel) in channels {
            switch channel {
            case .value(let data): properties[name] = try JSONValue.parse(data)
            case .list(let elements): properties[name] = .array(try elements.map(JSONValue.parse))
            }
        }
        self.properties = properties
    }

    /// A top-level property; setting `nil` removes it.
    public subscript(name: String) -> JSONValue? {
        get { properties[name] }
        set { properties[name] = newValue }
    }

    /// Renames a property (a no-op when it is absent).
    public mutating func rename(_ name: String, to newName: String) {
        guard let value = properties.removeValue(forKey: name) else { return }
        properties[newName] = value
    }

    /// Removes a property.
    public mutating func remove(_ name: String) {
        properties[name] = nil
    }

    /// Sets a property that is absent (a property added with a default value).
    public mutating func setDefault(_ value: JSONValue, for name: String) {
        if properties[name] == nil { properties[name] = value }
    }

    /// Sets a property that is absent to an encoded value.
    public mutating func setDefault<Value: Encodable>(encoding value: Value, for name: String) throws {
        if properties[name] == nil { properties[name] = try JSONValue(encoding: value) }
    }

    /// Changes each element of an array property in place (a no-op when it is absent or not
    /// an array).
    public mutating func updateElements(of name: String, _ change: (inout JSONValue) throws -> Void) rethrows {
        guard case .array(var elements)? = properties[name] else { return }
        for index in elements.indices { try change(&elements[index]) }
        properties[name] = .array(elements)
    }

    func channels() throws -> [String: ChannelValue] {
        if whole {
            if properties.count == 1, let value = properties[wholeStateChannel] {
                return [wholeStateChannel: .value(try value.encoded())]
            }
            return [wholeStateChannel: .value(try JSONValue.object(properties).encoded())]
        }
        var channels: [String: ChannelValue] = [:]
        for (name, value) in properties {
            if case .array(let elements) = value {
                channels[name] = .list(try elements.map { try $0.encoded() })
            } else {
                channels[name] = .value(try value.encoded())
            }
        }
        return channels
    }
}

/// A JSON value, as state upgrades see stored state.
public enum JSONValue: Sendable, Hashable, Codable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number without fraction or exponent that fits an `Int`.
    case int(Int)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object.
    case object([String: JSONValue])

    /// The JSON form of an `Encodable` value (to set a property from a typed value).
    public init<Value: Encodable>(encoding value: Value) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self = try Self.parse(try encoder.encode(value))
    }

    /// Decodes this value as `Value` (to read a property of an old shape with a type of it).
    public func decode<Value: Decodable>(as type: Value.Type) throws -> Value {
        try JSONDecoder().decode(Value.self, from: try encoded())
    }

    /// Reads a value from `decoder`.
    public init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var properties: [String: JSONValue] = [:]
            for key in object.allKeys { properties[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
            self = .object(properties)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let bool = try? single.decode(Bool.self) {
            self = .bool(bool)
        } else if let int = try? single.decode(Int.self) {
            self = .int(int)
        } else if let double = try? single.decode(Double.self) {
            self = .double(double)
        } else {
            self = .string(try single.decode(String.self))
        }
    }

    /// Writes the value to `encoder`.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var single = encoder.singleValueContainer()
            try single.encodeNil()
        case .bool(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .int(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .double(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .string(let value):
            var single = encoder.singleValueContainer()
            try single.encode(value)
        case .array(let elements):
            var array = encoder.unkeyedContainer()
            for element in elements { try array.encode(element) }
        case .object(let properties):
            var object = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in properties { try object.encode(value, forKey: AnyKey(key)) }
        }
    }

    static func parse(_ data: Data) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data)
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByNilLiteral
{
    /// A string.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A boolean.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// A double.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

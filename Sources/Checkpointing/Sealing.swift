import Foundation

/// Seals and opens bytes, bound to where they belong. `CheckpointEncryption` provides one over
/// libsodium (`SodiumSealer`); the typed façade calls it for every channel value and list
/// element it stores, so no store (and no cache in front of one) ever holds the plaintext.
public protocol ChannelSealer: Sendable {
    /// Seals `plaintext`. `associatedData` names its place (thread, namespace, channel, element);
    /// opening the result anywhere else fails.
    ///
    /// - Throws: ``CheckpointError`` when no key is available.
    func seal(_ plaintext: Data, thread: ThreadID, associatedData: Data) throws -> Data

    /// Opens what ``seal(_:thread:associatedData:)`` made for the same place.
    ///
    /// - Throws: ``CheckpointError/Code/decryptionFailed`` for a wrong or unknown key,
    ///   tampered or truncated bytes, or bytes sealed for another place.
    func open(_ sealed: Data, thread: ThreadID, associatedData: Data) throws -> Data
}

/// How a ``CheckpointThread`` seals what it stores.
public struct Sealing: Sendable {
    /// The sealer.
    public var sealer: any ChannelSealer
    /// Whether every channel value and list element is sealed (``wholeState(_:)``), or only
    /// ``Sealed`` properties (``markedFields(_:)``).
    public var sealsWholeState: Bool = true

    /// Seals the whole state: every channel value and every list element is sealed on its own
    /// (so a save still stores only what changed), each bound to its thread, namespace, channel
    /// and position. Metadata and a pause's reason stay plain text, so that queries can filter
    /// on them; a pause's prompt and its answer are sealed like the state.
    public static func wholeState(_ sealer: any ChannelSealer) -> Sealing { Sealing(sealer: sealer, sealsWholeState: true) }
}

/// Where a sealed value belongs, as associated data.
package enum SealedPlace {
    case value(channel: String)
    case element(channel: String, index: Int)
    case prompt(pauseID: UUID)
    case answer(pauseID: UUID)
    case field(channel: String, index: Int?, path: String)

    /// The part of the associated data that names the thread and namespace, the same for
    /// every place of one façade (which computes it once).
    package static func prefix(thread: ThreadID, namespace: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + thread.rawValue.utf8.count + namespace.utf8.count)
        appendField("checkpointing-seal-v1", to: &bytes)
        appendField(thread.rawValue, to: &bytes)
        appendField(namespace, to: &bytes)
        return bytes
    }

    /// A length-prefixed string, the length as a varint (as ByteWriter writes it).
    private static func appendField(_ text: String, to bytes: inout [UInt8]) {
        let utf8 = text.utf8
        var count = UInt64(utf8.count)
        repeat {
            bytes.append(UInt8(truncatingIfNeeded: count) | (count >= 0x80 ? 0x80 : 0))
            count >>= 7
        } while count > 0
        bytes.append(contentsOf: utf8)
    }

    /// The associated data for a value of `thread` and `namespace` in this place.
    package func associatedData(thread: ThreadID, namespace: String) -> Data {
        associatedData(prefix: Self.prefix(thread: thread, namespace: namespace))
    }

    /// The associated data for this place after a ``prefix(thread:namespace:)``.
    package func associatedData(prefix: [UInt8]) -> Data {
        var bytes = prefix
        bytes.reserveCapacity(prefix.count + 48)
        switch self {
        case .value(let channel):
            bytes.append(1)
            Self.appendField(channel, to: &bytes)
        case .element(let channel, let index):
            bytes.append(2)
            Self.appendField(channel, to: &bytes)
            Self.appendField(String(index), to: &bytes)
        case .prompt(let id):
            bytes.append(3)
            Self.appendField(id.uuidString, to: &bytes)
        case .answer(let id):
            bytes.append(4)
            Self.appendField(id.uuidString, to: &bytes)
        case .field(let channel, let index, let path):
            bytes.append(5)
            Self.appendField(channel, to: &bytes)
            Self.appendField(index.map(String.init) ?? "-", to: &bytes)
            Self.appendField(path, to: &bytes)
        }
        return Data(bytes)
    }
}

extension Sealing {
    /// Seals bytes for a place of a thread.
    package func seal(_ data: Data, _ place: SealedPlace, thread: ThreadID, namespace: String) throws -> Data {
        try sealer.seal(data, thread: thread, associatedData: place.associatedData(thread: thread, namespace: namespace))
    }

    /// Opens bytes sealed for a place of a thread.
    package func open(_ data: Data, _ place: SealedPlace, thread: ThreadID, namespace: String) throws -> Data {
        try sealer.open(data, thread: thread, associatedData: place.associatedData(thread: thread, namespace: namespace))
    }
}

extension PausedThread {
    /// Decodes a prompt sealed by a façade with `sealing`.
    ///
    /// - Throws: ``CheckpointError/Code/decryptionFailed`` or ``CheckpointError/Code/decodingFailed``.
    public func prompt<Prompt: Decodable>(as type: Prompt.Type, sealing: Sealing) throws -> Prompt {
        var opened = self
        opened.pause.prompt = try sealing.open(pause.prompt, .prompt(pauseID: pause.id), thread: thread, namespace: namespace)
        return try opened.prompt(as: type)
    }
}

// MARK: - Sealed fields

extension Sealing {
    /// Seals only the properties marked ``Sealed`` (anywhere in the state, also inside list
    /// elements), each bound to its thread, namespace, channel, element and field path. The
    /// rest of the state is stored in plain bytes.
    public static func markedFields(_ sealer: any ChannelSealer) -> Sealing {
        Sealing(sealer: sealer, sealsWholeState: false)
    }
}

extension CodingUserInfoKey {
    /// Where ``Sealed`` finds how to seal and open.
    // The literal is a valid key: the initializer cannot fail for it.
    static let checkpointSealing = CodingUserInfoKey(rawValue: "checkpointing.sealing")!
}

/// What ``Sealed`` needs while a state is encoded or decoded: the sealer, the thread, and
/// the channel (and element) being coded.
///
/// `@unchecked Sendable` only because encoders' `userInfo` asks for it: each context is made
/// for one save or one read, used by that call alone and never shared.
package final class SealingContext: @unchecked Sendable {
    let sealing: Sealing
    let thread: ThreadID
    let namespace: String
    /// The channel being coded.
    package var channel = ""
    /// The element being encoded, for a list channel.
    package var elementIndex: Int?
    /// Whether the channel being decoded is a list (its elements' index leads the coding path).
    package var decodesList = false
    /// What to add to the index that leads a decoded list element's coding path: the elements
    /// before it that were not decoded again (see `DecodedChannels`).
    package var indexOffset = 0
    /// Whether a sealed field was opened since the last reset of this flag.
    package var openedField = false
    /// When set, sealed fields encode their plaintext, to compare states: never stored.
    package var comparing = false
    /// The channels in which a sealed field was met while comparing.
    package var channelsWithSealedFields: Set<String> = []
    /// The plaintexts of the sealed fields of the channel being compared, in encoding order.
    package var comparedPlaintexts: [Data] = []

    package init(sealing: Sealing, thread: ThreadID, namespace: String) {
        self.sealing = sealing
        self.thread = thread
        self.namespace = namespace
    }

    /// Forgets what one save recorded, so that the context can serve the next.
    package func reset() {
        channel = ""
        elementIndex = nil
        decodesList = false
        indexOffset = 0
        openedField = false
        comparing = false
        channelsWithSealedFields.removeAll(keepingCapacity: true)
        comparedPlaintexts.removeAll(keepingCapacity: true)
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue }.joined(separator: ".")
    }

    func seal(_ plaintext: Data, codingPath: [any CodingKey]) throws -> Data {
        try sealing.seal(
            plaintext, .field(channel: channel, index: elementIndex, path: Self.path(codingPath)), thread: thread,
            namespace: namespace)
    }

    func open(_ sealed: Data, codingPath: [any CodingKey]) throws -> Data {
        var path = codingPath
        var index: Int?
        if decodesList, let first = path.first {
            index = first.intValue.map { $0 + indexOffset }
            path.removeFirst()
        }
        openedField = true
        return try sealing.open(
            sealed, .field(channel: channel, index: index, path: Self.path(path)), thread: thread, namespace: namespace)
    }

    /// A JSON encoder that carries this context.
    package func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.userInfo[.checkpointSealing] = self
        return encoder
    }

    /// A JSON decoder that carries this context.
    package func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.userInfo[.checkpointSealing] = self
        return decoder
    }
}

/// A property whose value is sealed before it is stored, with the ``Sealing`` of the façade
/// that saves the state (whole-state or marked-fields). It is bound to its thread, namespace,
/// channel, element and field path: copied anywhere else it does not open.
///
/// ```swift
/// struct AgentState: Codable, Sendable {
///     var messages: [Message] = []
///     @Sealed var apiToken: String = ""
/// }
/// ```
///
/// A state with sealed fields encodes only through a ``CheckpointThread`` with sealing:
/// anywhere else (a plain `JSONEncoder`, a façade without sealing) encoding fails rather than
/// write the plaintext.
@propertyWrapper
public struct Sealed<Value: Codable & Sendable>: Codable, Sendable {
    /// The plaintext value.
    public var wrappedValue: Value

    /// Wraps a value.
    public init(wrappedValue: Value) {
        self.wrappedValue = wrappedValue
    }

    /// Encodes the value sealed (or, while states are compared in memory, its plaintext).
    public func encode(to encoder: any Encoder) throws {
        guard let context = encoder.userInfo[.checkpointSealing] as? SealingContext else {
            throw EncodingError.invalidValue(
                Value.self,
                .init(
                    codingPath: encoder.codingPath,
                    debugDescription:
                        "a @Sealed field is saved only through a façade with sealing: open the thread with sealing: (checkpointer.thread(_:as:sealing:))"
                ))
        }
        let plaintext = try FastJSONEncoder().encode(wrappedValue) ?? JSONEncoder().encode(wrappedValue)
        var container = encoder.singleValueContainer()
        if context.comparing {
            // The plaintext goes beside the JSON (see ChannelCapture), not through it: cheaper
            // than base64 and JSON escaping, and it never leaves memory.
            context.channelsWithSealedFields.insert(context.channel)
            context.comparedPlaintexts.append(plaintext)
            try container.encode(context.comparedPlaintexts.count)
        } else {
            try container.encode(try context.seal(plaintext, codingPath: encoder.codingPath).base64EncodedString())
        }
    }

    /// Decodes and opens a sealed value.
    public init(from decoder: any Decoder) throws {
        guard let context = decoder.userInfo[.checkpointSealing] as? SealingContext else {
            throw CheckpointError(
                .decodingFailed,
                "the state has a @Sealed field: open the thread with sealing: (checkpointer.thread(_:as:sealing:)) to read it")
        }
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let sealed = Data(base64Encoded: text) else {
            throw CheckpointError(.decryptionFailed, "a sealed field is not base64 (tampered)")
        }
        let plaintext = try context.open(sealed, codingPath: decoder.codingPath)
        wrappedValue = try JSONDecoder().decode(Value.self, from: plaintext)
    }
}

/// A sealed property that is a channel by itself (a top-level `@Sealed` property): encoded
/// without a `JSONEncoder` round.
package protocol SealedChannelValue {
    func channelBytes(context: SealingContext) throws -> Data
}

extension Sealed: SealedChannelValue {
    package func channelBytes(context: SealingContext) throws -> Data {
        let plaintext = try FastJSONEncoder().encode(wrappedValue) ?? JSONEncoder().encode(wrappedValue)
        context.channelsWithSealedFields.insert(context.channel)
        if context.comparing {
            // Compared in memory only, never stored or decoded.
            var bytes = Data(capacity: plaintext.count + 1)
            bytes.append(0x53)
            bytes.append(plaintext)
            return bytes
        }
        let sealed = try context.seal(plaintext, codingPath: []).base64EncodedString()
        return try FastJSONEncoder().encode(sealed) ?? JSONEncoder().encode(sealed)
    }
}

extension Sealed: Equatable where Value: Equatable {}
extension Sealed: Hashable where Value: Hashable {}

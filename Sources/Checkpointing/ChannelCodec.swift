import Foundation
import Synchronization

// The codec that turns a Codable state into channels: one channel per top-level property.
// Arrays (of any Encodable element) become list channels, so that a save after an append
// encodes and stores only the new elements. A state whose top level is not a keyed container
// (or that uses nested containers at the top level) is stored whole in one channel.
//
// What is stored is decided by encoded bytes, never by a user's `==`: an element counts as
// unchanged when its bits are those of the element the last save or read saw (a copied array
// shares its elements' storage, and identical bits encode identically), or else when it
// encodes to the same bytes as that element did.

/// The channel name used when a state cannot be split into top-level properties.
package let wholeStateChannel = "$state"

/// An array channel whose appended elements can be found without encoding the whole array.
package protocol AppendableChannelList {
    /// The number of elements.
    var channelElementCount: Int { get }
    /// The length of the prefix this array shares, by encoded bytes, with the array a save
    /// compares it with, or `nil` when that array is no prefix of this one.
    ///
    /// - Parameters:
    ///   - previous: the array as the base state held it (of the same type), if it has one.
    ///   - previousEncoded: each of the base's elements as it was stored (in compared form);
    ///     `nil` when the base kept none, because its elements are bit-comparable values whose
    ///     encoding is taken from `previous` when needed.
    ///   - comparisonForm: encodes an element the way `previousEncoded` was encoded.
    func channelPrefixLength(
        of previous: Any?, encoded previousEncoded: [Data]?, comparisonForm: (any Encodable) throws -> Data
    ) rethrows -> Int?
    /// Whether this array's elements may be compared by their bits (values that hold no class
    /// instance), so that a base need not keep their encoded bytes.
    var channelElementsAreBitComparable: Bool { get }
    /// The element at `index`.
    func channelElement(at index: Int) -> any Encodable
}

/// A type that can be decoded from a list channel's elements.
package protocol DecodableChannelList {
    static func decodeChannelList(_ elements: [Data], using decoder: JSONDecoder) throws -> Self
    /// Decodes `elements`, reusing `previous` (an earlier decode of this channel) for the
    /// prefix whose bytes are the same, so that only the elements appended since are decoded.
    ///
    /// - Returns: the list, and whether it may be kept for the next decode to reuse (its
    ///   elements are plain values that hold no class instance).
    ///
    /// - Parameter origin: where `elements` came from, when the store knows (see
    ///   ``ListOrigin``): a list that extends the one `previous` decoded is recognised without
    ///   comparing their bytes.
    static func decodeChannelList(
        _ elements: [Data], origin: ListOrigin?, after previous: DecodedChannel?, using decoder: JSONDecoder,
        context: SealingContext?
    ) throws -> (list: Any, reusable: Bool)
}

/// Whether elements of a type may be compared by their bits: not for classes (an instance
/// changed in place keeps its address), nor for values that hold one (looked at once per type,
/// on the first element seen, through `Mirror`).
private let bitComparable = Mutex<[ObjectIdentifier: Bool]>([:])

/// Whether values of `type` are plain values that two states may share: no class, and (for the
/// sample looked at) no class instance inside. Decided once per type.
package func valuesMayBeShared(_ type: Any.Type, sample: Any) -> Bool {
    if type is AnyClass { return false }
    let key = ObjectIdentifier(type)
    if let known = bitComparable.withLock({ $0[key] }) { return known }
    let comparable = !holdsClassInstance(sample, depth: 6)
    bitComparable.withLock { $0[key] = comparable }
    return comparable
}

private func holdsClassInstance(_ value: Any, depth: Int) -> Bool {
    let mirror = Mirror(reflecting: value)
    if mirror.displayStyle == .class { return true }
    guard depth > 0 else { return false }
    for child in mirror.children.prefix(64) where holdsClassInstance(child.value, depth: depth - 1) { return true }
    return false
}

extension Array: AppendableChannelList where Element: Encodable {
    package var channelElementCount: Int { count }

    package func channelElement(at index: Int) -> any Encodable { self[index] }

    private static func mayCompareBits(_ sample: Element) -> Bool {
        valuesMayBeShared(Element.self, sample: sample)
    }

    package var channelElementsAreBitComparable: Bool {
        guard let first else { return !(Element.self is AnyClass) }
        return Self.mayCompareBits(first)
    }

    package func channelPrefixLength(
        of previous: Any?, encoded previousEncoded: [Data]?, comparisonForm: (any Encodable) throws -> Data
    ) rethrows -> Int? {
        let previous = previous as? [Element]
        guard let length = previousEncoded?.count ?? previous?.count, length <= count else { return nil }
        guard length > 0 else { return 0 }
        guard let previous, previous.count == length, Self.mayCompareBits(previous[0]) else {
            // Only the stored bytes can tell.
            guard let previousEncoded else { return nil }
            for index in 0..<length {
                guard try comparisonForm(self[index]) == previousEncoded[index] else { return nil }
            }
            return length
        }
        // Fast path: an array that was copied and appended to holds the very same element
        // values (the same bits, the same string buffers), and identical bits encode
        // identically; a copy-on-write buffer is never changed in place while the base shares it.
        let stride = MemoryLayout<Element>.stride
        let identical = withUnsafeBytes { current in
            previous.withUnsafeBytes { old in
                guard let currentBase = current.baseAddress, let oldBase = old.baseAddress else { return false }
                return memcmp(currentBase, oldBase, old.count) == 0
            }
        }
        if identical { return length }
        for index in 0..<length {
            let same = withUnsafeBytes { current in
                previous.withUnsafeBytes { old in
                    guard stride > 0, let currentBase = current.baseAddress, let oldBase = old.baseAddress else {
                        return stride == 0
                    }
                    return memcmp(currentBase + index * stride, oldBase + index * stride, stride) == 0
                }
            }
            if same { continue }
            let old = try previousEncoded?[index] ?? comparisonForm(previous[index])
            guard try comparisonForm(self[index]) == old else { return nil }
        }
        return length
    }
}

extension Array: DecodableChannelList where Element: Decodable {
    package static func decodeChannelList(_ elements: [Data], using decoder: JSONDecoder) throws -> [Element] {
        try decodeElements(elements, using: decoder)
    }

    /// Each element with the fast decoder (when no sealing context is attached); when it cannot
    /// tell one, the whole run with `JSONDecoder`, which then also gives the real error.
    private static func decodeElements<Elements: Collection<Data>>(_ elements: Elements, using decoder: JSONDecoder) throws
        -> [Element]
    {
        if decoder.userInfo.isEmpty {
            let fast = FastJSONDecoder()
            var list: [Element] = []
            list.reserveCapacity(elements.count)
            for element in elements {
                guard let decoded = fast.decode(Element.self, from: element) else { break }
                list.append(decoded)
            }
            if list.count == elements.count { return list }
        }
        return try decoder.decode([Element].self, from: joinedJSONArray(elements))
    }

    package static func decodeChannelList(
        _ elements: [Data], origin: ListOrigin?, after previous: DecodedChannel?, using decoder: JSONDecoder,
        context: SealingContext?
    ) throws -> (list: Any, reusable: Bool) {
        if case .list(let oldElements, let decoded, let oldOrigin)? = previous, let old = decoded as? [Element],
            old.count == oldElements.count, old.count <= elements.count,
            origin.map { origin in origin.count == elements.count && oldOrigin.map { origin.extends($0) } == true } == true
                || sameBytes(elements.prefix(old.count), oldElements)
        {
            guard old.count < elements.count else { return (old, true) }
            let appended = elements[old.count...]
            context?.indexOffset = old.count
            defer { context?.indexOffset = 0 }
            // A failure decodes the whole list again, so that its error names the absolute index.
            if let new = try? decodeElements(appended, using: decoder) {
                return (old + new, true)
            }
        }
        let list = try decodeChannelList(elements, using: decoder)
        return (list, list.first.map { valuesMayBeShared(Element.self, sample: $0) } ?? !(Element.self is AnyClass))
    }
}

/// Whether two runs of stored elements hold the same bytes (elements read from one cache share
/// their buffers, which are then not compared byte by byte).
private func sameBytes(_ elements: ArraySlice<Data>, _ others: [Data]) -> Bool {
    guard elements.count == others.count else { return false }
    for (element, other) in zip(elements, others) where !sameBytes(element, other) { return false }
    return true
}

func sameBytes(_ data: Data, _ other: Data) -> Bool {
    guard data.count == other.count else { return false }
    return data.withUnsafeBytes { bytes in
        other.withUnsafeBytes { otherBytes in
            guard let base = bytes.baseAddress, let otherBase = otherBytes.baseAddress, base != otherBase else { return true }
            return memcmp(base, otherBase, bytes.count) == 0
        }
    }
}

/// Joins encoded JSON values into the bytes of one JSON array.
package func joinedJSONArray<Elements: Collection<Data>>(_ elements: Elements) -> Data {
    var data = Data(capacity: elements.reduce(2) { $0 + $1.count + 1 })
    data.append(UInt8(ascii: "["))
    for (index, element) in elements.enumerated() {
        if index > 0 { data.append(UInt8(ascii: ",")) }
        data.append(element)
    }
    data.append(UInt8(ascii: "]"))
    return data
}

/// An encoding failure with the channel (and list element) it happened in.
package struct ChannelEncodingError: Error {
    package var channel: String
    package var index: Int?
    package var underlying: EncodingError
}

/// One captured top-level property.
package enum CapturedChannel {
    case value(Data)
    case list(any AppendableChannelList)
}

/// Splits a state into channels without encoding list elements yet.
package struct ChannelCapture {
    package let encoder: JSONEncoder

    package init() {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self.encoder = encoder
    }

    /// Splits `state` into channels.
    ///
    /// - Parameter encodeValues: when `false`, only list channels are returned (nothing is encoded).
    package func capture<State: Encodable>(
        _ state: State, encodeValues: Bool = true, using encoder: JSONEncoder? = nil
    ) throws -> [String: CapturedChannel] {
        let encoder = encoder ?? self.encoder
        // The sealing context, looked up once per capture rather than once per channel.
        let context = encoder.userInfo.isEmpty ? nil : encoder.userInfo[.checkpointSealing] as? SealingContext
        let recorder = CaptureEncoder(jsonEncoder: encoder, encodeValues: encodeValues, context: context)
        try state.encode(to: recorder)
        if recorder.storage.isSplittable {
            return recorder.storage.channels
        }
        (encoder.userInfo[.checkpointSealing] as? SealingContext)?.channel = wholeStateChannel
        return encodeValues ? [wholeStateChannel: .value(try encoder.encode(state))] : [:]
    }
}

final class CaptureStorage {
    var channels: [String: CapturedChannel] = [:]
    var isSplittable = true
    var usedKeyedContainer = false
}

struct CaptureEncoder: Encoder {
    let jsonEncoder: JSONEncoder
    let encodeValues: Bool
    let context: SealingContext?
    let storage = CaptureStorage()
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if storage.usedKeyedContainer { storage.isSplittable = false }
        storage.usedKeyedContainer = true
        return KeyedEncodingContainer(
            CaptureKeyedContainer<Key>(
                jsonEncoder: jsonEncoder, encodeValues: encodeValues, context: context, storage: storage))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        storage.isSplittable = false
        return DiscardingUnkeyedContainer()
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        storage.isSplittable = false
        return DiscardingSingleValueContainer()
    }
}

struct CaptureKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let jsonEncoder: JSONEncoder
    let encodeValues: Bool
    let context: SealingContext?
    let storage: CaptureStorage
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) throws {
        if encodeValues { storage.channels[key.stringValue] = .value(Data("null".utf8)) }
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        do {
            try encodeChannel(value, forKey: key)
        } catch let error as EncodingError {
            throw ChannelEncodingError(channel: key.stringValue, index: nil, underlying: error)
        }
    }

    private mutating func encodeChannel<T: Encodable>(_ value: T, forKey key: Key) throws {
        if let list = value as? any AppendableChannelList {
            storage.channels[key.stringValue] = .list(list)
        } else if encodeValues {
            guard let context else {
                storage.channels[key.stringValue] = .value(try fastJSON(value) ?? jsonEncoder.encode(value))
                return
            }
            if let sealed = value as? any SealedChannelValue {
                context.channel = key.stringValue
                storage.channels[key.stringValue] = .value(try sealed.channelBytes(context: context))
                return
            }
            // The fast encoder fails on any `Sealed` field (it carries no context): a value it
            // encodes has none, and needs no sealing bookkeeping.
            if let data = fastJSON(value) {
                storage.channels[key.stringValue] = .value(data)
                return
            }
            context.channel = key.stringValue
            context.comparedPlaintexts.removeAll(keepingCapacity: true)
            var data = try jsonEncoder.encode(value)
            if context.comparing, !context.comparedPlaintexts.isEmpty {
                // The form compared with the last save: the JSON, then each sealed field's plaintext.
                var writer = ByteWriter()
                for plaintext in context.comparedPlaintexts { writer.writeBytes(plaintext) }
                data.append(0)
                data.append(writer.data)
            }
            storage.channels[key.stringValue] = .value(data)
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        storage.isSplittable = false
        return KeyedEncodingContainer(DiscardingKeyedContainer<NestedKey>())
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        storage.isSplittable = false
        return DiscardingUnkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        storage.isSplittable = false
        return DiscardingEncoder()
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        storage.isSplittable = false
        return DiscardingEncoder()
    }
}

// Containers that accept anything and keep nothing: used once a state turned out not to be
// splittable, after which it is encoded whole with JSONEncoder.

struct DiscardingEncoder: Encoder {
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(DiscardingKeyedContainer<Key>())
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { DiscardingUnkeyedContainer() }
    func singleValueContainer() -> any SingleValueEncodingContainer { DiscardingSingleValueContainer() }
}

struct DiscardingKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    var codingPath: [any CodingKey] { [] }
    mutating func encodeNil(forKey key: Key) throws {}
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {}
    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(DiscardingKeyedContainer<NestedKey>())
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        DiscardingUnkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { DiscardingEncoder() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { DiscardingEncoder() }
}

struct DiscardingUnkeyedContainer: UnkeyedEncodingContainer {
    var codingPath: [any CodingKey] { [] }
    var count: Int { 0 }
    mutating func encodeNil() throws {}
    mutating func encode<T: Encodable>(_ value: T) throws {}
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(DiscardingKeyedContainer<NestedKey>())
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { DiscardingUnkeyedContainer() }
    mutating func superEncoder() -> any Encoder { DiscardingEncoder() }
}

struct DiscardingSingleValueContainer: SingleValueEncodingContainer {
    var codingPath: [any CodingKey] { [] }
    mutating func encodeNil() throws {}
    mutating func encode<T: Encodable>(_ value: T) throws {}
}

// MARK: - Decoding

/// One channel as a decode left it: the bytes it was decoded from and the value they gave.
package enum DecodedChannel {
    case value(Data, Any)
    /// A list channel: each element's bytes, the array decoded from them, and where the
    /// elements came from when the store said.
    case list([Data], Any, ListOrigin?)
}

/// The channels of the last state a façade decoded, so that its next decode reuses every
/// channel whose bytes are the same and decodes, of a list that grew, only the new elements.
///
/// An entry maps bytes to the value decoding them gives, which is always true again: decoding
/// is a function of the bytes (and of the channel and index, which are part of the key). Only
/// plain values are kept (no class instance, whose in-place changes a later read would show),
/// and no channel in which a sealed field was opened (a read must open it again, so that a
/// destroyed key is noticed at once).
///
/// `@unchecked Sendable`: it holds only values decoded as parts of a `Sendable` state.
package struct DecodedChannels: @unchecked Sendable {
    package var channels: [String: DecodedChannel] = [:]
    /// The channels the state type asked for while decoding (present or not): the stored
    /// channels outside it belong to another type, and a save keeps them.
    package var requested: Set<String> = []

    package init() {}
}

/// Rebuilds a state from channels.
package struct ChannelDecoding {
    package let decoder = JSONDecoder()

    package init() {}

    /// Decodes a state; `context`, when given, opens its sealed fields.
    package func decode<State: Decodable>(
        _ type: State.Type, from channels: [String: ChannelValue], context: SealingContext? = nil
    ) throws -> State {
        try decode(type, from: channels, context: context, reusing: nil).state
    }

    /// Decodes a state, reusing what `previous` decoded for the channels (and list prefixes)
    /// whose bytes are the same: known from `origins` (where the store says each list came
    /// from) or else compared.
    ///
    /// - Returns: the state, and what the next decode may reuse (nothing, when `previous` is `nil`).
    package func decode<State: Decodable>(
        _ type: State.Type, from channels: [String: ChannelValue], context: SealingContext?,
        reusing previous: DecodedChannels?, origins: [String: ListOrigin] = [:]
    ) throws -> (state: State, decoded: DecodedChannels) {
        let decoder = context?.makeDecoder() ?? self.decoder
        if channels.count == 1, case .value(let data)? = channels[wholeStateChannel] {
            context?.channel = wholeStateChannel
            return (try decoder.decodeChannel(State.self, from: data), DecodedChannels())
        }
        let reuse = previous.map { ChannelReuse(previous: $0.channels, origins: origins) }
        let state = try State(from: ChannelDecoder(channels: channels, jsonDecoder: decoder, reuse: reuse))
        var decoded = DecodedChannels()
        decoded.channels = reuse?.next ?? [:]
        decoded.requested = reuse?.requested ?? []
        return (state, decoded)
    }
}

extension JSONDecoder {
    /// Decodes one channel's bytes: with the fast decoder when no sealing context is attached
    /// (it gives the same value, or none), else or when it cannot tell, with this decoder.
    func decodeChannel<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        if userInfo.isEmpty, let value = FastJSONDecoder().decode(T.self, from: data) { return value }
        return try decode(T.self, from: data)
    }
}

/// What one decode reuses and what it leaves for the next (used by that decode alone).
final class ChannelReuse {
    let previous: [String: DecodedChannel]
    /// Where the lists being decoded came from, as far as the store knows.
    let origins: [String: ListOrigin]
    var next: [String: DecodedChannel] = [:]
    var requested: Set<String> = []

    init(previous: [String: DecodedChannel], origins: [String: ListOrigin]) {
        self.previous = previous
        self.origins = origins
    }
}

struct ChannelDecoder: Decoder {
    let channels: [String: ChannelValue]
    let jsonDecoder: JSONDecoder
    let reuse: ChannelReuse?
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(ChannelKeyedContainer<Key>(channels: channels, jsonDecoder: jsonDecoder, reuse: reuse))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: [], debugDescription: "the stored state is split into channels"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: [], debugDescription: "the stored state is split into channels"))
    }
}

struct ChannelKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let channels: [String: ChannelValue]
    let jsonDecoder: JSONDecoder
    let reuse: ChannelReuse?
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { channels.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool {
        reuse?.requested.insert(key.stringValue)
        return channels[key.stringValue] != nil
    }

    private func channel(_ key: Key) throws -> ChannelValue {
        reuse?.requested.insert(key.stringValue)
        guard let channel = channels[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: [], debugDescription: "no stored channel"))
        }
        return channel
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .value(let data) = try channel(key) { return data.elementsEqual("null".utf8) }
        return false
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        do {
            return try decodeChannel(type, forKey: key)
        } catch let error as DecodingError {
            // Each channel decodes on its own: its errors' paths start inside it. The key goes
            // in front, as in JSONDecoder's path for the whole state.
            throw error.prefixed(with: key)
        }
    }

    private func decodeChannel<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let value = try channel(key)
        let name = key.stringValue
        let context = jsonDecoder.userInfo.isEmpty ? nil : jsonDecoder.userInfo[.checkpointSealing] as? SealingContext
        if let context {
            context.channel = name
            if case .list = value { context.decodesList = true } else { context.decodesList = false }
            context.openedField = false
        }
        switch value {
        case .value(let data):
            if let reuse, case .value(let old, let decoded)? = reuse.previous[name], sameBytes(old, data),
                let decoded = decoded as? T
            {
                reuse.next[name] = .value(data, decoded)
                return decoded
            }
            let decoded = try jsonDecoder.decodeChannel(T.self, from: data)
            if let reuse, context?.openedField != true, valuesMayBeShared(T.self, sample: decoded) {
                reuse.next[name] = .value(data, decoded)
            }
            return decoded
        case .list(let elements):
            if let listType = T.self as? any DecodableChannelList.Type {
                if let reuse {
                    let origin = reuse.origins[name]
                    let (list, reusable) = try listType.decodeChannelList(
                        elements, origin: origin, after: reuse.previous[name], using: jsonDecoder, context: context)
                    if let list = list as? T {
                        if reusable, context?.openedField != true { reuse.next[name] = .list(elements, list, origin) }
                        return list
                    }
                } else if let list = try listType.decodeChannelList(elements, using: jsonDecoder) as? T {
                    return list
                }
            }
            return try jsonDecoder.decode(T.self, from: joinedJSONArray(elements))
        }
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.typeMismatch(
            type, .init(codingPath: [key], debugDescription: "nested containers are not stored as channels"))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: [key], debugDescription: "nested containers are not stored as channels"))
    }

    func superDecoder() throws -> any Decoder {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: [], debugDescription: "super decoders are not stored as channels"))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: [key], debugDescription: "super decoders are not stored as channels"))
    }
}

// MARK: - Fast JSON for primitives

/// JSON for a string, an integer or a boolean without a `JSONEncoder` round (which costs a few
/// microseconds per call); `nil` for any other type. The output is valid JSON that
/// `JSONDecoder` reads back as the same value, and the same value always gives the same bytes.
package func fastJSON<T: Encodable>(_ value: T) -> Data? {
    guard T.self == String.self || T.self == Int.self || T.self == Bool.self else { return nil }
    return FastJSONEncoder().encode(value)
}

extension DecodingError {
    /// The same error with `key` in front of its coding path.
    func prefixed(with key: any CodingKey) -> DecodingError {
        func moved(_ context: Context) -> Context {
            Context(codingPath: [key] + context.codingPath, debugDescription: context.debugDescription, underlyingError: context.underlyingError)
        }
        switch self {
        case .typeMismatch(let type, let context): return .typeMismatch(type, moved(context))
        case .valueNotFound(let type, let context): return .valueNotFound(type, moved(context))
        case .keyNotFound(let missing, let context): return .keyNotFound(missing, moved(context))
        case .dataCorrupted(let context): return .dataCorrupted(moved(context))
        @unknown default: return self
        }
    }
}

import Foundation

// Storage layout shared by every backend, so that no backend re-implements delta logic.
//
// A stored checkpoint holds a manifest: for each channel, either a small value inline, a
// reference to a stored value (the id of the checkpoint that wrote it), or a reference to a
// list, which is a chain of segments (each segment holds the elements one checkpoint appended
// and names the previous segment). Unchanged channels copy the parent's reference, appended
// lists add one segment: a put stores what changed, never the whole state.

/// Where one channel's content lives.
package enum ManifestEntry: Hashable, Sendable {
    /// A value small enough to store in the manifest itself.
    case inline(Data)
    /// A value stored as a payload keyed by (channel, version).
    case stored(version: CheckpointID)
    /// A list: the chain of segments that ends at its tip, `count` elements in all.
    case list(ListReference)
}

/// A list channel's chain of segments, named by its last segment: each segment names the one
/// before it, and the first names none.
/// Where a list read from a store came from: its tip segment and length, and the shorter
/// lists it extends (each an earlier tip of the same chain, with its length), newest first, as
/// far as the store knows them.
///
/// Segments never change and ids are never reused, so a list whose chain passes through
/// another's tip holds that list's elements first: a reader that decoded the shorter list
/// decodes only what was appended, without comparing bytes.
package struct ListOrigin: Hashable, Sendable {
    package var tip: CheckpointID
    package var count: Int
    package var ancestors: [ListReference]

    /// How many ancestors an origin keeps (older ones are compared by their bytes instead).
    package static let ancestorLimit = 32

    package init(tip: CheckpointID, count: Int, ancestors: [ListReference]) {
        self.tip = tip
        self.count = count
        self.ancestors = ancestors
    }

    /// Whether this list begins with all of `other`'s elements: it is `other`, or extends it.
    package func extends(_ other: ListOrigin) -> Bool {
        (other.tip == tip && other.count == count)
            || ancestors.contains { $0.tip == other.tip && $0.count == other.count }
    }
}

package struct ListReference: Hashable, Sendable {
    /// The last segment, or `nil` for an empty list.
    package var tip: CheckpointID?
    /// The number of elements.
    package var count: Int

    package init(tip: CheckpointID?, count: Int) {
        self.tip = tip
        self.count = count
    }
}

/// One stored piece of a list: the elements that one checkpoint appended.
package struct ListSegment: Sendable, Hashable {
    /// The id of the checkpoint that wrote the segment.
    package var id: CheckpointID
    /// The segment before this one, or `nil` for the first.
    package var previous: CheckpointID?
    /// The elements, in order.
    package var elements: [Data]

    package init(id: CheckpointID, previous: CheckpointID?, elements: [Data]) {
        self.id = id
        self.previous = previous
        self.elements = elements
    }

    /// The elements framed as one payload.
    package func encodedElements() -> Data {
        var writer = ByteWriter()
        writer.writeVarint(UInt64(elements.count))
        for element in elements { writer.writeBytes(element) }
        return writer.data
    }

    /// Reads elements framed by ``encodedElements()``.
    package static func decodeElements(_ data: Data) throws(CheckpointError) -> [Data] {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        guard count <= UInt64(data.count) else { throw ByteReader.corrupt }
        var elements: [Data] = []
        elements.reserveCapacity(Int(count))
        for _ in 0..<count { elements.append(try reader.readBytes()) }
        guard reader.isAtEnd else { throw ByteReader.corrupt }
        return elements
    }
}

/// The channel map of one stored checkpoint.
package struct Manifest: Hashable, Sendable {
    package var entries: [String: ManifestEntry]

    package init(entries: [String: ManifestEntry] = [:]) { self.entries = entries }

    private static let formatVersion: UInt8 = 1

    /// The manifest's binary form. References to `owner` (the checkpoint that holds the
    /// manifest, which is the usual case for what it changed) take one byte instead of 17.
    package func encoded(owner: CheckpointID) -> Data {
        var writer = ByteWriter()
        writer.writeByte(Self.formatVersion)
        writer.writeVarint(UInt64(entries.count))
        for name in entries.keys.sorted() {
            guard let entry = entries[name] else { continue }
            writer.writeBytes(Data(name.utf8))
            switch entry {
            case .inline(let data):
                writer.writeByte(1)
                writer.writeBytes(data)
            case .stored(let version):
                writer.writeByte(2)
                writer.writeReference(version, owner: owner)
            case .list(let reference):
                if let tip = reference.tip {
                    writer.writeByte(3)
                    writer.writeReference(tip, owner: owner)
                    writer.writeVarint(UInt64(reference.count))
                } else {
                    writer.writeByte(4)
                }
            }
        }
        return writer.data
    }

    /// Reads a manifest's binary form.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when the bytes are not a manifest.
    package init(decoding data: Data, owner: CheckpointID) throws(CheckpointError) {
        var reader = ByteReader(data)
        guard try reader.readByte() == Self.formatVersion else {
            throw CheckpointError(.corruptData, "a stored checkpoint has an unknown manifest format")
        }
        let count = try reader.readVarint()
        guard count <= UInt64(data.count) else { throw ByteReader.corrupt }
        var entries: [String: ManifestEntry] = [:]
        entries.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let name = String(data: try reader.readBytes(), encoding: .utf8) else { throw ByteReader.corrupt }
            switch try reader.readByte() {
            case 1: entries[name] = .inline(try reader.readBytes())
            case 2: entries[name] = .stored(version: try reader.readReference(owner: owner))
            case 3:
                let tip = try reader.readReference(owner: owner)
                let count = try reader.readVarint()
                guard count <= UInt64(Int.max) else { throw ByteReader.corrupt }
                entries[name] = .list(ListReference(tip: tip, count: Int(count)))
            case 4: entries[name] = .list(ListReference(tip: nil, count: 0))
            default: throw ByteReader.corrupt
            }
        }
        guard reader.isAtEnd else { throw ByteReader.corrupt }
        self.entries = entries
    }
}

/// What a backend must store for one put, computed once for every backend.
/// The errors of a channel write that does not fit its parent, the same from every backend.
package enum ChannelWriteErrors {
    /// A channel marked ``ChannelWrite/unchanged`` that the parent does not have.
    package static func unchangedWithoutParent(_ name: String) -> CheckpointError {
        CheckpointError(.invalidArgument, "channel '\(name)' is marked unchanged but the parent has no such channel")
    }

    /// A channel that appends to a list the parent does not have.
    package static func appendWithoutList(_ name: String) -> CheckpointError {
        CheckpointError(.invalidArgument, "channel '\(name)' appends to a list but the parent has no list of that name")
    }
}

package struct ResolvedWrite: Sendable {
    /// A value to store under (channel, version).
    package struct Payload: Sendable {
        package var channel: String
        package var version: CheckpointID
        package var data: Data
    }

    /// A list segment to store under (channel, segment id).
    package struct Segment: Sendable {
        package var channel: String
        package var segment: ListSegment
    }

    package var manifest: Manifest
    package var payloads: [Payload]
    package var segments: [Segment]

    /// Values up to this many bytes live in the manifest instead of a payload of their own.
    /// An inline value is copied into every later manifest while it is unchanged, and a
    /// reference takes 17 bytes, so only small values (numbers, flags, short names) go inline.
    package static let inlineLimit = 32

    /// Turns a write into the rows a backend stores.
    ///
    /// - Parameter parent: the parent's manifest, `nil` when the write starts a thread.
    /// - Throws: ``CheckpointError/Code/invalidArgument`` when a channel is `unchanged` or
    ///   `append` and the parent has no matching channel; ``CheckpointError/Code/corruptData``
    ///   when the parent's list count cannot grow by the appended elements (damaged bytes).
    package init(_ write: CheckpointWrite, parent: Manifest?) throws(CheckpointError) {
        var manifest = Manifest()
        var payloads: [Payload] = []
        var segments: [Segment] = []
        for (name, channelWrite) in write.channels {
            switch channelWrite {
            case .unchanged:
                guard let entry = parent?.entries[name] else {
                    throw ChannelWriteErrors.unchangedWithoutParent(name)
                }
                manifest.entries[name] = entry
            case .value(let data):
                if data.count <= Self.inlineLimit || (write.inlineChannels.contains(name) && data.count <= 4 * Self.inlineLimit) {
                    manifest.entries[name] = .inline(data)
                } else {
                    manifest.entries[name] = .stored(version: write.id)
                    payloads.append(Payload(channel: name, version: write.id, data: data))
                }
            case .list(let elements):
                if elements.isEmpty {
                    manifest.entries[name] = .list(ListReference(tip: nil, count: 0))
                } else {
                    manifest.entries[name] = .list(ListReference(tip: write.id, count: elements.count))
                    segments.append(
                        Segment(channel: name, segment: ListSegment(id: write.id, previous: nil, elements: elements)))
                }
            case .append(let elements):
                guard case .list(let reference)? = parent?.entries[name] else {
                    throw ChannelWriteErrors.appendWithoutList(name)
                }
                guard !elements.isEmpty else {
                    manifest.entries[name] = .list(reference)
                    continue
                }
                // The parent's count comes from stored bytes: a damaged one must not trap here.
                let (count, overflow) = reference.count.addingReportingOverflow(elements.count)
                guard !overflow else {
                    throw CheckpointError(
                        .corruptData, "channel '\(name)': the parent's list has a damaged element count (\(reference.count))")
                }
                manifest.entries[name] = .list(ListReference(tip: write.id, count: count))
                segments.append(
                    Segment(
                        channel: name, segment: ListSegment(id: write.id, previous: reference.tip, elements: elements)))
            }
        }
        self.manifest = manifest
        self.payloads = payloads
        self.segments = segments
    }
}

// MARK: - Row blobs

// A backend that stores one row per checkpoint keeps what the checkpoint wrote in two blobs
// beside the manifest: the list segments it appended and the values it stored, each framed
// by channel name. A list is then read with one range scan over the rows, newest first from its
// tip, and a stored value with one lookup of the row that wrote it.

extension ResolvedWrite {
    /// The list segments this write appends, as one blob, or `nil` when it appends none.
    /// A segment's previous segment is usually the parent checkpoint's: that case takes one byte.
    package func encodedSegments(parentID: CheckpointID?) -> Data? {
        guard !segments.isEmpty else { return nil }
        var writer = ByteWriter()
        writer.writeVarint(UInt64(segments.count))
        for entry in segments.sorted(by: { $0.channel < $1.channel }) {
            writer.writeBytes(Data(entry.channel.utf8))
            switch entry.segment.previous {
            case nil: writer.writeByte(0)
            case let previous? where previous == parentID: writer.writeByte(1)
            case let previous?:
                writer.writeByte(2)
                writer.writeID(previous)
            }
            writer.writeVarint(UInt64(entry.segment.elements.count))
            for element in entry.segment.elements { writer.writeBytes(element) }
        }
        return writer.data
    }

    /// The values this write stores, as one blob, or `nil` when it stores none.
    package func encodedPayloads() -> Data? {
        guard !payloads.isEmpty else { return nil }
        var writer = ByteWriter()
        writer.writeVarint(UInt64(payloads.count))
        for payload in payloads.sorted(by: { $0.channel < $1.channel }) {
            writer.writeBytes(Data(payload.channel.utf8))
            writer.writeBytes(payload.data)
        }
        return writer.data
    }
}

/// Reads the blobs written by ``ResolvedWrite/encodedSegments(parentID:)`` and
/// ``ResolvedWrite/encodedPayloads()``.
package enum RowBlobs {
    /// The segment a row appended to `channel`, if it appended one.
    package static func segment(
        in data: Data, channel: String, rowID: CheckpointID, parentID: CheckpointID?
    ) throws(CheckpointError) -> ListSegment? {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        let wanted = Data(channel.utf8)
        for _ in 0..<count {
            let name = try reader.readBytes()
            let previous: CheckpointID?
            switch try reader.readByte() {
            case 0: previous = nil
            case 1:
                guard let parentID else { throw ByteReader.corrupt }
                previous = parentID
            case 2: previous = try reader.readID()
            default: throw ByteReader.corrupt
            }
            let elementCount = try reader.readVarint()
            guard elementCount <= UInt64(data.count) else { throw ByteReader.corrupt }
            if name == wanted {
                var elements: [Data] = []
                elements.reserveCapacity(Int(elementCount))
                for _ in 0..<elementCount { elements.append(try reader.readBytes()) }
                return ListSegment(id: rowID, previous: previous, elements: elements)
            }
            for _ in 0..<elementCount { _ = try reader.readBytes() }
        }
        return nil
    }

    /// The value a row stored for `channel`, if it stored one.
    package static func payload(in data: Data, channel: String) throws(CheckpointError) -> Data? {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        let wanted = Data(channel.utf8)
        for _ in 0..<count {
            let name = try reader.readBytes()
            let value = try reader.readBytes()
            if name == wanted { return value }
        }
        return nil
    }
}

extension Manifest {
    /// Whether the write needs the parent's manifest to be resolved.
    package static func writeNeedsParent(_ write: CheckpointWrite) -> Bool {
        write.channels.values.contains { channelWrite in
            switch channelWrite {
            case .unchanged, .append: true
            case .value, .list: false
            }
        }
    }

    /// Rebuilds channel contents from the manifest.
    ///
    /// - Parameters:
    ///   - payload: fetches a stored value by channel and version.
    ///   - list: fetches a non-empty list's elements, given its reference.
    package func materialize(
        payload: (_ channel: String, _ version: CheckpointID) throws -> Data?,
        list: (_ channel: String, _ reference: ListReference, _ tip: CheckpointID) throws -> [Data]
    ) throws -> [String: ChannelValue] {
        var channels: [String: ChannelValue] = [:]
        channels.reserveCapacity(entries.count)
        for (name, entry) in entries {
            switch entry {
            case .inline(let data):
                channels[name] = .value(data)
            case .stored(let version):
                guard let data = try payload(name, version) else {
                    throw CheckpointError(.corruptData, "channel '\(name)' refers to a value that is not stored")
                }
                channels[name] = .value(data)
            case .list(let reference):
                guard let tip = reference.tip else {
                    channels[name] = .list([])
                    continue
                }
                channels[name] = .list(try list(name, reference, tip))
            }
        }
        return channels
    }
}

/// Collects a list's segments from its tip back to its first, from rows offered newest first
/// (rows of other branches or other channels are skipped), and joins their elements.
package struct ListChain {
    private let channel: String
    private let reference: ListReference
    private var expected: CheckpointID?
    private var segments: [ListSegment] = []
    private var elementCount = 0

    package init(channel: String, reference: ListReference) {
        self.channel = channel
        self.reference = reference
        self.expected = reference.tip
    }

    /// The id of the next segment the chain needs, or `nil` once it is complete.
    package var next: CheckpointID? { expected }

    /// Offers the segment of the row with id `expected`; returns whether the chain is complete.
    package mutating func add(_ segment: ListSegment) throws(CheckpointError) -> Bool {
        guard segment.id == expected else { return expected == nil }
        segments.append(segment)
        elementCount += segment.elements.count
        expected = segment.previous
        guard elementCount <= reference.count else { throw Self.broken(channel) }
        return expected == nil
    }

    /// The shorter lists this one extends: each earlier segment's id with the number of
    /// elements up to and including it, newest first (at most ``ListOrigin/ancestorLimit``).
    package var ancestors: [ListReference] {
        guard expected == nil else { return [] }
        var ancestors: [ListReference] = []
        var count = elementCount  // the elements of segments[index...]
        for (index, segment) in segments.enumerated() {
            if index > 0 {
                ancestors.append(ListReference(tip: segment.id, count: count))
                if ancestors.count == ListOrigin.ancestorLimit { break }
            }
            count -= segment.elements.count
        }
        return ancestors
    }

    /// The elements in order.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when the chain is incomplete or holds
    ///   another number of elements than the manifest says.
    package func elements() throws(CheckpointError) -> [Data] {
        guard expected == nil, elementCount == reference.count else { throw Self.broken(channel) }
        var elements: [Data] = []
        elements.reserveCapacity(elementCount)
        for segment in segments.reversed() { elements.append(contentsOf: segment.elements) }
        return elements
    }

    private static func broken(_ channel: String) -> CheckpointError {
        CheckpointError(.corruptData, "list channel '\(channel)' has a broken segment chain")
    }
}

// MARK: - Binary helpers

package struct ByteWriter {
    /// The bytes written so far. (Appending to an array is much cheaper than to `Data`.)
    package var bytes: [UInt8] = []

    package init() {}

    /// The bytes written so far, as `Data`.
    package var data: Data { Data(bytes) }

    package mutating func writeByte(_ byte: UInt8) { bytes.append(byte) }

    package mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    package mutating func writeBytes(_ data: Data) {
        writeVarint(UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    package mutating func writeReference(_ id: CheckpointID, owner: CheckpointID) {
        if id == owner {
            writeByte(0)
        } else {
            writeByte(1)
            writeID(id)
        }
    }

    package mutating func writeID(_ id: CheckpointID) {
        withUnsafeBytes(of: id.high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: id.low.bigEndian) { bytes.append(contentsOf: $0) }
    }
}

package struct ByteReader {
    private let data: Data
    private var offset: Data.Index

    /// The error of bytes that end early or hold an impossible value.
    package static let corrupt = CheckpointError(.corruptData, "stored bytes are truncated or malformed")

    package init(_ data: Data) {
        self.data = data
        self.offset = data.startIndex
    }

    package var isAtEnd: Bool { offset == data.endIndex }

    package mutating func readByte() throws(CheckpointError) -> UInt8 {
        guard offset < data.endIndex else { throw Self.corrupt }
        defer { offset += 1 }
        return data[offset]
    }

    package mutating func readVarint() throws(CheckpointError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            guard shift < 64 else { throw Self.corrupt }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    package mutating func readBytes() throws(CheckpointError) -> Data {
        let count = try readVarint()
        guard count <= UInt64(data.endIndex - offset) else { throw Self.corrupt }
        let end = offset + Int(count)
        defer { offset = end }
        return data[offset..<end]
    }

    package mutating func readReference(owner: CheckpointID) throws(CheckpointError) -> CheckpointID {
        switch try readByte() {
        case 0: return owner
        case 1: return try readID()
        default: throw Self.corrupt
        }
    }

    package mutating func readID() throws(CheckpointError) -> CheckpointID {
        guard data.endIndex - offset >= 16 else { throw Self.corrupt }
        defer { offset += 16 }
        let start = offset - data.startIndex
        return data.withUnsafeBytes { CheckpointID(UnsafeRawBufferPointer(rebasing: $0[start..<start + 16])) }
    }
}

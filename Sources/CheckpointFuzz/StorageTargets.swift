import Checkpointing
import CheckpointRuntime
import Foundation

// Targets for the bytes the SQLite and Postgres backends store in a checkpoint's row: its
// manifest, its segments and payload blobs (and the retention helpers that rewrite them), list
// elements, its pause, its metadata.

/// Manifests, list segments and payloads of a small thread, made by the library.
enum StoredSamples {
    /// A first checkpoint (parent) and its child, which keeps, appends to and replaces channels.
    static func writes() throws -> (parent: ResolvedWrite, child: ResolvedWrite) {
        let parentWrite = CheckpointWrite(
            id: Fixed.parent, thread: Fixed.thread, namespace: Fixed.namespace, parentID: Fixed.older, step: 1,
            channels: [
                "messages": .list([bytes(#"{"role":"user","text":"hi"}"#), bytes("2")]),
                "document": .value(Data(repeating: UInt8(ascii: "d"), count: 120)),
                "turn": .value(bytes("1")),
                "notes": .list([]),
                "café": .value(bytes(#""é""#)),
            ])
        let parent = try ResolvedWrite(parentWrite, parent: nil)
        let childWrite = CheckpointWrite(
            id: Fixed.owner, thread: Fixed.thread, namespace: Fixed.namespace, parentID: Fixed.parent, step: 2,
            channels: [
                "messages": .append([bytes(#"{"role":"assistant","text":"hello"}"#)]),
                "document": .unchanged,
                "turn": .value(bytes("2")),
                "notes": .append([bytes("[]"), Data()]),
                "café": .unchanged,
                "big": .value(Data(repeating: 0xEE, count: 64)),
                "": .value(Data([0x00, 0xFF])),
            ])
        return (parent, try ResolvedWrite(childWrite, parent: parent.manifest))
    }

    /// A segments blob whose segment names a previous one that is not the parent (tag 2).
    static func segmentsAfterAnOlderRow() -> Data? {
        let write = CheckpointWrite(
            id: Fixed.owner, thread: Fixed.thread, parentID: Fixed.parent, step: 2,
            channels: ["messages": .append([bytes("x")])])
        let resolved = try? ResolvedWrite(
            write,
            parent: Manifest(entries: ["messages": .list(ListReference(tip: Fixed.older, count: 3))]))
        return resolved?.encodedSegments(parentID: Fixed.parent)
    }
}

/// The channel names a target looks up besides those it finds in the bytes.
private let probedChannels = ["messages", "document", "notes", "turn", "big", "café", "", "x"]

/// Reads `count` then `count` entries of (name, rest) with `ByteReader`, the harness's own
/// reading of a blob, to compare the library's answers with.
private struct BlobModel {
    struct SegmentEntry {
        var name: Data
        var tag: UInt8
        var previous: CheckpointID?
        var elements: [Data]
    }

    /// The segments blob as written by `ResolvedWrite.encodedSegments`, or `nil` when it is
    /// not one (a bad tag, truncated, or trailing bytes).
    static func segments(_ data: Data) -> [SegmentEntry]? {
        var reader = ByteReader(data)
        guard let count = try? reader.readVarint(), count <= UInt64(data.count) else { return nil }
        var entries: [SegmentEntry] = []
        for _ in 0..<count {
            guard let name = try? reader.readBytes(), let tag = try? reader.readByte() else { return nil }
            var previous: CheckpointID?
            switch tag {
            case 0, 1: break
            case 2:
                guard let id = try? reader.readID() else { return nil }
                previous = id
            default: return nil
            }
            guard let elementCount = try? reader.readVarint(), elementCount <= UInt64(data.count) else { return nil }
            var elements: [Data] = []
            for _ in 0..<elementCount {
                guard let element = try? reader.readBytes() else { return nil }
                elements.append(element)
            }
            entries.append(SegmentEntry(name: name, tag: tag, previous: previous, elements: elements))
        }
        return reader.isAtEnd ? entries : nil
    }

    /// The payloads blob as written by `ResolvedWrite.encodedPayloads`, or `nil`.
    static func payloads(_ data: Data) -> [(name: Data, value: Data)]? {
        var reader = ByteReader(data)
        guard let count = try? reader.readVarint(), count <= UInt64(data.count) else { return nil }
        var entries: [(Data, Data)] = []
        for _ in 0..<count {
            guard let name = try? reader.readBytes(), let value = try? reader.readBytes() else { return nil }
            entries.append((name, value))
        }
        return reader.isAtEnd ? entries : nil
    }
}

/// A channel name whose UTF-8 is exactly `name` (so that looking it up asks for these bytes).
private func exactName(_ name: Data) -> String? {
    guard let text = String(data: name, encoding: .utf8), Data(text.utf8) == name else { return nil }
    return text
}

private func fingerprint(_ segment: ListSegment?) -> Data {
    var print = Fingerprint()
    if let segment {
        print.add(segment.id)
        print.add(segment.previous)
        print.add(UInt64(segment.elements.count))
        for element in segment.elements { print.add(element) }
    } else {
        print.add("none")
    }
    return print.data
}

extension FuzzTarget {
    static let manifest = FuzzTarget(
        "manifest", "Manifest(decoding:owner:), then a write resolved against it and retention over it",
        seeds: {
            let (parent, child) = try StoredSamples.writes()
            return [
                parent.manifest.encoded(owner: Fixed.parent), child.manifest.encoded(owner: Fixed.owner),
                parent.manifest.encoded(owner: Fixed.owner), Manifest().encoded(owner: Fixed.owner),
                Manifest(entries: ["l": .list(ListReference(tip: Fixed.owner, count: Int.max))]).encoded(owner: Fixed.owner),
            ]
        }
    ) { input throws(Finding) in
        let manifest: Manifest
        switch try attempt("Manifest(decoding:)", [.corruptData], { try Manifest(decoding: input, owner: Fixed.owner) }) {
        case .failure(let error): return rejected(error)
        case .success(let decoded): manifest = decoded
        }
        // Round trip: the encoding decodes to the same manifest, and is a fixed point.
        let encoded = manifest.encoded(owner: Fixed.owner)
        let again = try must("decoding a re-encoded manifest") { try Manifest(decoding: encoded, owner: Fixed.owner) }
        try check(again == manifest, "a re-encoded manifest decodes to another manifest")
        try check(again.encoded(owner: Fixed.owner) == encoded, "a manifest's encoding is not a fixed point")
        for (name, entry) in manifest.entries {
            if case .list(let reference) = entry {
                try check(reference.count >= 0, "list '\(name)' has a negative count")
                try check(reference.tip != nil || reference.count == 0, "a list without segments has a count")
            }
        }
        // The next save resolves against it as its parent: keeps every channel, appends to every
        // list, replaces one value. It may refuse (typed), never trap.
        var channels: [String: ChannelWrite] = ["fuzz-new": .value(bytes("1"))]
        for (name, entry) in manifest.entries {
            if case .list = entry { channels[name] = .append([bytes("a")]) } else { channels[name] = .unchanged }
        }
        let next = CheckpointWrite(
            id: CheckpointID.make(after: Fixed.owner), thread: Fixed.thread, parentID: Fixed.owner, step: 3,
            channels: channels)
        if case .success(let resolved) = try attempt(
            "resolving a write against a decoded manifest", [.corruptData], { try ResolvedWrite(next, parent: manifest) })
        {
            try check(resolved.manifest.entries.count == manifest.entries.count + (manifest.entries["fuzz-new"] == nil ? 1 : 0),
                "a resolved write lost a channel")
            _ = resolved.encodedSegments(parentID: Fixed.owner)
        }
        // Retention over a thread whose head has this manifest.
        let plan = RetentionPlan(
            rows: [
                RetentionRow(id: Fixed.owner, manifest: manifest, awaitsAnswer: false, links: [:]),
                RetentionRow(id: Fixed.parent, manifest: nil, awaitsAnswer: false, links: ["messages": Fixed.older]),
            ], keepingLatest: 1)
        try check(plan.keep.contains(Fixed.owner), "retention dropped the newest checkpoint")
        return .decoded(encoded)
    }

    static let segments = FuzzTarget(
        "segments", "RowBlobs.segment, RowBlobs.links and RowBlobs.keepingSegments over a row's segments blob",
        seeds: {
            let (parent, child) = try StoredSamples.writes()
            return [
                parent.encodedSegments(parentID: Fixed.older), child.encodedSegments(parentID: Fixed.parent),
                child.encodedSegments(parentID: nil), StoredSamples.segmentsAfterAnOlderRow(), Data([0]),
            ].compactMap { $0 }
        }
    ) { input throws(Finding) in
        var print = Fingerprint()
        let model = BlobModel.segments(input)
        var names = probedChannels
        for entry in model ?? [] { if let name = exactName(entry.name) { names.append(name) } }
        for name in names {
            for parentID in [Fixed.parent, nil] {
                let result = try attempt("RowBlobs.segment", [.corruptData]) {
                    try RowBlobs.segment(in: input, channel: name, rowID: Fixed.owner, parentID: parentID)
                }
                switch result {
                case .failure(let error): print.add(error.code.description)
                case .success(let segment): print.add(fingerprint(segment))
                }
                // A well-formed blob: the segment is its first entry of that name, as written;
                // an entry that names the parent, when there is none, is refused on the way.
                if let model {
                    let wanted = Data(name.utf8)
                    let index = model.firstIndex { $0.name == wanted }
                    let scanned = index.map { model[...$0] } ?? model[...]
                    let refused = parentID == nil && scanned.contains { $0.tag == 1 }
                    switch result {
                    case .failure:
                        try check(refused, "RowBlobs.segment refused a well-formed blob for '\(name)'")
                    case .success(let segment):
                        try check(!refused, "RowBlobs.segment accepted a segment after the parent's without a parent")
                        if let index {
                            let entry = model[index]
                            let previous = entry.tag == 0 ? nil : entry.tag == 1 ? parentID : entry.previous
                            try check(
                                segment?.elements == entry.elements && segment?.previous == previous
                                    && segment?.id == Fixed.owner,
                                "RowBlobs.segment read '\(name)' differently from how it is framed")
                        } else {
                            try check(segment == nil, "RowBlobs.segment found '\(name)', which the blob does not hold")
                        }
                    }
                }
            }
        }
        let links = try attempt("RowBlobs.links", [.corruptData]) { try RowBlobs.links(in: input, parentID: Fixed.parent) }
        switch links {
        case .failure(let error): print.add(error.code.description)
        case .success(let links):
            for name in links.keys.sorted() {
                print.add(name)
                print.add(links[name] ?? nil)
            }
        }
        let all = Set(names)
        let kept = try attempt("RowBlobs.keepingSegments", [.corruptData]) { try RowBlobs.keepingSegments(input, of: all) }
        if case .success(let blob?) = kept {
            print.add(blob)
            // What retention keeps reads back the same.
            if let model, case .success(let links) = links {
                let again = try must("RowBlobs.links over kept segments") { try RowBlobs.links(in: blob, parentID: Fixed.parent) }
                try check(again.keys.allSatisfy { links[$0] != nil }, "kept segments name a channel the row did not have")
                for entry in model {
                    guard let name = exactName(entry.name), all.contains(name) else { continue }
                    let before = try must("RowBlobs.segment") {
                        try RowBlobs.segment(in: input, channel: name, rowID: Fixed.owner, parentID: Fixed.parent)
                    }
                    let after = try must("RowBlobs.segment over kept segments") {
                        try RowBlobs.segment(in: blob, channel: name, rowID: Fixed.owner, parentID: Fixed.parent)
                    }
                    try check(before == after, "retention changed the segment of '\(name)'")
                }
            }
        }
        return print.outcome(decoded: model != nil)
    }

    static let payloads = FuzzTarget(
        "payloads", "RowBlobs.payload and RowBlobs.keepingPayloads over a row's payload blob",
        seeds: {
            let (parent, child) = try StoredSamples.writes()
            return [parent.encodedPayloads(), child.encodedPayloads(), Data([0])].compactMap { $0 }
        }
    ) { input throws(Finding) in
        var print = Fingerprint()
        let model = BlobModel.payloads(input)
        var names = probedChannels
        for entry in model ?? [] { if let name = exactName(entry.name) { names.append(name) } }
        for name in names {
            let result = try attempt("RowBlobs.payload", [.corruptData]) { try RowBlobs.payload(in: input, channel: name) }
            switch result {
            case .failure(let error): print.add(error.code.description)
            case .success(let value): print.add(value.map { Data([1]) + $0 } ?? Data([0]))
            }
            if let model {
                let expected = model.first { $0.name == Data(name.utf8) }?.value
                guard case .success(let value) = result, value == expected else {
                    throw Finding("RowBlobs.payload read '\(name)' differently from how it is framed")
                }
            }
        }
        let kept = try attempt("RowBlobs.keepingPayloads", [.corruptData]) { try RowBlobs.keepingPayloads(input, of: Set(names)) }
        if case .success(let blob?) = kept {
            print.add(blob)
            if model != nil {
                for name in names {
                    let before = try must("RowBlobs.payload") { try RowBlobs.payload(in: input, channel: name) }
                    let after = try must("RowBlobs.payload over kept payloads") { try RowBlobs.payload(in: blob, channel: name) }
                    try check(before == after, "retention changed the value of '\(name)'")
                }
            }
        }
        return print.outcome(decoded: model != nil)
    }

    static let elements = FuzzTarget(
        "elements", "ListSegment.decodeElements",
        seeds: {
            [
                ListSegment(id: Fixed.owner, previous: nil, elements: [bytes("x"), Data()]).encodedElements(),
                ListSegment(id: Fixed.owner, previous: nil, elements: []).encodedElements(),
                ListSegment(id: Fixed.owner, previous: Fixed.parent, elements: (0..<20).map { bytes("element \($0)") })
                    .encodedElements(),
            ]
        }
    ) { input throws(Finding) in
        let elements: [Data]
        switch try attempt("ListSegment.decodeElements", [.corruptData], { try ListSegment.decodeElements(input) }) {
        case .failure(let error): return rejected(error)
        case .success(let decoded): elements = decoded
        }
        let encoded = ListSegment(id: Fixed.owner, previous: nil, elements: elements).encodedElements()
        let again = try must("decoding re-encoded elements") { try ListSegment.decodeElements(encoded) }
        try check(again == elements, "re-encoded elements decode differently")
        return .decoded(encoded)
    }
}

// MARK: - Reading a list back through its rows

/// A table of rows as a backend holds them, framed by the harness: the materialize target
/// reads a head through it with `Manifest.materialize(scope:cache:payloadBlob:segmentRows:)`,
/// as the SQLite and Postgres backends do.
private struct RowTable {
    struct Row {
        var id: CheckpointID
        var parentID: CheckpointID?
        var manifest: Data?
        var segments: Data?
        var payloads: Data?
    }

    var rows: [Row] = []
    var head: CheckpointID

    /// `varint count`, then per row: id index, parent index (0xFF: none), manifest, segments,
    /// payloads (each length-prefixed; empty: none); then the head's index.
    init?(_ data: Data) {
        var reader = ByteReader(data)
        guard let count = try? reader.readVarint(), count <= 16 else { return nil }
        for _ in 0..<count {
            guard let id = try? reader.readByte(), let parent = try? reader.readByte(),
                let manifest = try? reader.readBytes(), let segments = try? reader.readBytes(),
                let payloads = try? reader.readBytes()
            else { return nil }
            rows.append(
                Row(
                    id: Fixed.rowID(id), parentID: parent == 0xFF ? nil : Fixed.rowID(parent),
                    manifest: manifest.isEmpty ? nil : manifest, segments: segments.isEmpty ? nil : segments,
                    payloads: payloads.isEmpty ? nil : payloads))
        }
        guard let head = try? reader.readByte() else { return nil }
        self.head = Fixed.rowID(head)
    }

    init(rows: [Row], head: CheckpointID) {
        self.rows = rows
        self.head = head
    }

    var encoded: Data {
        var writer = ByteWriter()
        writer.writeVarint(UInt64(rows.count))
        for row in rows {
            writer.writeByte(UInt8(truncatingIfNeeded: row.id.low))
            writer.writeByte(row.parentID.map { UInt8(truncatingIfNeeded: $0.low) } ?? 0xFF)
            writer.writeBytes(row.manifest ?? Data())
            writer.writeBytes(row.segments ?? Data())
            writer.writeBytes(row.payloads ?? Data())
        }
        writer.writeByte(UInt8(truncatingIfNeeded: head.low))
        return writer.data
    }

    /// A thread of three saves, as the SQLite backend stores it.
    static func sample() throws -> RowTable {
        var rows: [Row] = []
        var parent: ResolvedWrite?
        var parentID: CheckpointID?
        for index in UInt8(1)...3 {
            let id = Fixed.rowID(index)
            var channels: [String: ChannelWrite] = [
                "turn": .value(bytes("\(index)")),
                "messages": parent == nil ? .list([bytes("m0")]) : .append([bytes("m\(index)"), bytes("n\(index)")]),
            ]
            channels["document"] = index == 2 ? .unchanged : .value(Data(repeating: index, count: 40))
            let write = CheckpointWrite(id: id, thread: Fixed.thread, parentID: parentID, step: Int(index), channels: channels)
            let resolved = try ResolvedWrite(write, parent: parent?.manifest)
            rows.append(
                Row(
                    id: id, parentID: parentID, manifest: resolved.manifest.encoded(owner: id),
                    segments: resolved.encodedSegments(parentID: parentID), payloads: resolved.encodedPayloads()))
            parent = resolved
            parentID = id
        }
        return RowTable(rows: rows, head: Fixed.rowID(3))
    }

    /// Reads the head's channels as a backend does.
    func materialize(cache: ContentCache) throws -> [String: ChannelValue]? {
        guard let head = rows.first(where: { $0.id == head }), let bytes = head.manifest else { return nil }
        let manifest = try Manifest(decoding: bytes, owner: head.id)
        return try manifest.materialize(
            scope: 1, cache: cache,
            payloadBlob: { rowID in rows.first { $0.id == rowID }?.payloads },
            segmentRows: { tip, visit in
                let scan = rows.filter { $0.id <= tip && $0.segments != nil }.sorted { $0.id > $1.id }
                for row in scan {
                    guard let segments = row.segments else { continue }
                    if try visit(row.id, row.parentID, segments) { break }
                }
            })
    }
}

private func fingerprint(_ channels: [String: ChannelValue]?) -> Data {
    var print = Fingerprint()
    guard let channels else {
        print.add("no head")
        return print.data
    }
    for name in channels.keys.sorted() {
        print.add(name)
        switch channels[name] {
        case .value(let data)?:
            print.add(0)
            print.add(data)
        case .list(let elements)?:
            print.add(1)
            print.add(UInt64(elements.count))
            for element in elements { print.add(element) }
        case nil: break
        }
    }
    return print.data
}

extension FuzzTarget {
    static let materialize = FuzzTarget(
        "materialize", "a head read through its rows: Manifest.materialize with the content cache, ListChain, RowBlobs",
        seeds: {
            let table = try RowTable.sample()
            var broken = table
            broken.rows.removeFirst()  // a list whose first segment is gone
            var looped = table
            looped.rows[0].parentID = Fixed.rowID(3)
            return [table.encoded, broken.encoded, looped.encoded]
        }
    ) { input throws(Finding) in
        guard let table = RowTable(input) else { return .rejected("not a table") }
        let cache = ContentCache(capacity: 1 << 20)
        let first = try attempt("materializing a head", [.corruptData]) { try table.materialize(cache: cache) }
        switch first {
        case .failure(let error): return rejected(error)
        case .success(let channels):
            // Read again: this time lists and values come from the content cache.
            let second = try must("materializing a head again, from the cache") { try table.materialize(cache: cache) }
            let print = fingerprint(channels)
            try check(fingerprint(second) == print, "a head read from the content cache differs from one read from its rows")
            if let channels { decodeState(channels) }
            return .decoded(print)
        }
    }
}

// MARK: - Pauses and metadata

extension FuzzTarget {
    static let pause = FuzzTarget(
        "pause", "Pause(decoding:)",
        seeds: {
            let id = UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
            return [
                try Pause(id: id, reason: "refund-approval", prompt: bytes(#"{"amount":42}"#), createdAt: Fixed.date).encoded(),
                try Pause(
                    id: id, reason: "café ☕️", prompt: Data(), createdAt: Fixed.date,
                    expiresAt: Fixed.date.addingTimeInterval(86_400)
                ).encoded(),
                try Pause(
                    id: id, reason: String(repeating: "r", count: Pause.maximumReasonByteCount),
                    prompt: Data(repeating: 1, count: 200), createdAt: Date(timeIntervalSinceReferenceDate: -1e300)
                ).encoded(),
            ]
        }
    ) { input throws(Finding) in
        let pause: Pause
        switch try attempt("Pause(decoding:)", [.corruptData], { try Pause(decoding: input) }) {
        case .failure(let error): return rejected(error)
        case .success(let decoded): pause = decoded
        }
        let encoded = pause.encoded()
        let again = try must("decoding a re-encoded pause") { try Pause(decoding: encoded) }
        try check(
            again.id == pause.id && BytewiseString.equal(again.reason, pause.reason) && again.prompt == pause.prompt,
            "a re-encoded pause decodes to another pause")
        try check(
            again.createdAt.timeIntervalSinceReferenceDate.bitPattern == pause.createdAt.timeIntervalSinceReferenceDate.bitPattern
                && again.expiresAt?.timeIntervalSinceReferenceDate.bitPattern
                    == pause.expiresAt?.timeIntervalSinceReferenceDate.bitPattern,
            "a re-encoded pause has other times")
        try check(again.encoded() == encoded, "a pause's encoding is not a fixed point")
        _ = pause.isExpired(at: Fixed.date)
        return .decoded(encoded)
    }

    static let metadata = FuzzTarget(
        "metadata", "Metadata.decodeJSON (a row's metadata column), then re-encoding it",
        dictionary: [
            "{", "}", "[", "]", ":", ",", "\"", "\\u0000", "\\ud800", "\\u00e9", "e\\u0301", "1e999", "-1e999", "1e-999",
            "-0", "0.1", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "true", "null", "é",
            "e\u{301}",
        ],
        seeds: {
            [
                try ["turn": 2, "kind": "even", "final": true, "weight": 3.5, "none": nil, "é": "NFC"].jsonData(),
                try Metadata().jsonData(),
                bytes(#"{"big":9223372036854775807,"small":-9223372036854775808,"f":1.7976931348623157e308}"#),
                bytes(#"{"café":1,"cafe\u0301":2}"#), bytes(#"{"a":1,"a":2}"#), bytes(#"{"a":{"b":1}}"#), bytes("[1]"),
                bytes(#"{"a":1e999}"#), bytes(#"{"a":"\ud800"}"#), bytes(#"{"a":-0.0}"#), bytes(#"{"a":5.0}"#),
                bytes(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)),
                bytes(#"{"a":"#) + bytes(String(repeating: "[", count: 600)),
            ]
        }
    ) { input throws(Finding) in
        let metadata: Metadata
        switch try attempt("Metadata.decodeJSON", [.corruptData], { try Metadata.decodeJSON(input) }) {
        case .failure(let error): return rejected(error)
        case .success(let decoded): metadata = decoded
        }
        // Metadata that reads back must write again (the Redis cache re-encodes what it serves),
        // and read back the same.
        let encoded = try must("re-encoding decoded metadata") { try metadata.jsonData() }
        let again = try must("decoding re-encoded metadata") { try Metadata.decodeJSON(encoded) }
        try check(again.count == metadata.count, "re-encoded metadata has \(again.count) keys, not \(metadata.count)")
        for (key, value) in metadata {
            guard let other = again[key] else { throw Finding("re-encoded metadata lost a key") }
            try check(
                other.matchesFilter(value) && value.matchesFilter(other),
                "re-encoded metadata changed a value: \(value) became \(other) (JSON \(text(encoded)))")
        }
        let twice = try must("encoding metadata twice") { try again.jsonData() }
        try check(twice == encoded, "metadata's JSON is not a fixed point")
        return .decoded(encoded)
    }
}

// MARK: - Typed state from stored channels

/// A message of ``SampleState``.
private struct SampleMessage: Codable {
    var role: String
    var text: String
}

/// A typed state like an agent's, decoded from fuzzed channels.
private struct SampleState: Codable {
    var messages: [SampleMessage]
    var turn: Int
    var document: String?
    var notes: [String]?
}

/// Decodes stored channels as the façade does (a typed state, and each channel as the
/// `JSONValue` state upgrades see): it may fail, never trap.
func decodeState(_ channels: [String: ChannelValue]) {
    _ = try? ChannelDecoding().decode(SampleState.self, from: channels)
    _ = try? ChannelDecoding().decode([String: JSONValue].self, from: channels)
    for channel in channels.values {
        switch channel {
        case .value(let data): _ = try? JSONDecoder().decode(JSONValue.self, from: data)
        case .list(let elements): _ = try? JSONDecoder().decode([JSONValue].self, from: joinedJSONArray(elements))
        }
    }
}

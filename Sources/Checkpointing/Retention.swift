import Foundation

/// Which checkpoints of a thread's namespace retention keeps in the history. Either way, a
/// checkpoint whose pause has no answer is never removed, and content that kept checkpoints
/// use stays.
public enum RetentionRule: Sendable, Hashable, CustomStringConvertible {
    /// Keeps the newest `count` checkpoints (at least 1).
    case keepingLatest(Int)
    /// Removes the checkpoints created before the date (by their
    /// ``CheckpointSummary/createdAt``); the head stays whatever its age, so a thread is never
    /// emptied by retention.
    case olderThan(Date)

    /// The rule in words, as logs and errors show it.
    public var description: String {
        switch self {
        case .keepingLatest(let count): "keep the latest \(count)"
        case .olderThan(let date): "remove older than \(date)"
        }
    }

    /// Checks the rule, shared by every backend.
    package func validate() throws(CheckpointError) {
        if case .keepingLatest(let count) = self { try validateRetention(count) }
    }
}

/// One checkpoint as retention sees it.
package struct RetentionRow: Sendable {
    package var id: CheckpointID
    /// The manifest, or `nil` for a row already removed from history (kept for its content).
    package var manifest: Manifest?
    /// Whether the checkpoint holds a pause that has no answer.
    package var awaitsAnswer: Bool
    /// For each list channel the row appended to, the segment before its own.
    package var links: [String: CheckpointID?]
    /// When the checkpoint was made (for a rule by age); `nil` for a row already removed.
    package var createdAt: Date?

    package init(
        id: CheckpointID, manifest: Manifest?, awaitsAnswer: Bool, links: [String: CheckpointID?], createdAt: Date? = nil
    ) {
        self.id = id
        self.manifest = manifest
        self.awaitsAnswer = awaitsAnswer
        self.links = links
        self.createdAt = createdAt
    }
}

/// What pruning a thread does, decided once for every backend.
///
/// The newest `count` checkpoints stay, and so does every checkpoint whose pause has no answer.
/// The others leave the history. A row that left the history is deleted unless a kept
/// checkpoint still needs some of its content (a value it stored, or its segment of a list):
/// then only its manifest goes, and only the content still needed stays.
package struct RetentionPlan: Sendable {
    /// Checkpoints that stay in the history.
    package var keep: Set<CheckpointID> = []
    /// Rows that leave the history but keep some content: the channels whose stored value and
    /// whose list segment stay.
    package var tombstone: [CheckpointID: (values: Set<String>, segments: Set<String>)] = [:]
    /// Rows deleted whole.
    package var delete: Set<CheckpointID> = []
    /// How many checkpoints left the history.
    package var removedFromHistory = 0

    package init(rows: [RetentionRow], keepingLatest count: Int) {
        self.init(rows: rows, rule: .keepingLatest(count))
    }

    package init(rows: [RetentionRow], rule: RetentionRule) {
        let live = rows.filter { $0.manifest != nil }.sorted { $0.id > $1.id }
        let kept: [RetentionRow] =
            switch rule {
            case .keepingLatest(let count): Array(live.prefix(count))
            case .olderThan(let date): Array(live.prefix(1)) + live.dropFirst().filter { ($0.createdAt ?? .distantPast) >= date }
            }
        keep = Set(kept.map(\.id)).union(live.filter(\.awaitsAnswer).map(\.id))
        let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var values: [CheckpointID: Set<String>] = [:]
        var segments: [CheckpointID: Set<String>] = [:]
        for row in live where keep.contains(row.id) {
            for (channel, entry) in row.manifest?.entries ?? [:] {
                switch entry {
                case .inline: break
                case .stored(let version): values[version, default: []].insert(channel)
                case .list(let reference):
                    // Each chain is followed once, however many kept lists share it.
                    var cursor = reference.tip
                    while let id = cursor, segments[id, default: []].insert(channel).inserted {
                        guard let link = byID[id]?.links[channel] else { break }
                        cursor = link
                    }
                }
            }
        }
        for row in rows where !keep.contains(row.id) {
            if row.manifest != nil { removedFromHistory += 1 }
            let keptValues = values[row.id] ?? []
            let keptSegments = segments[row.id] ?? []
            if keptValues.isEmpty && keptSegments.isEmpty {
                delete.insert(row.id)
            } else {
                tombstone[row.id] = (keptValues, keptSegments)
            }
        }
    }
}

extension RowBlobs {
    /// For each list channel a row appended to, the segment before its own.
    package static func links(in data: Data, parentID: CheckpointID?) throws(CheckpointError) -> [String: CheckpointID?] {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        var links: [String: CheckpointID?] = [:]
        for _ in 0..<count {
            guard let name = String(data: try reader.readBytes(), encoding: .utf8) else { throw ByteReader.corrupt }
            switch try reader.readByte() {
            case 0: links[name] = .some(nil)
            case 1:
                guard let parentID else { throw ByteReader.corrupt }
                links[name] = parentID
            case 2: links[name] = try reader.readID()
            default: throw ByteReader.corrupt
            }
            let elements = try reader.readVarint()
            for _ in 0..<elements { _ = try reader.readBytes() }
        }
        return links
    }
}

/// Checks a retention count, shared by every backend.
package func validateRetention(_ count: Int) throws(CheckpointError) {
    guard count >= 1 else {
        throw CheckpointError(.invalidArgument, "retention must keep at least 1 checkpoint, not \(count)")
    }
}

extension RowBlobs {
    /// The segments blob with only the entries of `channels`, or `nil` when none is left.
    package static func keepingSegments(_ data: Data, of channels: Set<String>) throws(CheckpointError) -> Data? {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        var kept = ByteWriter()
        var keptCount: UInt64 = 0
        var entries: [UInt8] = []
        for _ in 0..<count {
            var entry = ByteWriter()
            let name = try reader.readBytes()
            entry.writeBytes(name)
            let tag = try reader.readByte()
            entry.writeByte(tag)
            if tag == 2 { entry.writeID(try reader.readID()) }
            let elements = try reader.readVarint()
            entry.writeVarint(elements)
            for _ in 0..<elements { entry.writeBytes(try reader.readBytes()) }
            if let channel = String(data: name, encoding: .utf8), channels.contains(channel) {
                keptCount += 1
                entries.append(contentsOf: entry.bytes)
            }
        }
        guard keptCount > 0 else { return nil }
        kept.writeVarint(keptCount)
        kept.bytes.append(contentsOf: entries)
        return kept.data
    }

    /// The payload blob with only the values of `channels`, or `nil` when none is left.
    package static func keepingPayloads(_ data: Data, of channels: Set<String>) throws(CheckpointError) -> Data? {
        var reader = ByteReader(data)
        let count = try reader.readVarint()
        var kept: [(Data, Data)] = []
        for _ in 0..<count {
            let name = try reader.readBytes()
            let value = try reader.readBytes()
            if let channel = String(data: name, encoding: .utf8), channels.contains(channel) { kept.append((name, value)) }
        }
        guard !kept.isEmpty else { return nil }
        var writer = ByteWriter()
        writer.writeVarint(UInt64(kept.count))
        for (name, value) in kept {
            writer.writeBytes(name)
            writer.writeBytes(value)
        }
        return writer.data
    }
}

import Foundation

/// The export format of one thread's namespace: JSON Lines, versioned, the same on every
/// backend, so that a thread moves from one store to another (SQLite to Postgres) whole.
///
/// ```text
/// {"format":"swift-checkpointing.thread","namespace":"","thread":"user-42:support","version":1}
/// {"checkpoint":{"channels":{"messages":{"list":["eyJ..."]}},"createdAt":1764763200123456,"id":"0193...","metadata":{},"step":0}}
/// {"checkpoint":{...,"parent":"0193...","pause":{...},"answer":{...}}}
/// {"end":{"checkpoints":2}}
/// ```
///
/// - The first line names the format, its version, the thread and the namespace; the last one
///   counts the checkpoints, so a cut-off file is noticed.
/// - One line per checkpoint in the history, oldest first (by id), with its channels whole
///   (each value, and each list element, as base64 of the bytes the store holds: sealed values
///   stay sealed), its metadata, its pause and the pause's answer. Times are whole
///   microseconds since 1970.
/// - A checkpoint whose parent is not in the history (retention removed it) is written as a
///   root: what is exported is a history that can be imported as it is.
/// - Keys are sorted and the text has no spaces: exporting what an import wrote gives the same
///   bytes again.
///
/// A version-1 reader refuses a file of a later version rather than misread it.
public enum ThreadExport {
    /// The `format` of the first line.
    public static let formatName = "swift-checkpointing.thread"
    /// The version written; a reader accepts this version only.
    public static let version = 1

    struct Header: Codable, Equatable {
        var format: String
        var version: Int
        var thread: String
        var namespace: String
    }

    struct Channel: Codable, Equatable {
        var value: Data?
        var list: [Data]?

        init(_ value: ChannelValue) {
            switch value {
            case .value(let data): self.value = data
            case .list(let elements): list = elements
            }
        }

        func channelValue() throws(CheckpointError) -> ChannelValue {
            switch (value, list) {
            case (let value?, nil): return .value(value)
            case (nil, let list?): return .list(list)
            default: throw CheckpointError(.invalidArgument, "an exported channel holds a value or a list, not both")
            }
        }
    }

    struct PauseRecord: Codable, Equatable {
        var id: UUID
        var reason: String
        var prompt: Data
        var createdAt: Int64
        var expiresAt: Int64?
    }

    struct AnswerRecord: Codable, Equatable {
        var pauseID: UUID
        var response: Data
        var answeredAt: Int64
    }

    struct CheckpointRecord: Codable, Equatable {
        var id: String
        var parent: String?
        var step: Int
        var createdAt: Int64
        var metadata: Metadata
        var channels: [String: Channel]
        var pause: PauseRecord?
        var answer: AnswerRecord?
    }

    struct End: Codable, Equatable {
        var checkpoints: Int
    }

    /// One line: exactly one of its fields is set (the header has its own shape).
    struct Line: Codable {
        var checkpoint: CheckpointRecord?
        var end: End?
    }

    static func encode<T: Encodable>(_ value: T) throws(CheckpointError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(value)
        } catch {
            throw CheckpointError(.encodingFailed, "an export line could not be encoded: \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ line: Data, number: Int) throws(CheckpointError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: line)
        } catch let error as DecodingError {
            let reason =
                switch error {
                case .keyNotFound(let key, _): "it has no '\(key.stringValue)'"
                case .typeMismatch(_, let context), .valueNotFound(_, let context):
                    "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
                case .dataCorrupted: "it is not JSON"
                @unknown default: "it cannot be read"
                }
            throw CheckpointError(.invalidArgument, "line \(number) of the export is not a thread export line: \(reason)")
        } catch {
            throw CheckpointError(.invalidArgument, "line \(number) of the export cannot be read")
        }
    }
}

/// What an export or an import did.
public struct ThreadTransferSummary: Sendable, Hashable {
    /// The thread.
    public var thread: ThreadID
    /// Its namespace.
    public var namespace: String
    /// The checkpoints written (by an import: those the target did not hold yet).
    public var checkpointCount: Int
    /// Checkpoints an import found already stored (a copy that goes on after an interruption).
    public var skippedCount: Int
    /// Answers an import recorded.
    public var answerCount: Int

    /// Creates a summary.
    public init(thread: ThreadID, namespace: String, checkpointCount: Int = 0, skippedCount: Int = 0, answerCount: Int = 0) {
        self.thread = thread
        self.namespace = namespace
        self.checkpointCount = checkpointCount
        self.skippedCount = skippedCount
        self.answerCount = answerCount
    }
}

extension Checkpointer {
    /// Writes one thread's namespace in the ``ThreadExport`` format, a line at a time (each
    /// without its newline), oldest checkpoint first.
    ///
    /// The history is read first, then each checkpoint whole: a checkpoint saved meanwhile is
    /// not included, one pruned meanwhile fails the export with
    /// ``CheckpointError/Code/conflict`` (retryable; export again).
    ///
    /// - Throws: ``CheckpointError/Code/notFound`` for a thread with no checkpoint in the
    ///   namespace; what the store's reads throw.
    @discardableResult
    public func export(
        thread: ThreadID, namespace: String = "", line write: (Data) async throws -> Void
    ) async throws -> ThreadTransferSummary {
        // Every read from the primary: a replica a moment behind would leave the newest
        // checkpoints out of the export without a word.
        try await ReadConsistency.readingLatest {
            try await exportFromTheLatest(thread: thread, namespace: namespace, line: write)
        }
    }

    private func exportFromTheLatest(
        thread: ThreadID, namespace: String, line write: (Data) async throws -> Void
    ) async throws -> ThreadTransferSummary {
        var summaries: [CheckpointSummary] = []
        var before: CheckpointID?
        while true {
            let page = try await history(thread: thread, namespace: namespace, before: before, limit: 500, where: [:])
            summaries += page
            guard page.count == 500, let last = page.last else { break }
            before = last.id
        }
        guard !summaries.isEmpty else {
            throw CheckpointError(.notFound, "thread '\(thread)' has no checkpoint in namespace '\(namespace)' to export")
        }
        summaries.reverse()
        let exported = Set(summaries.map(\.id))
        try await write(
            ThreadExport.encode(
                ThreadExport.Header(
                    format: ThreadExport.formatName, version: ThreadExport.version, thread: thread.rawValue,
                    namespace: namespace)))
        for summary in summaries {
            guard let checkpoint = try await checkpoint(thread: thread, namespace: namespace, id: summary.id) else {
                var error = CheckpointError(
                    .conflict, "checkpoint \(summary.id) of thread '\(thread)' was removed while it was exported")
                error.isRetryable = true
                throw error
            }
            let record = ThreadExport.CheckpointRecord(
                id: checkpoint.id.description,
                parent: checkpoint.parentID.flatMap { exported.contains($0) ? $0.description : nil },
                step: checkpoint.step, createdAt: ActivityTime.microseconds(checkpoint.createdAt),
                metadata: checkpoint.metadata, channels: checkpoint.channels.mapValues(ThreadExport.Channel.init),
                pause: checkpoint.pause.map {
                    ThreadExport.PauseRecord(
                        id: $0.id, reason: $0.reason, prompt: $0.prompt, createdAt: ActivityTime.microseconds($0.createdAt),
                        expiresAt: $0.expiresAt.map(ActivityTime.microseconds))
                },
                answer: checkpoint.answer.map {
                    ThreadExport.AnswerRecord(
                        pauseID: $0.pauseID, response: $0.response, answeredAt: ActivityTime.microseconds($0.answeredAt))
                })
            try await write(ThreadExport.encode(ThreadExport.Line(checkpoint: record)))
        }
        try await write(ThreadExport.encode(ThreadExport.Line(end: ThreadExport.End(checkpoints: summaries.count))))
        return ThreadTransferSummary(thread: thread, namespace: namespace, checkpointCount: summaries.count)
    }

    /// The export of one thread's namespace as one piece of text, lines ending in `\n`; see
    /// ``export(thread:namespace:line:)``.
    public func export(thread: ThreadID, namespace: String = "") async throws -> Data {
        var text = Data()
        try await export(thread: thread, namespace: namespace) { line in
            text.append(line)
            text.append(0x0A)
        }
        return text
    }

    /// Imports one thread's namespace from the lines of a ``ThreadExport`` (empty lines are
    /// skipped), with its ids, parents, times, metadata, pauses and answers.
    ///
    /// Checkpoints the target already holds (by id) are skipped, so an import that was
    /// interrupted goes on where it stopped when run again. A channel whose bytes equal its
    /// parent's is written as `unchanged` and a list that extends its parent's as `append`, so
    /// a store with delta storage stores a conversation's messages once.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a file that is not an export of
    ///   version ``ThreadExport/version``, is cut off, or holds a checkpoint twice or before its
    ///   parent; ``CheckpointError/Code/conflict`` when the target's namespace has a newer
    ///   checkpoint that the export does not hold (it diverged); what the store throws.
    @discardableResult
    public func importThread(lines: some Sequence<Data>) async throws -> ThreadTransferSummary {
        var number = 0
        var header: ThreadExport.Header?
        var thread: ThreadID?
        var summary: ThreadTransferSummary?
        var ended = false
        var channelsByID: [CheckpointID: [String: ChannelValue]] = [:]
        for line in lines {
            number += 1
            guard !line.isEmpty, !(line.count == 1 && line.first == 0x0D) else { continue }
            guard !ended else { throw CheckpointError(.invalidArgument, "line \(number) follows the export's end") }
            guard let known = header, let thread, var progress = summary else {
                let first = try ThreadExport.decode(ThreadExport.Header.self, line, number: number)
                guard first.format == ThreadExport.formatName else {
                    throw CheckpointError(.invalidArgument, "the file is not a thread export (format '\(first.format)')")
                }
                guard first.version == ThreadExport.version else {
                    throw CheckpointError(
                        .invalidArgument,
                        "the export has version \(first.version); this library reads version \(ThreadExport.version)")
                }
                header = first
                thread = try ThreadID(first.thread)
                summary = ThreadTransferSummary(thread: try ThreadID(first.thread), namespace: first.namespace)
                continue
            }
            let decoded = try ThreadExport.decode(ThreadExport.Line.self, line, number: number)
            if let end = decoded.end {
                guard end.checkpoints == channelsByID.count else {
                    throw CheckpointError(
                        .invalidArgument, "the export counts \(end.checkpoints) checkpoints but holds \(channelsByID.count)")
                }
                ended = true
                continue
            }
            guard let record = decoded.checkpoint else {
                throw CheckpointError(.invalidArgument, "line \(number) of the export is neither a checkpoint nor its end")
            }
            let id = try CheckpointID(parsing: record.id, line: number)
            let parentID = try record.parent.map { try CheckpointID(parsing: $0, line: number) }
            guard channelsByID[id] == nil else {
                throw CheckpointError(.invalidArgument, "line \(number) holds checkpoint \(id) a second time")
            }
            if let parentID, channelsByID[parentID] == nil {
                throw CheckpointError(.invalidArgument, "line \(number): checkpoint \(id) comes before its parent \(parentID)")
            }
            let channels = try record.channels.mapValues { try $0.channelValue() }
            channelsByID[id] = channels
            let pause = try record.pause.map {
                try Pause(
                    id: $0.id, reason: $0.reason, prompt: $0.prompt, createdAt: ActivityTime.date($0.createdAt),
                    expiresAt: $0.expiresAt.map(ActivityTime.date))
            }
            let existing = try await checkpoint(thread: thread, namespace: known.namespace, id: id)
            if existing == nil {
                var writes: [String: ChannelWrite] = [:]
                let parentChannels = parentID.flatMap { channelsByID[$0] } ?? [:]
                for (name, value) in channels { writes[name] = ChannelWrite.relative(value, to: parentChannels[name]) }
                var write = CheckpointWrite(
                    id: id, thread: thread, namespace: known.namespace, parentID: parentID, step: record.step,
                    createdAt: ActivityTime.date(record.createdAt), metadata: record.metadata, channels: writes,
                    pause: pause)
                // Small values stay beside the manifest, as a sealing façade keeps its scalars.
                write.inlineChannels = Set(writes.compactMap { name, write in
                    if case .value(let data) = write, data.count <= 4 * ResolvedWrite.inlineLimit { name } else { nil }
                })
                do {
                    try await put(write, expecting: .anyParent)
                } catch let error as CheckpointError where error.code == .invalidArgument || error.code == .conflict {
                    var diverged = CheckpointError(
                        .conflict,
                        "thread '\(thread)' in the target cannot take checkpoint \(id) of the export: \(error.message)",
                        underlying: error)
                    diverged.isRetryable = false
                    throw diverged
                }
                progress.checkpointCount += 1
            } else {
                progress.skippedCount += 1
            }
            if let answer = record.answer, existing?.answer == nil {
                try await resume(
                    thread: thread, namespace: known.namespace, pauseID: answer.pauseID, response: answer.response,
                    at: ActivityTime.date(answer.answeredAt))
                progress.answerCount += 1
            }
            summary = progress
        }
        guard let summary else { throw CheckpointError(.invalidArgument, "the export is empty") }
        guard ended else {
            throw CheckpointError(.invalidArgument, "the export of thread '\(summary.thread)' is cut off: it has no end line")
        }
        return summary
    }

    /// Imports the export in `text` (lines ending in `\n`); see ``importThread(lines:)``.
    @discardableResult
    public func importThread(_ text: Data) async throws -> ThreadTransferSummary {
        try await importThread(lines: text.split(separator: 0x0A, omittingEmptySubsequences: false).map { Data($0) })
    }
}

extension ChannelWrite {
    /// The write of `value` relative to the parent's value of the channel: `unchanged` for the
    /// same bytes, `append` for a list that extends the parent's.
    static func relative(_ value: ChannelValue, to parent: ChannelValue?) -> ChannelWrite {
        switch (value, parent) {
        case (.value(let data), .value(let old)?) where data == old: return .unchanged
        case (.list(let elements), .list(let old)?) where elements.count >= old.count && elements.starts(with: old):
            return elements.count == old.count ? .unchanged : .append(Array(elements.dropFirst(old.count)))
        case (.value(let data), _): return .value(data)
        case (.list(let elements), _): return .list(elements)
        }
    }
}

extension CheckpointID {
    init(parsing text: String, line: Int) throws(CheckpointError) {
        do {
            self = try CheckpointID(text)
        } catch {
            throw CheckpointError(.invalidArgument, "line \(line) of the export has '\(text)', which is not a checkpoint id")
        }
    }
}

/// What ``Checkpointer/copy(to:tenant:progress:)`` did.
public struct CopySummary: Sendable, Hashable {
    /// The threads' namespaces copied (each in full).
    public var namespaceCount = 0
    /// The checkpoints written to the target.
    public var checkpointCount = 0
    /// Checkpoints the target already held (from an earlier, interrupted copy).
    public var skippedCount = 0
    /// Answers recorded in the target.
    public var answerCount = 0

    /// Creates a summary.
    public init(namespaceCount: Int = 0, checkpointCount: Int = 0, skippedCount: Int = 0, answerCount: Int = 0) {
        self.namespaceCount = namespaceCount
        self.checkpointCount = checkpointCount
        self.skippedCount = skippedCount
        self.answerCount = answerCount
    }
}

extension Checkpointer {
    /// Copies every thread (or every thread of `tenant`) to another store, each namespace
    /// exported and imported whole (``export(thread:namespace:line:)``,
    /// ``importThread(lines:)``), oldest activity first: an agent that starts on SQLite moves to
    /// Postgres with its history, its pauses and their answers, sealed state still sealed.
    ///
    /// Run it again after an interruption: what the target already holds is skipped. Threads
    /// written while it runs are copied as they were when their turn came; stop the writers, or
    /// copy again once they stopped, for a copy that misses nothing. `progress` is called after
    /// each namespace with the summary so far; an error it throws stops the copy there.
    ///
    /// - Throws: what the export or the import throws (``CheckpointError/Code/conflict`` for a
    ///   target thread that diverged from the source), naming the thread.
    @discardableResult
    public func copy(
        to target: any Checkpointer, tenant: String? = nil, progress: (CopySummary) throws -> Void = { _ in }
    ) async throws -> CopySummary {
        // The listing and the exports from the primary (see ``ReadConsistency``).
        try await ReadConsistency.readingLatest { try await copyTheLatest(to: target, tenant: tenant, progress: progress) }
    }

    private func copyTheLatest(
        to target: any Checkpointer, tenant: String?, progress: (CopySummary) throws -> Void
    ) async throws -> CopySummary {
        var summary = CopySummary()
        var query = ThreadQuery(tenant: tenant, order: .oldestActivityFirst, limit: 200)
        while true {
            let page = try await threads(query)
            for item in page.items {
                let text: Data
                do {
                    text = try await export(thread: item.thread, namespace: item.namespace)
                } catch let error as CheckpointError where error.code == .notFound {
                    continue  // deleted since it was listed
                }
                let imported = try await target.importThread(text)
                summary.namespaceCount += 1
                summary.checkpointCount += imported.checkpointCount
                summary.skippedCount += imported.skippedCount
                summary.answerCount += imported.answerCount
                try progress(summary)
            }
            guard let next = page.next else { return summary }
            query.after = next
        }
    }
}

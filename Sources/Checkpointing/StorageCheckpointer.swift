import CoreMetrics
import Foundation
import Synchronization

/// A ``Checkpointer`` over a ``CheckpointStorage``: the shared layer that gives a third-party
/// store every rule of the protocol.
///
/// ```swift
/// let checkpointer = StorageCheckpointer(MyStorage())
/// let thread = try checkpointer.thread("support:42", as: Conversation.self)
/// ```
///
/// What it does before a call reaches the storage: refuses calls after ``close()`` with
/// ``CheckpointError/Code/closed`` and calls from a cancelled task with
/// ``CheckpointError/Code/cancelled`` (nothing runs); validates namespaces, history limits,
/// retention counts and inbox queries; resolves a write's ``ChannelWrite/unchanged`` and
/// ``ChannelWrite/append(_:)`` channels against its parent into whole values; hands the storage the
/// head check (``AppendRules``) and the pause/resume check (``AnswerRules``) to run in its
/// atomic step. After: checks that what the storage returned is what was asked for (the
/// thread, namespace and id; ranges newest first), pages history through metadata filters,
/// plans retention, and filters, orders and pages the inbox. It records the same metrics as
/// the built-in backends (`checkpoint_put_duration`, `checkpoint_put_bytes`: the bytes the write
/// changed, `checkpoint_put_conflicts`).
///
/// An error a storage throws that is not a ``CheckpointError`` reaches the caller as
/// ``CheckpointError/Code/backendFailure``, naming the primitive that threw and keeping the
/// original as ``CheckpointError/underlying``.
public final class StorageCheckpointer<Storage: CheckpointStorage>: Checkpointer {
    /// The storage, for calls of its own (a backend's statistics or maintenance).
    public let storage: Storage
    private let isClosed = Mutex(false)
    private let metrics: CheckpointMetrics

    /// Wraps a storage.
    ///
    /// - Parameters:
    ///   - backend: the `backend` dimension of its metrics; by default the storage's type name.
    ///   - metricsFactory: where its metrics go; `nil` (the default) for the process-wide
    ///     `MetricsSystem`.
    public init(_ storage: Storage, backend: String? = nil, metricsFactory: (any MetricsFactory)? = nil) {
        self.storage = storage
        metrics = CheckpointMetrics(backend: backend ?? String(describing: Storage.self), factory: metricsFactory)
    }

    /// Appends a checkpoint; see ``Checkpointer/put(_:expecting:)``.
    public func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        let start = ContinuousClock.now
        try checkOpen()
        try NamespaceValidation.validate(write.namespace)
        // A write that refers to its parent's channels needs the parent's content. It is read
        // before the atomic step: a checkpoint never changes, and the step checks again that
        // the parent is still stored (and still the head, when that is expected).
        let needsParent = write.channels.values.contains {
            switch $0 {
            case .unchanged, .append: true
            case .value, .list: false
            }
        }
        var parent: Checkpoint?
        if needsParent, let parentID = write.parentID {
            parent = try await read(thread: write.thread, namespace: write.namespace, id: parentID)
        }
        var channels: [String: ChannelValue] = [:]
        var deferred: CheckpointError?
        do {
            channels = try Self.resolve(write, parent: parent?.channels ?? [:])
        } catch {
            deferred = error
        }
        let checkpoint = Checkpoint(
            id: write.id, thread: write.thread, namespace: write.namespace, parentID: write.parentID,
            step: write.step, createdAt: write.createdAt, metadata: write.metadata, channels: channels,
            pause: write.pause)
        do {
            try await call("append") {
                try await storage.append(checkpoint, checking: AppendRules(write, expecting: expecting, deferred: deferred))
            }
        } catch let error as CheckpointError where error.code == .conflict {
            metrics.recordConflict()
            throw error
        }
        metrics.recordPut(since: start, payloadBytes: write.payloadByteCount)
    }

    /// The whole channels of a write, from its parent's.
    static func resolve(_ write: CheckpointWrite, parent: [String: ChannelValue]) throws(CheckpointError)
        -> [String: ChannelValue]
    {
        var channels: [String: ChannelValue] = [:]
        for (name, channelWrite) in write.channels {
            switch channelWrite {
            case .unchanged:
                guard let value = parent[name] else { throw ChannelWriteErrors.unchangedWithoutParent(name) }
                channels[name] = value
            case .value(let data): channels[name] = .value(data)
            case .list(let elements): channels[name] = .list(elements)
            case .append(let elements):
                guard case .list(let existing)? = parent[name] else { throw ChannelWriteErrors.appendWithoutList(name) }
                channels[name] = .list(existing + elements)
            }
        }
        return channels
    }

    /// Reads one checkpoint; see ``Checkpointer/checkpoint(thread:namespace:id:)``.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try checkOpen()
        return try await read(thread: thread, namespace: namespace, id: id)
    }

    /// Reads from the storage, checking that it returned the checkpoint asked for.
    private func read(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        guard let checkpoint = try await call("checkpoint", { try await storage.checkpoint(thread: thread, namespace: namespace, id: id) })
        else {
            return nil
        }
        try Self.verify(checkpoint.summary, thread: thread, namespace: namespace, id: id)
        return checkpoint
    }

    private static func verify(
        _ summary: CheckpointSummary, thread: ThreadID, namespace: String, id: CheckpointID?
    ) throws(CheckpointError) {
        guard summary.thread == thread, BytewiseString.equal(summary.namespace, namespace),
            id.map({ $0 == summary.id }) ?? true
        else {
            throw CheckpointError(
                .corruptData,
                "\(Storage.self) returned checkpoint \(summary.id) of thread '\(summary.thread)' namespace "
                    + "\(Self.bytes(summary.namespace)) when asked for \(id.map { "\($0)" } ?? "the head") of thread "
                    + "'\(thread)' namespace \(Self.bytes(namespace)) (thread ids and namespaces are compared by their UTF-8 bytes)")        }
    }

    /// A namespace as its UTF-8 bytes, so that two spellings that print alike are told apart.
    private static func bytes(_ text: String) -> String {
        "'\(text)' [" + text.utf8.map { String($0, radix: 16) }.joined(separator: " ") + "]"
    }

    /// Lists checkpoints newest first; see ``Checkpointer/history(thread:namespace:before:limit:where:)``.
    public func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try checkOpen()
        try validateLimit(limit)
        var result: [CheckpointSummary] = []
        try await forEachRecord(thread: thread, namespace: namespace, before: before, pageSize: filter.isEmpty ? limit : max(limit, 100)) {
            record in
            if record.summary.metadata.matches(filter) { result.append(record.summary) }
            return result.count < limit
        }
        return result
    }

    /// Pages through a namespace's records newest first, checked, until `body` returns false.
    private func forEachRecord(
        thread: ThreadID, namespace: String, before: CheckpointID?, pageSize: Int,
        _ body: (CheckpointRecord) throws -> Bool
    ) async throws {
        var cursor = before
        var order = DescendingRows(thread: thread, before: before)
        while true {
            let page = try await call("records") {
                try await storage.records(thread: thread, namespace: namespace, before: cursor, limit: pageSize)
            }
            for record in page {
                try Self.verify(record.summary, thread: thread, namespace: namespace, id: nil)
                do {
                    try order.accept(record.summary.id)
                } catch {
                    throw CheckpointError(
                        .corruptData,
                        "\(Storage.self).records returned checkpoint \(record.summary.id) of thread '\(thread)' out of order: "
                            + "it must return ids below `before`, newest first")
                }
                guard try body(record) else { return }
            }
            guard page.count >= pageSize, let last = page.last else { return }
            cursor = last.summary.id
        }
    }

    /// Deletes a thread in every namespace; see ``Checkpointer/deleteThread(_:)``.
    public func deleteThread(_ thread: ThreadID) async throws {
        try checkOpen()
        try await call("deleteThread") { try await storage.deleteThread(thread) }
    }

    /// Keeps the newest checkpoints and unanswered pauses; see
    /// ``Checkpointer/prune(thread:namespace:by:)``.
    public func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try checkOpen()
        try rule.validate()
        var rows: [RetentionRow] = []
        try await forEachRecord(thread: thread, namespace: namespace, before: nil, pageSize: 500) { record in
            // Every checkpoint is whole: it shares no content, so its manifest is empty.
            rows.append(
                RetentionRow(
                    id: record.summary.id, manifest: Manifest(), awaitsAnswer: record.awaitsAnswer, links: [:],
                    createdAt: record.summary.createdAt))
            return true
        }
        let plan = RetentionPlan(rows: rows, rule: rule)
        guard !plan.delete.isEmpty else { return 0 }
        try await call("delete") { try await storage.delete(plan.delete.sorted(), thread: thread, namespace: namespace) }
        return plan.removedFromHistory
    }

    /// Reports what a thread occupies; see ``Checkpointer/storageStatistics(thread:)``.
    public func storageStatistics(thread: ThreadID) async throws -> StorageStatistics {
        try checkOpen()
        return try await call("storageStatistics") { try await storage.storageStatistics(thread: thread) }
    }

    /// Lists waiting pauses; see ``Checkpointer/pausedThreads(_:)``.
    public func pausedThreads(_ query: InboxQuery) async throws -> InboxPage {
        try checkOpen()
        try query.validate()
        return query.page(unordered: try await call("waitingPauses") { try await storage.waitingPauses(query) })
    }

    /// Lists threads by activity from ``CheckpointStorage/threads(_:)``, filtered, ordered and
    /// paged here; see ``Checkpointer/threads(_:)``.
    public func threads(_ query: ThreadQuery) async throws -> ThreadPage {
        try checkOpen()
        try query.validate()
        return query.page(unordered: try await call("threads") { try await storage.threads(query) })
    }

    /// Sweeps idle namespaces listed by ``CheckpointStorage/threads(_:)``; see
    /// ``Checkpointer/sweepIdle(_:)``. A storage keeps every checkpoint whole, so a put that
    /// lands between the listing and the deletion survives it whole (its parent may be gone).
    public func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport {
        try checkOpen()
        try batch.validate()
        let hint = ThreadQuery(activeBefore: batch.idleBefore, order: .oldestActivityFirst, after: batch.after, limit: batch.limit)
        let listed = try await call("threads") { try await storage.threads(hint) }
        let chosen = listed.filter(batch.selects).sorted { $0.listingOrder < $1.listingOrder }.prefix(batch.limit)
        var report = IdleSweepReport()
        for item in chosen {
            report.threads.insert(item.thread)
            let before = try await storageStatistics(thread: item.thread)
            switch batch.action {
            case .pruneToHead:
                report.checkpointsRemoved += try await prune(thread: item.thread, namespace: item.namespace, by: .keepingLatest(1))
                report.prunedCount += 1
            case .delete:
                var ids: [CheckpointID] = []
                try await forEachRecord(thread: item.thread, namespace: item.namespace, before: nil, pageSize: 500) { record in
                    ids.append(record.summary.id)
                    return true
                }
                try await call("delete") { try await storage.delete(ids, thread: item.thread, namespace: item.namespace) }
                report.checkpointsRemoved += ids.count
                report.deletedCount += 1
            }
            let after = try await storageStatistics(thread: item.thread)
            report.bytesRemoved += max(0, before.payloadByteCount - after.payloadByteCount)
        }
        report.next = chosen.count == batch.limit ? chosen.last.map(ThreadCursor.init(after:)) : nil
        return report
    }

    /// Records an answer exactly once; see ``Checkpointer/resume(thread:namespace:pauseID:response:at:)``.
    public func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try checkOpen()
        try NamespaceValidation.validate(namespace)
        try await call("recordAnswer") {
            try await storage.recordAnswer(
                PauseAnswer(pauseID: pauseID, response: response, answeredAt: now), thread: thread, namespace: namespace,
                checking: AnswerRules(thread: thread, pauseID: pauseID, now: now))
        }
    }

    /// Closes the storage once; later calls fail with ``CheckpointError/Code/closed``.
    public func close() async throws {
        let wasOpen = isClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if wasOpen { try await call("close") { try await storage.close() } }
    }

    /// Runs a primitive, turning an error that is not a ``CheckpointError`` into
    /// ``CheckpointError/Code/backendFailure`` that names the primitive.
    private func call<T>(_ primitive: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(
                .backendFailure, "\(Storage.self).\(primitive) threw \(type(of: error)), not a CheckpointError: \(error)",
                underlying: error)
        }
    }

    private func checkOpen() throws(CheckpointError) {
        if isClosed.withLock({ $0 }) { throw CheckpointError(.closed, "the checkpointer over \(Storage.self) was closed") }
        try throwIfCancelled()
    }
}

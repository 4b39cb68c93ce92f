import CoreMetrics
import Foundation

/// A checkpointer that keeps everything in memory, for unit tests of code that uses checkpoints.
///
/// It follows the same rules as the persistent backends (conflicts, forks, namespaces,
/// channel deltas) and passes the same conformance suite. Its content is lost when it is
/// released.
public actor InMemoryCheckpointer: Checkpointer {
    private struct StoredCheckpoint {
        var summary: CheckpointSummary
        var manifest: Manifest
        var pause: Pause?
    }

    private struct NamespaceStore {
        var head: CheckpointID?
        var checkpoints: [CheckpointID: StoredCheckpoint] = [:]
        var ids: [CheckpointID] = []  // ascending
        var answers: [CheckpointID: PauseAnswer] = [:]
        var answeredPauses: Set<UUID> = []
        /// The latest checkpoint creation or answer time, in microseconds (``ActivityTime``).
        var lastActivity = Int64.min

        /// Adds a checkpoint newer than every other, which becomes the head.
        mutating func insert(_ checkpoint: StoredCheckpoint) {
            checkpoints[checkpoint.summary.id] = checkpoint
            ids.append(checkpoint.summary.id)
            head = checkpoint.summary.id
            lastActivity = max(lastActivity, ActivityTime.microseconds(checkpoint.summary.createdAt))
        }
    }

    private struct PayloadKey: Hashable {
        var namespace: BytewiseString
        var channel: String
        var version: CheckpointID

        init(namespace: String, channel: String, version: CheckpointID) {
            self.namespace = BytewiseString(namespace)
            self.channel = channel
            self.version = version
        }
    }

    /// Threads and namespaces are keyed by their UTF-8 bytes (``ThreadID`` and
    /// ``BytewiseString``), as the persistent stores key them: two spellings of "café" are
    /// two threads here too.
    private struct ThreadStore {
        var namespaces: [BytewiseString: NamespaceStore] = [:]
        var payloads: [PayloadKey: Data] = [:]
        var segments: [PayloadKey: ListSegment] = [:]
    }

    private var threads: [ThreadID: ThreadStore] = [:]
    private var isClosed = false
    private let metrics: CheckpointMetrics

    /// Creates an empty store.
    ///
    /// - Parameter metricsFactory: where its metrics go; `nil` (the default) for the
    ///   process-wide `MetricsSystem`.
    public init(metricsFactory: (any MetricsFactory)? = nil) {
        metrics = CheckpointMetrics(backend: "memory", factory: metricsFactory)
    }

    /// Appends a checkpoint; see ``Checkpointer/put(_:expecting:)``.
    public func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        let start = ContinuousClock.now
        try checkOpen()
        try NamespaceValidation.validate(write.namespace)
        // Read what the checks need first, so that the store is then mutated in place
        // (holding a copy would make every put copy the thread's dictionaries).
        let parentManifest = try checkedParent(of: write, expecting: expecting)
        let resolved = try ResolvedWrite(write, parent: parentManifest)
        let summary = CheckpointSummary(
            id: write.id, thread: write.thread, namespace: write.namespace, parentID: write.parentID,
            step: write.step, createdAt: write.createdAt, metadata: write.metadata)
        modify(write.thread) { thread in
            for payload in resolved.payloads {
                thread.payloads[PayloadKey(namespace: write.namespace, channel: payload.channel, version: payload.version)] =
                    payload.data
            }
            for segment in resolved.segments {
                thread.segments[
                    PayloadKey(namespace: write.namespace, channel: segment.channel, version: segment.segment.id)] =
                    segment.segment
            }
            thread.namespaces[BytewiseString(write.namespace), default: NamespaceStore()].insert(
                StoredCheckpoint(summary: summary, manifest: resolved.manifest, pause: write.pause))
        }
        metrics.recordPut(since: start, payloadBytes: write.payloadByteCount)
    }

    /// Applies the head check and returns the parent's manifest. (A function of its own, so that
    /// no copy of the thread's store outlives it: the put then mutates the store in place.)
    private func checkedParent(of write: CheckpointWrite, expecting: PutExpectation) throws -> Manifest? {
        let space = threads[write.thread]?.namespaces[BytewiseString(write.namespace)]
        do {
            try PutRules.check(write, expecting: expecting, head: space?.head) {
                write.parentID.flatMap { space?.checkpoints[$0] } != nil
            }
        } catch let error as CheckpointError {
            if error.code == .conflict { metrics.recordConflict() }
            throw error
        }
        return write.parentID.flatMap { space?.checkpoints[$0]?.manifest }
    }

    private func modify(_ thread: ThreadID, _ body: (inout ThreadStore) -> Void) {
        body(&threads[thread, default: ThreadStore()])
    }

    /// Reads one checkpoint; see ``Checkpointer/checkpoint(thread:namespace:id:)``.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try checkOpen()
        guard let store = threads[thread], let space = store.namespaces[BytewiseString(namespace)],
            let id = id ?? space.head, let stored = space.checkpoints[id]
        else { return nil }
        let channels = try stored.manifest.materialize(
            payload: { channel, version in
                store.payloads[PayloadKey(namespace: namespace, channel: channel, version: version)]
            },
            list: { channel, reference, _ in
                var chain = ListChain(channel: channel, reference: reference)
                while let next = chain.next,
                    let segment = store.segments[PayloadKey(namespace: namespace, channel: channel, version: next)]
                {
                    if try chain.add(segment) { break }
                }
                return try chain.elements()
            })
        return Checkpoint(summary: stored.summary, channels: channels, pause: stored.pause, answer: space.answers[id])
    }

    /// Lists checkpoints newest first; see ``Checkpointer/history(thread:namespace:before:limit:where:)``.
    public func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try checkOpen()
        try validateLimit(limit)
        guard let space = threads[thread]?.namespaces[BytewiseString(namespace)] else { return [] }
        var result: [CheckpointSummary] = []
        for id in space.ids.reversed() where before.map({ id < $0 }) ?? true {
            guard let stored = space.checkpoints[id], stored.summary.metadata.matches(filter) else { continue }
            result.append(stored.summary)
            if result.count == limit { break }
        }
        return result
    }

    /// Deletes a thread in every namespace; see ``Checkpointer/deleteThread(_:)``.
    public func deleteThread(_ thread: ThreadID) async throws {
        try checkOpen()
        threads[thread] = nil
    }

    /// Counts a thread's checkpoints and payload bytes; see ``Checkpointer/storageStatistics(thread:)``.
    public func storageStatistics(thread: ThreadID) async throws -> StorageStatistics {
        try checkOpen()
        guard let store = threads[thread] else {
            return StorageStatistics(checkpointCount: 0, payloadCount: 0, payloadByteCount: 0)
        }
        let checkpoints = store.namespaces.values.reduce(0) { $0 + $1.checkpoints.count }
        let payloadBytes = store.payloads.values.reduce(0) { $0 + $1.count }
        let segmentBytes = store.segments.values.reduce(0) { $0 + $1.encodedElements().count }
        return StorageStatistics(
            checkpointCount: checkpoints, payloadCount: store.payloads.count + store.segments.count,
            payloadByteCount: payloadBytes + segmentBytes)
    }

    /// Lists waiting pauses; see ``Checkpointer/pausedThreads(_:)``.
    public func pausedThreads(_ query: InboxQuery) async throws -> InboxPage {
        try checkOpen()
        try query.validate()
        var items: [PausedThread] = []
        for (thread, store) in threads {
            for (namespace, space) in store.namespaces {
                guard let head = space.head, let stored = space.checkpoints[head], let pause = stored.pause,
                    space.answers[head] == nil
                else { continue }
                items.append(PausedThread(thread: thread, namespace: namespace.text, checkpointID: head, pause: pause))
            }
        }
        return query.page(unordered: items)
    }

    /// Lists threads by activity; see ``Checkpointer/threads(_:)``. It looks at every thread
    /// (this store is for tests).
    public func threads(_ query: ThreadQuery) async throws -> ThreadPage {
        try checkOpen()
        try query.validate()
        return query.page(unordered: summaries())
    }

    /// Every thread's namespaces as the listing shows them.
    private func summaries() -> [ThreadSummary] {
        var items: [ThreadSummary] = []
        for (thread, store) in threads {
            for (namespace, space) in store.namespaces {
                guard let head = space.head else { continue }
                let pause = space.answers[head] == nil ? space.checkpoints[head]?.pause : nil
                items.append(
                    ThreadSummary(
                        thread: thread, namespace: namespace.text, headID: head,
                        lastActivity: ActivityTime.date(space.lastActivity), checkpointCount: space.checkpoints.count,
                        waitingPause: pause))
            }
        }
        return items
    }

    /// Sweeps idle namespaces; see ``Checkpointer/sweepIdle(_:)``. It looks at every thread.
    public func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport {
        try checkOpen()
        try batch.validate()
        let chosen = summaries().filter(batch.selects).sorted { $0.listingOrder < $1.listingOrder }.prefix(batch.limit)
        var report = IdleSweepReport()
        for item in chosen {
            report.threads.insert(item.thread)
            switch batch.action {
            case .pruneToHead:
                report.checkpointsRemoved += try await prune(thread: item.thread, namespace: item.namespace, by: .keepingLatest(1))
                report.prunedCount += 1
            case .delete:
                let space = BytewiseString(item.namespace)
                modify(item.thread) { store in
                    report.checkpointsRemoved += store.namespaces[space]?.checkpoints.count ?? 0
                    for (key, data) in store.payloads where key.namespace == space { report.bytesRemoved += data.count }
                    for (key, segment) in store.segments where key.namespace == space {
                        report.bytesRemoved += segment.encodedElements().count
                    }
                    store.namespaces[space] = nil
                    store.payloads = store.payloads.filter { $0.key.namespace != space }
                    store.segments = store.segments.filter { $0.key.namespace != space }
                }
                if threads[item.thread]?.namespaces.isEmpty == true { threads[item.thread] = nil }
                report.deletedCount += 1
            }
        }
        report.next = chosen.count == batch.limit ? chosen.last.map(ThreadCursor.init(after:)) : nil
        return report
    }

    /// Records an answer exactly once; see ``Checkpointer/resume(thread:namespace:pauseID:response:at:)``.
    public func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try checkOpen()
        let key = BytewiseString(namespace)
        let space = threads[thread]?.namespaces[key]
        let head = try ResumeRules.check(
            thread: thread, pauseID: pauseID, head: space?.head.map { ($0, space?.checkpoints[$0]?.pause) }, at: now
        ) { space?.answeredPauses.contains(pauseID) == true }
        threads[thread]?.namespaces[key]?.answers[head] = PauseAnswer(
            pauseID: pauseID, response: response, answeredAt: now)
        threads[thread]?.namespaces[key]?.answeredPauses.insert(pauseID)
        if let activity = threads[thread]?.namespaces[key]?.lastActivity {
            threads[thread]?.namespaces[key]?.lastActivity = max(activity, ActivityTime.microseconds(now))
        }
    }

    /// Keeps the newest checkpoints and unanswered pauses; see ``Checkpointer/prune(thread:namespace:by:)``.
    public func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try checkOpen()
        try rule.validate()
        let space = BytewiseString(namespace)
        guard let store = threads[thread], let stored = store.namespaces[space] else { return 0 }
        var rows: [CheckpointID: RetentionRow] = [:]
        for (id, checkpoint) in stored.checkpoints {
            rows[id] = RetentionRow(
                id: id, manifest: checkpoint.manifest, awaitsAnswer: checkpoint.pause != nil && stored.answers[id] == nil,
                links: [:], createdAt: checkpoint.summary.createdAt)
        }
        for key in store.payloads.keys where key.namespace == space && rows[key.version] == nil {
            rows[key.version] = RetentionRow(id: key.version, manifest: nil, awaitsAnswer: false, links: [:])
        }
        for (key, segment) in store.segments where key.namespace == space {
            rows[key.version, default: RetentionRow(id: key.version, manifest: nil, awaitsAnswer: false, links: [:])]
                .links[key.channel] = .some(segment.previous)
        }
        let plan = RetentionPlan(rows: Array(rows.values), rule: rule)
        modify(thread) { store in
            for id in plan.delete.union(plan.tombstone.keys) {
                store.namespaces[space]?.checkpoints[id] = nil
            }
            store.namespaces[space]?.ids.removeAll { !plan.keep.contains($0) }
            store.payloads = store.payloads.filter { key, _ in
                key.namespace != space || plan.keep.contains(key.version)
                    || plan.tombstone[key.version]?.values.contains(key.channel) == true
            }
            store.segments = store.segments.filter { key, _ in
                key.namespace != space || plan.keep.contains(key.version)
                    || plan.tombstone[key.version]?.segments.contains(key.channel) == true
            }
        }
        return plan.removedFromHistory
    }

    /// Drops everything; later calls fail with ``CheckpointError/Code/closed``.
    /// `healthy` while open (there is no store to reach), `unavailable` once closed.
    public func health() async -> HealthReport {
        await HealthReport.probing("memory") {
            try checkOpen()
            return nil
        }
    }

    public func close() async throws {
        isClosed = true
        threads = [:]
    }

    /// Every call starts here: a closed store fails with `closed`, a cancelled caller with
    /// `cancelled` (nothing runs).
    private func checkOpen() throws(CheckpointError) {
        if isClosed { throw CheckpointError(.closed, "the in-memory checkpointer was closed") }
        try throwIfCancelled()
    }
}

/// Checks a history limit, shared by every backend.
package func validateLimit(_ limit: Int) throws(CheckpointError) {
    guard limit >= 1 else {
        throw CheckpointError(.invalidArgument, "a history limit must be at least 1, not \(limit)")
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, in an array partitioned by it.
    package func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}

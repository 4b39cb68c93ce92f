import Foundation

/// Retention by idleness (a thread TTL): what happens to a thread's namespace that nobody
/// touched for ``idleFor``.
///
/// A namespace whose head waits for an answer is never touched, unless its pause has expired
/// and ``removesExpiredPauses`` says so: a person may still answer it.
public struct IdleThreadPolicy: Sendable, Hashable {
    /// What the sweep does to an idle namespace.
    public enum Action: String, Sendable, Hashable, CaseIterable {
        /// Deletes it: its checkpoints, answers and content.
        case delete
        /// Keeps only its head (and unanswered pauses), as ``RetentionRule/keepingLatest(_:)`` with 1.
        case pruneToHead
    }

    /// How long a namespace must have been idle (no checkpoint and no answer) to be swept.
    public var idleFor: Duration
    /// What happens to it.
    public var action: Action
    /// Whether a namespace whose head waits on a pause that has expired unanswered may be swept.
    public var removesExpiredPauses: Bool

    /// Creates a policy.
    public init(idleFor: Duration, action: Action = .delete, removesExpiredPauses: Bool = false) {
        self.idleFor = idleFor
        self.action = action
        self.removesExpiredPauses = removesExpiredPauses
    }

    /// The activity before which a namespace is idle, at `now`.
    public func cutoff(at now: Date) -> Date {
        let components = idleFor.components
        return now.addingTimeInterval(-(Double(components.seconds) + Double(components.attoseconds) / 1e18))
    }
}

/// One bounded step of a sweep, handed to ``Checkpointer/sweepIdle(_:)``.
public struct IdleSweepBatch: Sendable, Hashable {
    /// Namespaces whose last activity is before this time are idle.
    public var idleBefore: Date
    /// The time expiry of pauses is judged at.
    public var now: Date
    /// What to do to each.
    public var action: IdleThreadPolicy.Action
    /// Whether a head waiting on an expired pause may be swept.
    public var removesExpiredPauses: Bool
    /// Continue after this namespace (in oldest-activity-first order); `nil` from the start.
    public var after: ThreadCursor?
    /// The most namespaces to sweep in this step (a backend may do fewer, to keep its
    /// transactions short).
    public var limit: Int

    /// Creates a batch.
    public init(
        idleBefore: Date, now: Date, action: IdleThreadPolicy.Action, removesExpiredPauses: Bool,
        after: ThreadCursor? = nil, limit: Int = 100
    ) {
        self.idleBefore = idleBefore
        self.now = now
        self.action = action
        self.removesExpiredPauses = removesExpiredPauses
        self.after = after
        self.limit = limit
    }
}

/// What a sweep (or one of its batches) removed.
public struct IdleSweepReport: Sendable, Hashable {
    /// Namespaces deleted.
    public var deletedCount = 0
    /// Namespaces pruned to their head.
    public var prunedCount = 0
    /// Checkpoints that left the stores' histories.
    public var checkpointsRemoved = 0
    /// Bytes of stored values and list segments deleted.
    public var bytesRemoved = 0
    /// The threads a batch changed (a cache in front invalidates them).
    public var threads: Set<ThreadID> = []
    /// Where a batch stopped: pass it as the next batch's ``IdleSweepBatch/after``; `nil` when
    /// no idle namespace is left after it.
    public var next: ThreadCursor?

    /// Creates a report.
    public init(
        deletedCount: Int = 0, prunedCount: Int = 0, checkpointsRemoved: Int = 0, bytesRemoved: Int = 0,
        threads: Set<ThreadID> = [], next: ThreadCursor? = nil
    ) {
        self.deletedCount = deletedCount
        self.prunedCount = prunedCount
        self.checkpointsRemoved = checkpointsRemoved
        self.bytesRemoved = bytesRemoved
        self.threads = threads
        self.next = next
    }

    /// Adds a batch's counts (not its threads or cursor).
    package mutating func add(_ batch: IdleSweepReport) {
        deletedCount += batch.deletedCount
        prunedCount += batch.prunedCount
        checkpointsRemoved += batch.checkpointsRemoved
        bytesRemoved += batch.bytesRemoved
    }
}

extension IdleSweepBatch {
    /// Checks the limit, shared by every backend.
    package func validate() throws(CheckpointError) {
        guard limit >= 1 else { throw CheckpointError(.invalidArgument, "a sweep batch limit must be at least 1") }
    }

    /// Whether a listed namespace may be swept: idle, after the cursor, and not waiting on a
    /// pause (unless it expired and the batch allows it).
    package func selects(_ item: ThreadSummary) -> Bool {
        guard ActivityTime.microseconds(item.lastActivity) < ActivityTime.microseconds(idleBefore) else { return false }
        if let after, !(after.listingOrder < item.listingOrder) { return false }
        if action == .pruneToHead, item.checkpointCount <= 1 { return false }
        guard let pause = item.waitingPause else { return true }
        return removesExpiredPauses && pause.isExpired(at: now)
    }
}

extension Checkpointer {
    /// Sweeps every idle namespace under `policy`, in bounded batches (``sweepIdle(_:)``),
    /// oldest activity first, and reports what it removed.
    ///
    /// Several processes may sweep one store at once: each batch checks idleness in the
    /// store's own atomic step (a namespace that became active meanwhile is left alone), and a
    /// namespace another sweeper holds is skipped (Postgres: `FOR UPDATE SKIP LOCKED`), so no
    /// two do the same work and no writer waits long.
    ///
    /// - Parameters:
    ///   - continuing: called after each batch with what was removed so far (for a progress
    ///     line) when more may be idle; `false` stops the sweep there (a server shutting down).
    @discardableResult
    public func sweep(
        _ policy: IdleThreadPolicy, now: Date = Date(), batchSize: Int = 100,
        continuing: (IdleSweepReport) -> Bool = { _ in true }
    ) async throws -> IdleSweepReport {
        var batch = IdleSweepBatch(
            idleBefore: policy.cutoff(at: now), now: now, action: policy.action,
            removesExpiredPauses: policy.removesExpiredPauses, limit: batchSize)
        var total = IdleSweepReport()
        while true {
            let done = try await sweepIdle(batch)
            total.add(done)
            guard let next = done.next, continuing(total) else { return total }
            batch.after = next
        }
    }
}

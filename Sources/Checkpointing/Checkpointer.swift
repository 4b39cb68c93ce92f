import Foundation

/// The storage protocol every backend and every wrapper implements.
///
/// It works at the level of bytes: a checkpoint's state is a set of named channels, and a
/// write says how each channel changed since the parent, so a backend stores only what is
/// new. Most code uses the typed façade, ``CheckpointThread``, made by
/// ``Checkpointer/thread(_:namespace:as:)``.
///
/// Every method may throw ``CheckpointError``; the codes each one uses are listed with it.
///
/// Cancellation: every call checks for cancellation before it starts, and a call from a
/// cancelled task throws ``CheckpointError/Code/cancelled`` with nothing written or changed.
/// A call that has started (was handed to its connection) runs to its end and reports its own
/// outcome, whatever happens to the task meanwhile: a write is never left half done, and a put
/// that committed never reports `cancelled`. ``close()`` closes even from a cancelled task.
/// A wrapper checks before it starts too, and passes a `cancelled` from the store it wraps
/// through unchanged.
public protocol Checkpointer: Sendable {
    /// Appends a checkpoint to its thread in one atomic step.
    ///
    /// - Parameters:
    ///   - write: the new checkpoint, its channels described relative to `write.parentID`.
    ///   - expecting: ``PutExpectation/parentIsHead`` (the default in the extension) fails with
    ///     ``CheckpointError/Code/conflict`` when the thread's head is not `write.parentID`;
    ///     ``PutExpectation/anyParent`` forks from any existing checkpoint of the thread.
    /// - Throws: ``CheckpointError`` with `conflict`; `notFound` when the parent does not exist;
    ///   `invalidArgument` when a channel says `unchanged` or `append` but the parent has no such
    ///   channel (or no list), or the id already exists; `closed`; `cancelled` when the calling
    ///   task was cancelled before the put started (nothing was written); `busy` when another
    ///   writer held the store's lock past its timeout (retryable, nothing was written); a
    ///   backend failure.
    func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws

    /// Reads one checkpoint with its channel contents.
    ///
    /// - Parameter id: the checkpoint to read, or `nil` for the thread's head.
    /// - Returns: the checkpoint, or `nil` when the thread, namespace or id does not exist.
    /// - Throws: ``CheckpointError/Code/corruptData`` when stored bytes cannot be read back.
    func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint?

    /// Lists a thread's checkpoints in one namespace, newest first, without their contents.
    ///
    /// - Parameters:
    ///   - before: only checkpoints whose id is smaller (older) than this one; use the last id
    ///     of one page to fetch the next.
    ///   - limit: the most checkpoints to return (at least 1).
    ///   - filter: only checkpoints whose metadata holds every one of these entries. Numbers
    ///     compare by their exact value (`5` matches `5.0`, never `5.5`); a boolean, a string
    ///     or `null` matches only itself (`true` is not `1`, the string `"5"` is not the number
    ///     `5`). Any key can be filtered on, whatever characters it holds.
    func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary]

    /// Deletes everything stored for a thread, in every namespace. Other threads are untouched.
    /// Deleting a thread that does not exist is not an error.
    func deleteThread(_ thread: ThreadID) async throws

    /// Retention: removes from a thread's namespace's history the checkpoints `rule` does not
    /// keep (the older ones beyond a count, or those older than a date), except that a
    /// checkpoint whose pause has no answer is never removed and the head always stays. Content
    /// that kept checkpoints still use (the messages of a conversation, a value stored long ago
    /// and unchanged since) stays; content nothing uses any more is deleted.
    ///
    /// - Returns: how many checkpoints left the history.
    /// - Throws: ``CheckpointError/Code/invalidArgument`` when a count is below 1.
    func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int

    /// Reports what a thread occupies in the store, in every namespace.
    func storageStatistics(thread: ThreadID) async throws -> StorageStatistics

    /// Lists threads waiting for a person: their head is paused and unanswered. Oldest pause
    /// first, paged with ``InboxQuery/after``; served from an index of waiting pauses, not a
    /// scan of every thread.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a limit below 1.
    func pausedThreads(_ query: InboxQuery) async throws -> InboxPage

    /// Lists threads (one item per thread and namespace) by their last activity, with their
    /// head, checkpoint count and waiting pause; cursor-paged with ``ThreadQuery/after``. The
    /// persistent backends serve it from an index of threads by activity (and by tenant and
    /// activity), not a scan of checkpoints.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a limit below 1, or
    ///   ``ThreadQuery/activeSince`` not before ``ThreadQuery/activeBefore``.
    func threads(_ query: ThreadQuery) async throws -> ThreadPage

    /// One bounded step of retention by idleness (see ``sweep(_:now:batchSize:)``, which calls
    /// it until it is done): deletes, or prunes to their head, up to `batch.limit` namespaces
    /// whose last activity is before ``IdleSweepBatch/idleBefore``, oldest first after
    /// ``IdleSweepBatch/after``, re-checking in the store's atomic step that each is still idle
    /// and does not wait on a pause (unless it expired and the batch allows it).
    ///
    /// - Returns: what it removed, the threads it changed, and where the next step starts.
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a limit below 1.
    func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport

    /// Records a person's answer to a pause, exactly once.
    ///
    /// - Parameters:
    ///   - pauseID: the pause answered; it must belong to the thread's head.
    ///   - response: the encoded answer.
    ///   - now: the time of the answer, compared with the pause's expiry.
    /// - Throws: ``CheckpointError/Code/alreadyResumed`` when the pause has an answer;
    ///   ``CheckpointError/Code/stalePause`` when it is not the head's pause (the agent went on);
    ///   ``CheckpointError/Code/pauseExpired`` when it expired at or before `now`;
    ///   ``CheckpointError/Code/notFound`` when the thread does not exist.
    func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws

    /// Releases the store's connections. Calls after `close()` fail with ``CheckpointError/Code/closed``.
    func close() async throws

    /// Whether the store answers, how fast, and at which schema; never throws. A default
    /// (one head read of a thread that does not exist) is provided; a wrapper reports its own
    /// state with its base's report among ``HealthReport/parts``.
    func health() async -> HealthReport
}

extension Checkpointer {
    /// Records a person's answer, encoded as JSON; see ``resume(thread:namespace:pauseID:response:at:)``.
    ///
    /// - Parameter sealing: seals the answer, for a thread whose façade seals its state.
    public func resume<Answer: Encodable>(
        thread: ThreadID, namespace: String = "", pauseID: UUID, with answer: Answer, at now: Date = Date(),
        sealing: Sealing? = nil
    ) async throws {
        var response: Data
        do {
            response = try JSONEncoder().encode(answer)
        } catch {
            throw CheckpointError(.encodingFailed, "the answer of type \(Answer.self) could not be encoded")
        }
        if let sealing {
            response = try sealing.seal(response, .answer(pauseID: pauseID), thread: thread, namespace: namespace)
        }
        try await resume(thread: thread, namespace: namespace, pauseID: pauseID, response: response, at: now)
    }

    /// Keeps the newest `count` checkpoints of a thread's namespace; see
    /// ``prune(thread:namespace:by:)``.
    @discardableResult
    public func prune(thread: ThreadID, namespace: String = "", keepingLatest count: Int) async throws -> Int {
        try await prune(thread: thread, namespace: namespace, by: .keepingLatest(count))
    }

    /// Removes the checkpoints of a thread's namespace created before `date`, keeping the head;
    /// see ``prune(thread:namespace:by:)``.
    @discardableResult
    public func prune(thread: ThreadID, namespace: String = "", olderThan date: Date) async throws -> Int {
        try await prune(thread: thread, namespace: namespace, by: .olderThan(date))
    }

    /// Appends a checkpoint whose parent must be the thread's head.
    public func put(_ write: CheckpointWrite) async throws {
        try await put(write, expecting: .parentIsHead)
    }

    /// Reads the head checkpoint of a thread (in the default namespace unless given).
    public func head(thread: ThreadID, namespace: String = "") async throws -> Checkpoint? {
        try await checkpoint(thread: thread, namespace: namespace, id: nil)
    }

    /// Lists a thread's checkpoints newest first; see the protocol requirement for the parameters.
    public func history(
        thread: ThreadID, namespace: String = "", before: CheckpointID? = nil, limit: Int = 100,
        where filter: Metadata = [:]
    ) async throws -> [CheckpointSummary] {
        try await history(thread: thread, namespace: namespace, before: before, limit: limit, where: filter)
    }
}

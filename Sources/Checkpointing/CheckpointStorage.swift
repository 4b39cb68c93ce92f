import Foundation

/// The storage primitives of a backend that keeps whole checkpoints: what a third party
/// implements to add a store, with ``StorageCheckpointer`` turning it into a ``Checkpointer``.
///
/// The split is: the storage brings **atomicity and bytes**, the shared layer brings every
/// rule. A storage never decides whether a put conflicts, whether an answer may be recorded or
/// which checkpoints retention removes: it runs the check it is handed (``AppendRules``,
/// ``AnswerRules``) inside its own atomic step (a lock, a transaction, an actor's turn) and
/// stores what the check approved. Validation of namespaces and limits, cancellation, the
/// closed state, delta resolution (``ChannelWrite/unchanged`` and ``ChannelWrite/append(_:)`` are
/// turned into whole channel values before ``append(_:checking:)`` sees them), history paging
/// with metadata filters, retention planning, inbox filtering, ordering and paging all live in
/// ``StorageCheckpointer``, written once.
///
/// A storage keeps every checkpoint whole, so it does not offer delta storage: run the
/// conformance suite with the capabilities it has (see `CheckpointerConformance.checks(for:)`
/// in `CheckpointingTestKit`). The article "Writing a backend" walks through a complete one
/// (`Examples/FileBackend`, one JSON file per thread).
///
/// Rules every storage follows:
/// - **Keys are bytes.** Two spellings of "café" (NFC and NFD) are two threads and two
///   namespaces. ``ThreadID`` compares and hashes by its UTF-8 bytes already; key namespaces by
///   `Array(namespace.utf8)`, never by `String` (which compares canonically).
/// - **Everything round-trips**: channel bytes, metadata, pauses and answers exactly; dates
///   (`createdAt`, a pause's times, an answer's time) within a microsecond.
/// - **Errors are ``CheckpointError``s** with the right code: ``CheckpointError/Code/corruptData``
///   for stored bytes that do not read back, ``CheckpointError/Code/busy`` or
///   ``CheckpointError/Code/connectionFailed`` (retryable) when the store could not be reached
///   and nothing was written, ``CheckpointError/Code/backendFailure`` otherwise. An error the
///   handed check throws is passed through unchanged, with nothing written.
public protocol CheckpointStorage: Sendable {
    /// Stores `checkpoint` as the new head of its thread's namespace, in one atomic step, if
    /// `rules` approve.
    ///
    /// In the atomic step, call ``AppendRules/check(head:contains:)`` with the namespace's
    /// current head (`nil` when it has no checkpoint) and a way to ask whether a checkpoint id
    /// is stored in the namespace; when it throws, store nothing and rethrow its error.
    ///
    /// - Parameter checkpoint: the checkpoint, its channels whole, with no answer.
    func append(_ checkpoint: Checkpoint, checking rules: AppendRules) async throws

    /// Reads one checkpoint whole, with its pause and answer.
    ///
    /// - Parameter id: the checkpoint, or `nil` for the namespace's head (the checkpoint
    ///   appended last).
    /// - Returns: `nil` when the thread, namespace or id is not stored.
    func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint?

    /// Lists a namespace's checkpoints newest first (by id), without their channels.
    ///
    /// - Parameters:
    ///   - before: only ids smaller than this one; `nil` from the newest.
    ///   - limit: the most records to return (at least 1); fewer means there are no more.
    func records(thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int) async throws
        -> [CheckpointRecord]

    /// Records an answer in one atomic step, if `rules` approve.
    ///
    /// In the atomic step, call ``AnswerRules/check(head:pause:answered:)`` with the
    /// namespace's head and its pause, and a way to ask whether any of the namespace's
    /// checkpoints holds an answer to ``AnswerRules/pauseID``; it returns the checkpoint the
    /// answer belongs to. When it throws, store nothing and rethrow its error.
    func recordAnswer(_ answer: PauseAnswer, thread: ThreadID, namespace: String, checking rules: AnswerRules)
        async throws

    /// Deletes these checkpoints of a namespace (retention). Ids that are not stored are skipped.
    func delete(_ ids: [CheckpointID], thread: ThreadID, namespace: String) async throws

    /// Deletes everything stored for a thread, in every namespace. A thread that is not stored
    /// is not an error.
    func deleteThread(_ thread: ThreadID) async throws

    /// Counts what a thread occupies, in every namespace: its checkpoints, and the channel
    /// values and bytes they store (a whole-state storage counts every checkpoint's channels).
    func storageStatistics(thread: ThreadID) async throws -> StorageStatistics

    /// Every thread whose head is paused with no answer (the inbox), in any order.
    ///
    /// `query` is a hint: the storage may narrow by its reason or tenant, but need not; the
    /// shared layer filters, orders by pause time and pages what this returns. The default
    /// throws ``CheckpointError/Code/unsupported``: a storage without an inbox does not declare
    /// the `inbox` capability to the conformance suite.
    func waitingPauses(_ query: InboxQuery) async throws -> [PausedThread]

    /// The threads' namespaces, with their head, last activity, checkpoint count and waiting
    /// pause, in any order.
    ///
    /// `query` is a hint: the storage may narrow by any of its filters and its cursor, and
    /// should when it can (a store with many threads keeps an index by activity); the shared
    /// layer filters, orders and pages what this returns. The activity is the latest of the
    /// namespace's checkpoints' ``CheckpointSummary/createdAt`` and its answers' times; the
    /// count leaves out pruned checkpoints.
    func threads(_ query: ThreadQuery) async throws -> [ThreadSummary]

    /// Releases what the storage holds. ``StorageCheckpointer`` calls it once, from its own
    /// ``Checkpointer/close()``, and refuses every later call with
    /// ``CheckpointError/Code/closed`` itself. The default does nothing.
    func close() async throws
}

extension CheckpointStorage {
    /// The inbox is not offered: throws ``CheckpointError/Code/unsupported``.
    public func waitingPauses(_ query: InboxQuery) async throws -> [PausedThread] {
        throw CheckpointError(.unsupported, "\(Self.self) keeps no inbox of waiting pauses")
    }

    /// Nothing to release.
    public func close() async throws {}
}

/// A checkpoint without its channels, as ``CheckpointStorage/records(thread:namespace:before:limit:)``
/// lists it: what history and retention need.
public struct CheckpointRecord: Sendable, Hashable {
    /// The checkpoint's id, parent, step, time and metadata.
    public var summary: CheckpointSummary
    /// Its pause, if it asks a person something.
    public var pause: Pause?
    /// The answer to its pause, once recorded.
    public var answer: PauseAnswer?

    /// Creates a record.
    public init(summary: CheckpointSummary, pause: Pause? = nil, answer: PauseAnswer? = nil) {
        self.summary = summary
        self.pause = pause
        self.answer = answer
    }

    /// Whether the checkpoint asks a question nobody has answered: retention keeps it.
    public var awaitsAnswer: Bool { pause != nil && answer == nil }
}

/// The head check of a put, handed to ``CheckpointStorage/append(_:checking:)`` to run inside
/// the storage's atomic step.
public struct AppendRules: Sendable {
    private let write: CheckpointWrite
    private let expecting: PutExpectation
    /// A failure of the write itself (a channel marked `unchanged` that its parent does not
    /// have), reported only after the head check passed, so that a conflict wins over it as it
    /// does on every backend.
    private let deferred: CheckpointError?

    init(_ write: CheckpointWrite, expecting: PutExpectation, deferred: CheckpointError?) {
        self.write = write
        self.expecting = expecting
        self.deferred = deferred
    }

    /// The id of the parent the write names, `nil` when it starts the thread.
    public var parentID: CheckpointID? { write.parentID }

    /// Decides whether the checkpoint may be appended, given the namespace as the storage sees
    /// it in its atomic step.
    ///
    /// - Parameters:
    ///   - head: the namespace's current head, `nil` when it has no checkpoint.
    ///   - contains: whether a checkpoint id is stored in the namespace (asked at most once,
    ///     for the parent, when the parent is not the head).
    /// - Throws: ``CheckpointError/Code/conflict``, ``CheckpointError/Code/invalidArgument`` or
    ///   ``CheckpointError/Code/notFound``: rethrow it, with nothing stored.
    public func check(head: CheckpointID?, contains: (CheckpointID) throws -> Bool) throws {
        try PutRules.check(write, expecting: expecting, head: head) {
            guard let parentID = write.parentID else { return true }
            return try contains(parentID)
        }
        if let deferred { throw deferred }
    }
}

/// The pause/resume check, handed to
/// ``CheckpointStorage/recordAnswer(_:thread:namespace:checking:)`` to run inside the
/// storage's atomic step.
public struct AnswerRules: Sendable {
    /// The thread answered.
    public let thread: ThreadID
    /// The pause answered.
    public let pauseID: UUID
    /// The time of the answer, compared with the pause's expiry.
    public let now: Date

    init(thread: ThreadID, pauseID: UUID, now: Date) {
        self.thread = thread
        self.pauseID = pauseID
        self.now = now
    }

    /// Decides whether the answer may be recorded.
    ///
    /// - Parameters:
    ///   - head: the namespace's head, `nil` when it has no checkpoint.
    ///   - pause: the head's pause.
    ///   - answered: whether any checkpoint of the namespace holds an answer to ``pauseID``.
    /// - Returns: the checkpoint to record the answer on (the head).
    /// - Throws: ``CheckpointError/Code/notFound``, ``CheckpointError/Code/alreadyResumed``,
    ///   ``CheckpointError/Code/stalePause`` or ``CheckpointError/Code/pauseExpired``: rethrow
    ///   it, with nothing stored.
    public func check(head: CheckpointID?, pause: Pause?, answered: () throws -> Bool) throws -> CheckpointID {
        try ResumeRules.check(thread: thread, pauseID: pauseID, head: head.map { ($0, pause) }, at: now, answered: answered)
    }
}

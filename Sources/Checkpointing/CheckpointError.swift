import Foundation

/// The error every checkpointer throws, whatever its backend.
///
/// Match on ``code`` to react to a condition; backends keep the native detail
/// (an SQLite result code, an SQLSTATE) in ``nativeCode`` and ``underlying``.
/// The ``description`` never contains checkpoint state, SQL values or keys.
///
/// ```swift
/// do { try await thread.save(state) }
/// catch let error as CheckpointError where error.code == .conflict {
///     let fresh = try await thread.latest() // another writer won: reload and retry
/// }
/// ```
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a value that can be matched. New codes may be added in any release.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case conflict, notFound, invalidThreadID, invalidArgument, corruptData, encodingFailed
            case decodingFailed, connectionFailed, migrationFailed, invalidConfiguration, closed, backendFailure
            case alreadyResumed, stalePause, pauseExpired, decryptionFailed, permissionDenied, busy, cancelled
            case unsupported
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Another writer moved the thread's head since this writer read it; nothing was written.
        public static let conflict = Code(.conflict)
        /// The thread, namespace or checkpoint asked for does not exist.
        public static let notFound = Code(.notFound)
        /// A thread id is empty, too long or contains NUL.
        public static let invalidThreadID = Code(.invalidThreadID)
        /// An argument is out of range or inconsistent (a bad namespace, limit or channel write).
        public static let invalidArgument = Code(.invalidArgument)
        /// Stored bytes could not be read back: the store was damaged or written by something else.
        public static let corruptData = Code(.corruptData)
        /// The state could not be encoded into channels.
        public static let encodingFailed = Code(.encodingFailed)
        /// Stored channels could not be decoded into the requested state type.
        public static let decodingFailed = Code(.decodingFailed)
        /// The store could not be reached (a server down or restarting, no free connection) or
        /// refused the login. An SQLite file that cannot be opened is
        /// ``invalidConfiguration`` or ``corruptData`` instead.
        public static let connectionFailed = Code(.connectionFailed)
        /// Another connection or process held the store's lock past the busy timeout (SQLite's
        /// `SQLITE_BUSY` or `SQLITE_LOCKED`); nothing was written. Retryable: the same call may
        /// succeed once the lock is free.
        public static let busy = Code(.busy)
        /// The calling task was cancelled before the call took effect; nothing was written.
        /// Every call checks for cancellation before it starts. A call that has started (was
        /// handed to its connection) runs to its end and reports its own outcome instead, so a
        /// write is never left half done and a put that committed never reports `cancelled`.
        /// Not retryable as is: the task that made the call was cancelled.
        public static let cancelled = Code(.cancelled)
        /// The store's schema could not be brought up to date.
        public static let migrationFailed = Code(.migrationFailed)
        /// A configuration value or URL is malformed or names an unknown backend.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// The checkpointer was closed.
        public static let closed = Code(.closed)
        /// The pause was answered already; the first answer stands.
        public static let alreadyResumed = Code(.alreadyResumed)
        /// The pause is no longer the thread's head: the agent went on without the answer.
        public static let stalePause = Code(.stalePause)
        /// The pause expired before it was answered.
        public static let pauseExpired = Code(.pauseExpired)
        /// A sealed value could not be opened: wrong key, unknown key id, tampered or truncated
        /// bytes, or a value moved from another thread or field. The message says which.
        public static let decryptionFailed = Code(.decryptionFailed)
        /// The store refused the operation: row-level security hides or protects the row (a
        /// thread of another tenant), or the database role lacks a privilege.
        public static let permissionDenied = Code(.permissionDenied)
        /// The backend failed in a way not covered by another code; see ``CheckpointError/nativeCode``.
        public static let backendFailure = Code(.backendFailure)
        /// The store does not offer this operation (a ``CheckpointStorage`` that keeps no inbox,
        /// asked for waiting pauses). Not retryable: the same store never will.
        public static let unsupported = Code(.unsupported)

        /// The code's name, such as `conflict`.
        public var description: String {
            switch value {
            case .conflict: "conflict"
            case .notFound: "notFound"
            case .invalidThreadID: "invalidThreadID"
            case .invalidArgument: "invalidArgument"
            case .corruptData: "corruptData"
            case .encodingFailed: "encodingFailed"
            case .decodingFailed: "decodingFailed"
            case .connectionFailed: "connectionFailed"
            case .migrationFailed: "migrationFailed"
            case .invalidConfiguration: "invalidConfiguration"
            case .closed: "closed"
            case .backendFailure: "backendFailure"
            case .alreadyResumed: "alreadyResumed"
            case .stalePause: "stalePause"
            case .pauseExpired: "pauseExpired"
            case .decryptionFailed: "decryptionFailed"
            case .permissionDenied: "permissionDenied"
            case .busy: "busy"
            case .cancelled: "cancelled"
            case .unsupported: "unsupported"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// A human-readable explanation that never includes state, SQL values or keys.
    public var message: String
    /// The backend's own code, such as `"SQLITE_BUSY (5)"`, when there is one.
    public var nativeCode: String?
    /// The error that caused this one, when there is one.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, nativeCode: String? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.underlying = underlying
        self.isRetryable = code == .connectionFailed || code == .busy
    }

    /// Whether the same call may succeed if simply tried again later: the store could not be
    /// reached (a server restarting, a full connection pool), was locked by another writer
    /// past the busy timeout, or ran out of disk or memory. A `conflict` is not retryable as
    /// is: reload the head first; nor is a damaged store or a wrong configuration (a path that
    /// is a directory, a read-only file), which no retry fixes.
    /// By default, true for ``Code/connectionFailed`` and ``Code/busy``; a backend sets it to
    /// false when the failure is permanent (refused credentials, a database that does not
    /// exist) and to true for a transient ``Code/backendFailure`` (a full disk).
    public var isRetryable: Bool

    /// The code, the message and the native code. Never state, SQL values or keys.
    public var description: String {
        var text = "CheckpointError.\(code): \(message)"
        if let nativeCode { text += " [\(nativeCode)]" }
        return text
    }
}

/// `localizedDescription` (what much logging code prints) is the same text as ``description``,
/// not Foundation's generic "The operation could not be completed".
extension CheckpointError: LocalizedError {
    /// The code, the message and the native code, as ``description``.
    public var errorDescription: String? { description }
}

extension CheckpointError {
    /// ``Code/cancelled``: the caller's task was cancelled before the call started. The
    /// underlying error is a `CancellationError`.
    package static var cancellation: CheckpointError {
        CheckpointError(
            .cancelled, "the calling task was cancelled before the call started; nothing was written",
            underlying: CancellationError())
    }
}

/// Throws ``CheckpointError/Code/cancelled`` when the current task is cancelled: every
/// backend calls it before a call starts.
package func throwIfCancelled() throws(CheckpointError) {
    if Task.isCancelled { throw CheckpointError.cancellation }
}

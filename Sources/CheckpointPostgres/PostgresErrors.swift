import Checkpointing

/// Turns libpq's and the server's failures into ``CheckpointError``, keeping the SQLSTATE.
enum PostgresErrors {
    /// The pool's view of an error: mapped, and whether the connection broke.
    static func classify(_ error: any Error) -> (error: any Error, connectionLost: Bool) {
        switch error {
        case let error as PostgresError: (map(error), error.connectionLost)
        case let error as CheckpointError: (error, error.code == .connectionFailed)
        default: (error, false)
        }
    }

    /// The one mapping of SQLSTATEs to ``CheckpointError``, by class and by code (README,
    /// "Errors"). Retryable: an unreachable or
    /// restarting server, no free connection slot, a lock past `lock_timeout`, a full disk,
    /// the server out of memory, a statement cancelled by `statement_timeout`. Not retryable:
    /// refused credentials, a missing or dropped database, a read-only server, damaged data,
    /// a refused value, a conflict (reload the head first).
    static func map(_ error: PostgresError) -> CheckpointError {
        let state = error.sqlState ?? ""
        let code: CheckpointError.Code
        let reason: String
        var retryable: Bool?
        switch state {
        case _ where error.connectionLost && state.isEmpty,
            _ where state.hasPrefix("08"), "57P01", "57P02", "57P03", "57P05":
            code = .connectionFailed
            reason = "the PostgreSQL server cannot be reached or closed the connection; retry later"
        case "28P01", "28000":
            code = .connectionFailed
            reason = "PostgreSQL refused the credentials"
            retryable = false
        case "3D000", "57P04":
            code = .connectionFailed
            reason = "the PostgreSQL database does not exist or was dropped"
            retryable = false
        case "53300":
            code = .connectionFailed
            reason = "PostgreSQL has no free connection slots"
        case "42501":
            code = .permissionDenied
            reason = "PostgreSQL denied the operation (row-level security or privileges)"
        case "40001", "40P01":
            code = .conflict
            reason = "a concurrent transaction conflicted with this one; nothing was written"
        case "55P03":
            code = .busy
            reason = "a lock was not available within the session's lock_timeout; nothing was written"
        case "53100":
            code = .backendFailure
            reason = "the PostgreSQL server's disk is full; nothing was written, and the same call may succeed once space frees"
            retryable = true
        case "53200":
            code = .backendFailure
            reason = "the PostgreSQL server ran out of memory; nothing was written"
            retryable = true
        case "57014":
            code = .backendFailure
            reason = "the PostgreSQL server cancelled the statement (statement_timeout, or an administrator); nothing was written"
            retryable = true
        case "XX001", "XX002":
            code = .corruptData
            reason = "PostgreSQL found damaged data or a damaged index; restore or reindex"
        case "25006":
            code = .invalidConfiguration
            reason =
                "the PostgreSQL server accepts only reads (a standby, or default_transaction_read_only): point the URL at the primary"
        case _ where state.hasPrefix("22"), _ where state.hasPrefix("23"), _ where state.hasPrefix("54"):
            code = .invalidArgument
            reason = "PostgreSQL refused a value (too large, not representable, or breaking a rule of the schema); nothing was written"
        default:
            code = .backendFailure
            reason = "a PostgreSQL call failed"
        }
        var mapped = CheckpointError(code, reason, nativeCode: state.isEmpty ? nil : "SQLSTATE \(state)", underlying: error)
        if let retryable { mapped.isRetryable = retryable }
        return mapped
    }
}

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

    static func map(_ error: PostgresError) -> CheckpointError {
        let state = error.sqlState ?? ""
        let code: CheckpointError.Code
        let reason: String
        switch state {
        case _ where error.connectionLost && state.isEmpty,
            _ where state.hasPrefix("08"), "57P01", "57P02", "57P03":
            code = .connectionFailed
            reason = "the PostgreSQL server cannot be reached or closed the connection; retry later"
        case "28P01", "28000":
            code = .connectionFailed
            reason = "PostgreSQL refused the credentials"
        case "3D000":
            code = .connectionFailed
            reason = "the PostgreSQL database does not exist"
        case "42501":
            code = .permissionDenied
            reason = "PostgreSQL denied the operation (row-level security or privileges)"
        case "40001", "40P01":
            code = .conflict
            reason = "a concurrent transaction conflicted with this one; nothing was written"
        case "55P03":
            code = .busy
            reason = "a lock was not available within the session's lock_timeout; nothing was written"
        case "53300":
            code = .connectionFailed
            reason = "PostgreSQL has no free connection slots"
        default:
            code = .backendFailure
            reason = "a PostgreSQL call failed"
        }
        var mapped = CheckpointError(code, reason, nativeCode: state.isEmpty ? nil : "SQLSTATE \(state)", underlying: error)
        if ["28P01", "28000", "3D000"].contains(state) { mapped.isRetryable = false }
        return mapped
    }
}

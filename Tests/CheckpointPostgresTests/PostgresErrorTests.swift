@testable import CheckpointPostgres
import Checkpointing
import Testing

/// The SQLSTATE table, class by class: what each becomes and whether it is retryable. The
/// rows a real server produces (refused credentials, an unreachable server, row-level
/// security) are checked against the server in PostgresBackendTests.
@Suite("Postgres errors")
struct PostgresErrorTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var state: String?
        var code: CheckpointError.Code
        var retryable: Bool
        var connectionLost = false

        var testDescription: String { state.map { "SQLSTATE \($0)" } ?? "no SQLSTATE, connection lost" }
    }

    @Test(arguments: [
        Row(state: nil, code: .connectionFailed, retryable: true, connectionLost: true),
        Row(state: "08006", code: .connectionFailed, retryable: true),
        Row(state: "08001", code: .connectionFailed, retryable: true),
        Row(state: "57P01", code: .connectionFailed, retryable: true),  // admin_shutdown
        Row(state: "57P03", code: .connectionFailed, retryable: true),  // cannot_connect_now
        Row(state: "57P05", code: .connectionFailed, retryable: true),  // idle_session_timeout
        Row(state: "57P04", code: .connectionFailed, retryable: false),  // database_dropped
        Row(state: "53300", code: .connectionFailed, retryable: true),  // too_many_connections
        Row(state: "28P01", code: .connectionFailed, retryable: false),
        Row(state: "28000", code: .connectionFailed, retryable: false),
        Row(state: "3D000", code: .connectionFailed, retryable: false),
        Row(state: "42501", code: .permissionDenied, retryable: false),
        Row(state: "40001", code: .conflict, retryable: false),
        Row(state: "40P01", code: .conflict, retryable: false),
        Row(state: "55P03", code: .busy, retryable: true),
        Row(state: "53100", code: .backendFailure, retryable: true),  // disk_full
        Row(state: "53200", code: .backendFailure, retryable: true),  // out_of_memory
        Row(state: "57014", code: .backendFailure, retryable: true),  // query_canceled (statement_timeout)
        Row(state: "XX001", code: .corruptData, retryable: false),  // data_corrupted
        Row(state: "XX002", code: .corruptData, retryable: false),  // index_corrupted
        Row(state: "25006", code: .invalidConfiguration, retryable: false),  // read_only_sql_transaction
        Row(state: "22001", code: .invalidArgument, retryable: false),  // string_data_right_truncation
        Row(state: "22P05", code: .invalidArgument, retryable: false),  // untranslatable_character
        Row(state: "23505", code: .invalidArgument, retryable: false),  // unique_violation
        Row(state: "54000", code: .invalidArgument, retryable: false),  // program_limit_exceeded
        Row(state: "58030", code: .backendFailure, retryable: false),  // io_error
        Row(state: "42P01", code: .backendFailure, retryable: false),  // undefined_table
        Row(state: "XX000", code: .backendFailure, retryable: false),  // internal_error
    ])
    func everySQLStateClassMapsDeliberately(_ row: Row) {
        let error = PostgresErrors.map(
            PostgresError(sqlState: row.state, message: "m", connectionLost: row.connectionLost))
        #expect(error.code == row.code, "\(error)")
        #expect(error.isRetryable == row.retryable, "\(error)")
        #expect(error.nativeCode == row.state.map { "SQLSTATE \($0)" })
    }
}

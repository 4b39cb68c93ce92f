import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Testing

/// A Postgres URL is checked whole before anything connects: a bad part is
/// `invalidConfiguration`, not a retryable `connectionFailed`.
@Suite("Postgres URLs")
struct PostgresURLTests {
    @Test(arguments: [
        "postgres://u:s3cr@127.0.0.1:99999/db", "postgres://u:s3cr@:5432/db", "postgres://u:s3cr@h/db?pool_max=1001",
        "postgres://u:s3cr@h/db?connect_timeout=99999", "postgres://u:s3cr@h/db?pool_min=2&pool_min=3",
        "postgres://u:s3cr@h/d%00b", "postgres://u:s3cr@h/db?tenant=a%00b", "postgresql://u:s3cr@h:65536/db",
    ])
    func badURLsFailBeforeConnecting(_ url: String) async throws {
        let error = try await requireError(.invalidConfiguration) { try await PostgresCheckpointer(url: url) }
        #expect(!error.isRetryable)
        #expect(!error.description.contains("s3cr"), "\(error)")
    }

    @Test func aPortOutOfRangeSetInCodeIsRefusedToo() async throws {
        let error = try await requireError(.invalidConfiguration) {
            try await PostgresCheckpointer(configuration: .init(host: "127.0.0.1", port: 99999, user: "u"))
        }
        #expect(error.message.contains("port"))
    }
}

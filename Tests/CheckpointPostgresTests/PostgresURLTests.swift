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
        "postgres://u:s3cr@h/db?inline_reply_wait_us=10001", "postgres://u:s3cr@h/db?inline_reply_wait_us=-1",
    ])
    func badURLsFailBeforeConnecting(_ url: String) async throws {
        let error = try await requireError(.invalidConfiguration) { try await PostgresCheckpointer(url: url) }
        #expect(!error.isRetryable)
        #expect(!error.description.contains("s3cr"), "\(error)")
    }

    @Test func theInlineReplyWaitIsReadInMicroseconds() throws {
        let url = try CheckpointerURL("postgres://u@h/db?inline_reply_wait_us=0")
        #expect(try PostgresCheckpointer.Configuration(url: url).inlineReplyWait == .zero)
        let defaults = try PostgresCheckpointer.Configuration(url: CheckpointerURL("postgres://u@h/db"))
        #expect(defaults.inlineReplyWait == .microseconds(500))
    }

    @Test func aPortOutOfRangeSetInCodeIsRefusedToo() async throws {
        let error = try await requireError(.invalidConfiguration) {
            try await PostgresCheckpointer(configuration: .init(host: "127.0.0.1", port: 99999, user: "u"))
        }
        #expect(error.message.contains("port"))
    }
}

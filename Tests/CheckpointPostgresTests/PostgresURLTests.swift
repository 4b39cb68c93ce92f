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

/// Multi-host URLs (libpq's form) and read replicas, read before anything connects.
@Suite("Postgres failover and replica URLs")
struct PostgresServerListURLTests {
    @Test func severalHostsAreThePrimaryAndItsFailoverServers() throws {
        let url = try CheckpointerURL("postgres://u:s3cr@db-a:5433,db-b,[::1]:5434/agents?pool_max=4")
        #expect(url.hosts.map(\.description) == ["db-a:5433", "db-b", "::1:5434"])
        #expect(url.host == "db-a" && url.port == 5433 && url.path == "/agents")
        #expect(url.description == "postgres://u:***@db-a:5433,db-b,[::1]:5434/agents?pool_max=4")
        let configuration = try PostgresCheckpointer.Configuration(url: url)
        #expect(configuration.host == "db-a" && configuration.port == 5433)
        #expect(
            configuration.failoverServers == [.init(host: "db-b", port: 5432), .init(host: "::1", port: 5434)])
        #expect(configuration.database == "agents" && configuration.poolMax == 4)
        #expect(configuration.description.hasPrefix("postgres://u:***@db-a:5433,db-b:5432,[::1]:5434/agents?"))
    }

    @Test func replicasAreAListOfHostsAndPorts() throws {
        let configuration = try PostgresCheckpointer.Configuration(
            url: CheckpointerURL("postgres://u@primary/db?replicas=r1:6432,r2,%5B::1%5D:7000&target_session_attrs=read-write"))
        #expect(configuration.replicas == [.init(host: "r1", port: 6432), .init(host: "r2"), .init(host: "::1", port: 7000)])
        #expect(configuration.failoverServers.isEmpty)
        #expect(configuration.description.contains("replicas=r1:6432,r2:5432,[::1]:7000"))
    }

    @Test(arguments: [
        "postgres://u:s3cr@a,,b/db", "postgres://u:s3cr@a,b:0/db", "postgres://u:s3cr@a,b:x/db",
        "postgres://u:s3cr@a/db?replicas=r1,", "postgres://u:s3cr@a/db?replicas=r1:70000",
        "postgres://u:s3cr@a/db?target_session_attrs=any", "postgres://u:s3cr@a/db?replicas=",
    ])
    func badServerListsFailBeforeConnecting(_ url: String) async throws {
        let error = try await requireError(.invalidConfiguration) { try await PostgresCheckpointer(url: url) }
        #expect(!error.isRetryable)
        #expect(!error.description.contains("s3cr"), "\(error)")
    }

    @Test func aHostWithACommaSetInCodeIsRefused() async throws {
        var configuration = PostgresCheckpointer.Configuration(host: "a,b", user: "u")
        var error = try await requireError(.invalidConfiguration) {
            try await PostgresCheckpointer(configuration: configuration)
        }
        #expect(error.message.contains("failoverServers"))
        configuration.host = "a"
        configuration.replicas = [.init(host: "r", port: 0)]
        error = try await requireError(.invalidConfiguration) { try await PostgresCheckpointer(configuration: configuration) }
        #expect(error.message.contains("port"))
    }
}

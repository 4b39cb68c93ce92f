import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation

/// The PostgreSQL server the test script started (`scripts/test.sh` exports its URL).
enum TestServer {
    static let variable = "CHECKPOINT_TEST_POSTGRES_URL"

    /// The server's URL. Fails loudly when the tests run without one: they never pass by
    /// skipping.
    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration,
                "\(variable) is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
        }
        return url
    }

    /// A URL whose tables live in a fresh schema, so that a test sees only its own data.
    static func isolatedURL(_ parameters: String = "") throws -> String {
        let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        return try url() + "?schema=\(schema)" + (parameters.isEmpty ? "" : "&" + parameters)
    }

    /// A checkpointer on a fresh schema.
    static func checkpointer(_ parameters: String = "") async throws -> PostgresCheckpointer {
        try await PostgresCheckpointer(url: isolatedURL(parameters))
    }
}

/// The repository's root, for its scripts.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@discardableResult
func shell(_ arguments: [String]) throws -> String { try runCommand(arguments) }

/// A PostgreSQL cluster of a test's own, for tests that stop and restart the server.
final class PrivateServer: Sendable {
    let directory: String
    let port: Int
    let url: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-pg-\(UUID().uuidString)").path
        // An even port below Linux's ephemeral range (32768 and up), so that no client's
        // outgoing connection takes it while the server is down, and the odd one after it is
        // free for a standby (``ReplicatedServers``).
        port = 2 * Int.random(in: 10_000..<13_000)
        url = try shell([repositoryRoot.appendingPathComponent("scripts/postgres-server.sh").path, "start", directory, "\(port)"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() throws { try shell([script, "stop", directory]) }
    func kill() throws { try shell([script, "kill", directory]) }
    func start() throws { try shell([script, "start", directory, "\(port)"]) }

    private var script: String { repositoryRoot.appendingPathComponent("scripts/postgres-server.sh").path }

    deinit {
        _ = try? shell([script, "destroy", directory])
    }
}

/// The PgBouncer the test script started in front of the test server, in transaction pooling
/// mode (`scripts/test.sh` exports its URL).
enum TestBouncer {
    static let variable = "CHECKPOINT_TEST_PGBOUNCER_URL"

    /// The pooler's URL (database `checkpoints`). Fails loudly when the tests run without one.
    static func url() throws -> String {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration,
                "\(variable) is not set: run the tests with scripts/test.sh, which starts PgBouncer")
        }
        return url
    }

    /// The URL through the pooler of a database of the test's own, created on the server for
    /// it (a transaction pooler keeps no `search_path`, so a test is isolated by database,
    /// not by schema), and the database's name.
    static func isolatedURL(_ parameters: String = "") throws -> (url: String, database: String) {
        let database = try createDatabase()
        var url = try url()
        url = String(url[..<(url.lastIndex(of: "/") ?? url.endIndex)]) + "/" + database
        return (url + (parameters.isEmpty ? "" : "?" + parameters), database)
    }

    /// A new database owned by the test role, made by the server's superuser.
    static func createDatabase() throws -> String {
        let name = "b_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let server = try CheckpointerURL(TestServer.url())
        try runCommand(
            [
                "PGPASSWORD=admin-secret", "psql", "-h", server.host ?? "127.0.0.1", "-p",
                "\(server.port ?? 5432)", "-U", "checkpoint_admin", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc",
                "CREATE DATABASE \(name) OWNER checkpoint_app",
            ])
        return name
    }

    /// The client connections the pooler at `port` holds for `database`, from its admin
    /// console (`SHOW CLIENTS`).
    static func clients(port: Int, database: String) throws -> Int {
        let output = try runCommand(
            [
                "PGPASSWORD=app-secret", "psql", "-h", "127.0.0.1", "-p", "\(port)", "-U",
                "checkpoint_app", "-d", "pgbouncer", "-AtF", ",", "-c", "SHOW CLIENTS",
            ])
        return output.split(separator: "\n").filter { $0.split(separator: ",").dropFirst(2).first == Substring(database) }
            .count
    }
}

/// A PgBouncer of a test's own in front of the test server, for tests that set its timeouts.
final class PrivateBouncer: Sendable {
    let directory: String
    let port: Int
    let url: String

    /// - Parameters: the pooler's `client_idle_timeout` and `server_idle_timeout`, in seconds.
    init(clientIdleTimeout: Int, serverIdleTimeout: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-bouncer-\(UUID().uuidString)")
            .path
        // Below Linux's ephemeral ports, apart from the PostgreSQL servers' (see ``PrivateServer``).
        port = Int.random(in: 26_000..<29_000)
        let server = try CheckpointerURL(TestServer.url())
        url = try shell([
            Self.script, "start", directory, "\(port)", "\(server.port ?? 5432)", "\(clientIdleTimeout)", "\(serverIdleTimeout)", "4",
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static var script: String { repositoryRoot.appendingPathComponent("scripts/pgbouncer-server.sh").path }

    deinit {
        _ = try? shell([Self.script, "destroy", directory])
    }
}

/// A primary of a test's own and its streaming standby (`pg_basebackup`, asynchronous
/// replication, so that the primary goes on when the standby is stopped), for the
/// read-replica tests. (The failover test, in `scripts/fault-tests.sh`, makes it synchronous.)
final class ReplicatedServers: Sendable {
    let primary: PrivateServer
    let standbyDirectory: String
    let standbyPort: Int
    /// The standby's URL (database `checkpoints`, role `checkpoint_app`).
    let standbyURL: String

    init() throws {
        primary = try PrivateServer()
        standbyDirectory = primary.directory + "-standby"
        standbyPort = primary.port + 1
        standbyURL = try shell([Self.script, "start-standby", standbyDirectory, "\(standbyPort)", primary.directory, "\(primary.port)", "async"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs SQL on the standby as its superuser; returns the output's first line.
    @discardableResult
    func standbySQL(_ sql: String) throws -> String {
        try runCommand([
            "PGPASSWORD=admin-secret", "psql", "-h", "127.0.0.1", "-p", "\(standbyPort)", "-U", "checkpoint_admin", "-d",
            "checkpoints", "-v", "ON_ERROR_STOP=1", "-qtAc", sql,
        ]).split(separator: "\n").first.map(String.init) ?? ""
    }

    /// Stops the standby abruptly.
    func killStandby() throws { try shell([Self.script, "kill", standbyDirectory]) }

    private static var script: String { repositoryRoot.appendingPathComponent("scripts/postgres-server.sh").path }

    deinit {
        _ = try? shell([Self.script, "destroy", standbyDirectory])
    }
}

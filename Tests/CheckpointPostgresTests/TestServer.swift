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
        port = Int.random(in: 56_000..<60_000)
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

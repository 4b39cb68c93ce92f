import Synchronization
import CheckpointPostgres
@testable import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation

/// The servers the test script started (`scripts/test.sh` exports their URLs). The tests fail
/// loudly without them; they never pass by skipping.
enum TestServers {
    static func url(_ variable: String) throws -> String {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration, "\(variable) is not set: run the tests with scripts/test.sh, which starts the servers")
        }
        return url
    }

    static func redisURL() throws -> String { try url("CHECKPOINT_TEST_REDIS_URL") }
    static func postgresURL() throws -> String { try url("CHECKPOINT_TEST_POSTGRES_URL") }

    /// A key prefix no other test uses.
    static func uniquePrefix() -> String { "test-\(UUID().uuidString.prefix(8))" }

    /// A Postgres URL whose tables live in a fresh schema.
    static func isolatedPostgresURL() throws -> String {
        try postgresURL() + "?schema=r_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }
}

/// A database file in a fresh temporary folder.
final class TemporaryFolder: Sendable {
    let url: URL
    var database: String { url.appendingPathComponent("checkpoints.db").path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Opens a cache in front of `base` on the test server, with a fresh prefix.
func cached(
    _ base: any Checkpointer, redisURL: String? = nil, prefix: String = TestServers.uniquePrefix(),
    _ parameters: String = ""
) async throws -> RedisCachedCheckpointer {
    let url = try (redisURL ?? TestServers.redisURL()) + "?prefix=\(prefix)" + (parameters.isEmpty ? "" : "&" + parameters)
    return try await RedisCachedCheckpointer(base: base, configuration: .init(url: CheckpointerURL(url)))
}

/// Raw access to the test Redis, to read and damage entries.
final class RawRedis: @unchecked Sendable {
    // Used from one test at a time, sequentially.
    private let connection: RedisConnection

    init(url: String) throws {
        let parsed = try CheckpointerURL(url)
        connection = try RedisConnection(
            host: parsed.host ?? "127.0.0.1", port: parsed.port ?? 6379, password: parsed.password, database: 0,
            timeout: .seconds(2))
    }

    @discardableResult
    func command(_ words: [Data]) throws -> RedisReply { try connection.command(words) }

    func keys(_ pattern: String) throws -> [Data] {
        guard case .array(let items) = try command([Data("KEYS".utf8), Data(pattern.utf8)]) else { return [] }
        return items.compactMap { if case .string(let key) = $0 { key } else { nil } }
    }

    func get(_ key: Data) throws -> Data? {
        if case .string(let value) = try command([Data("GET".utf8), key]) { return value }
        return nil
    }

    func set(_ key: Data, _ value: Data) throws { try command([Data("SET".utf8), key, value]) }

    /// The server's `connected_clients`, this connection included.
    func connectedClients() throws -> Int {
        guard case .string(let info) = try command([Data("INFO".utf8), Data("clients".utf8)]) else { return -1 }
        let line = String(decoding: info, as: UTF8.self).split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("connected_clients:") }
        return line.flatMap { Int($0.dropFirst("connected_clients:".count).trimmingCharacters(in: .whitespaces)) } ?? -1
    }
}

/// A redis-server of a test's own, for tests that stop, freeze and restart it.
final class PrivateRedis: Sendable {
    let directory: String
    let port: Int
    let url: String
    private let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/redis-server.sh").path

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-redis-\(UUID().uuidString)").path
        // Below Linux's ephemeral ports (32768 and up), so that no client's outgoing connection
        // takes it while the server is down; apart from the PostgreSQL test servers' ports.
        port = Int.random(in: 29_000..<32_000)
        url = try runCommand([script, "start", directory, "\(port)"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func kill() throws { try runCommand([script, "kill", directory]) }
    func start() throws { try runCommand([script, "start", directory, "\(port)"]) }

    /// Freezes the server (SIGSTOP): connected clients time out, its data stays.
    func freeze() throws { try runCommand(["kill", "-STOP", pid()]) }
    func thaw() throws { try runCommand(["kill", "-CONT", pid()]) }

    private func pid() throws -> String {
        try String(contentsOfFile: directory + "/redis.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit {
        _ = try? runCommand([script, "destroy", directory])
    }
}

/// A store whose puts of one thread wait until ``release()``: a put under way at a chosen
/// moment. Everything else is the wrapped store's.
final class HeldPuts: Checkpointer {
    let base: any Checkpointer
    let held: ThreadID
    private let state = Mutex<(entered: Bool, released: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, false, []))

    init(_ base: any Checkpointer, holding held: ThreadID) {
        self.base = base
        self.held = held
    }

    /// Lets the held puts go on.
    func release() {
        let waiters = state.withLock { state in
            state.released = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether a held put has started.
    var entered: Bool { state.withLock { $0.entered } }

    func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        if write.thread == held {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waits = state.withLock { state in
                    state.entered = true
                    guard !state.released else { return false }
                    state.waiters.append(continuation)
                    return true
                }
                if !waits { continuation.resume() }
            }
        }
        try await base.put(write, expecting: expecting)
    }

    func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try await base.checkpoint(thread: thread, namespace: namespace, id: id)
    }
    func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try await base.history(thread: thread, namespace: namespace, before: before, limit: limit, where: filter)
    }
    func deleteThread(_ thread: ThreadID) async throws { try await base.deleteThread(thread) }
    func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try await base.prune(thread: thread, namespace: namespace, by: rule)
    }
    func storageStatistics(thread: ThreadID) async throws -> StorageStatistics { try await base.storageStatistics(thread: thread) }
    func pausedThreads(_ query: InboxQuery) async throws -> InboxPage { try await base.pausedThreads(query) }
    func threads(_ query: ThreadQuery) async throws -> ThreadPage { try await base.threads(query) }
    func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport { try await base.sweepIdle(batch) }
    func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try await base.resume(thread: thread, namespace: namespace, pauseID: pauseID, response: response, at: now)
    }
    func close() async throws { try await base.close() }
    func health() async -> HealthReport { await base.health() }
}

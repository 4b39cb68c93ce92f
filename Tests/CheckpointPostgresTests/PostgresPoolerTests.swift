@testable import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation
import MetricsTestKit
import Testing

/// The whole conformance suite through a real PgBouncer in `pool_mode=transaction`, with the
/// URL as a user would write it (the pooler is found, not declared).
@Suite("PostgresCheckpointer through PgBouncer (transaction pooling)")
struct PostgresPoolerConformanceTests {
    @Test(arguments: CheckpointerConformance.checks)
    func conformsThroughATransactionPooler(_ check: ConformanceCheck) async throws {
        let checkpointer = try await PostgresCheckpointer(url: TestBouncer.isolatedURL("pool_max=4").url)
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }
}

@Suite("PostgresCheckpointer through PgBouncer")
struct PostgresPoolerTests {
    /// Two app instances (each a pool of several connections) through one transaction pooler
    /// that has fewer server connections: statements of one client connection run on server
    /// connections the other one used. With named statements this fails ("prepared statement
    /// ... does not exist"); found as a pooler, every call succeeds, and so with the mode
    /// declared.
    @Test(arguments: ["", "pooler=transaction"])
    func twoInstancesSharingServerConnectionsFailNoCall(_ parameters: String) async throws {
        let (url, _) = try TestBouncer.isolatedURL(["pool_max=6", parameters].filter { !$0.isEmpty }.joined(separator: "&"))
        let first = try await PostgresCheckpointer(url: url)
        let second = try await PostgresCheckpointer(url: url)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for agent in 0..<12 {
                let checkpointer = agent.isMultiple(of: 2) ? first : second
                group.addTask {
                    let thread = try checkpointer.thread("acme:pooled-\(agent)", as: Turn.self)
                    for turn in 1...15 {
                        try await thread.save(Turn(messages: ["turn \(turn)"], turn: turn))
                        #expect(try await thread.latest()?.turn == turn)
                        _ = try await checkpointer.history(thread: ThreadID("acme:pooled-\(agent)"), limit: 3)
                    }
                }
            }
            try await group.waitForAll()
        }
        let page = try await first.threads(ThreadQuery(tenant: "acme", limit: 100))
        #expect(page.items.count == 12)
        #expect(page.items.allSatisfy { $0.checkpointCount == 15 })
        try await first.close()
        try await second.close()
    }

    /// Tenant mode binds each connection's session to a tenant; a transaction pooler would run
    /// the next transaction on a server connection bound to no tenant (or another), which
    /// row-level security would then not restrict. Opening refuses, found or declared.
    @Test func tenantModeRefusesATransactionPooler() async throws {
        let (url, _) = try TestBouncer.isolatedURL("tenant=acme")
        await #expect(throws: CheckpointError.self) { try await PostgresCheckpointer(url: url) }
        do {
            _ = try await PostgresCheckpointer(url: url)
        } catch let error as CheckpointError {
            #expect(error.code == .invalidConfiguration)
            #expect(!error.isRetryable)
            #expect("\(error)".contains("pooler"), "\(error)")
        }
        let declared = try CheckpointerURL(url + "&pooler=transaction")
        #expect(throws: CheckpointError.self) { try PostgresCheckpointer.Configuration(url: declared).validate() }
        let schema = try CheckpointerURL(url.replacingOccurrences(of: "tenant=acme", with: "schema=s") + "&pooler=transaction")
        #expect(throws: CheckpointError.self) { try PostgresCheckpointer.Configuration(url: schema).validate() }
    }

    /// Four processes open a fresh database through the pooler at once: the schema is
    /// migrated once, under a transaction's advisory lock (a session's could be taken on one
    /// server connection and released on another, or never).
    @Test func fourProcessesMigrateThroughThePoolerOnce() async throws {
        let (url, database) = try TestBouncer.isolatedURL()
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<4 { group.addTask { try await runExampleAgent(["--inbox"], url: url) } }
            var outputs: [String] = []
            for try await output in group { outputs.append(output) }
            return outputs
        }
        #expect(outputs.allSatisfy { $0.contains("No thread is waiting") }, "\(outputs)")
        let direct = try TestServer.url()
        let checkpointer = try await PostgresCheckpointer(
            url: String(direct[..<(direct.lastIndex(of: "/") ?? direct.endIndex)]) + "/" + database)
        let rows = try await checkpointer.diagnosticQuery("SELECT name, count(*) FROM checkpoint_migrations GROUP BY name")
        #expect(Set(rows.map { $0[0] }) == Set(PostgresSchema.migrations.map(\.name)))
        #expect(rows.allSatisfy { $0[1] == "1" })
        let locks = try await checkpointer.diagnosticQuery(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
            [database])
        #expect(locks == [["0"]], "no advisory lock stays behind in a pooled server connection")
        try await checkpointer.close()
    }

    /// PgBouncer closes client connections idle longer than its `client_idle_timeout` and
    /// server connections idle longer than `server_idle_timeout` (1 s each here). After each
    /// idle period the pooler has closed every one of the app's connections, and the next
    /// calls still succeed: the pool finds each closed connection and opens a new one before
    /// using it. Not one call fails.
    @Test func connectionsThePoolerDroppedWhileIdleFailNoCall() async throws {
        let bouncer = try PrivateBouncer(clientIdleTimeout: 1, serverIdleTimeout: 1)
        let database = try TestBouncer.createDatabase()
        let metrics = TestMetrics()
        var configuration = try PostgresCheckpointer.Configuration(
            url: CheckpointerURL("\(bouncer.url.prefix(while: { $0 != "?" }).dropLast("checkpoints".count))\(database)?pool_max=3"))
        configuration.idleTimeout = nil  // only the pooler's own timeout closes connections here
        configuration.metricsFactory = metrics
        let checkpointer = try await PostgresCheckpointer(configuration: configuration)
        var failures: [any Error] = []
        let threads = try (0..<3).map { try checkpointer.thread("acme:idle-\($0)", as: Turn.self) }
        for round in 1...3 {
            try await withThrowingTaskGroup(of: [any Error].self) { group in
                for thread in threads {
                    group.addTask {
                        var errors: [any Error] = []
                        do {
                            try await thread.save(Turn(messages: ["round \(round)"], turn: round))
                            if try await thread.latest()?.turn != round { errors.append(CheckpointError(.corruptData, "stale")) }
                        } catch {
                            errors.append(error)
                        }
                        return errors
                    }
                }
                for try await errors in group { failures += errors }
            }
            // Idle until the pooler has closed every client connection of this database.
            try await waitUntil("PgBouncer closed the idle clients") {
                try TestBouncer.clients(port: bouncer.port, database: database) == 0
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        let replaced = try metrics.expectCounter("checkpoint_pool_connections_replaced", [("pool", "checkpointing.postgres")])
        #expect(replaced.totalValue >= 2, "the connections the pooler closed were replaced")
        try await checkpointer.close()
    }

    /// A connection unused for longer than the pool's idle timeout is replaced before the next
    /// call, so that one a proxy or firewall would drop silently (no goodbye to read) is
    /// never used.
    @Test func aConnectionUnusedPastTheIdleTimeoutIsReplacedBeforeUse() async throws {
        let metrics = TestMetrics()
        var configuration = try PostgresCheckpointer.Configuration(url: CheckpointerURL(TestServer.isolatedURL("pool_max=1")))
        configuration.idleTimeout = .seconds(2)
        configuration.metricsFactory = metrics
        let checkpointer = try await PostgresCheckpointer(configuration: configuration)
        let replaced = {
            (try? metrics.expectCounter("checkpoint_pool_connections_replaced", [("pool", "checkpointing.postgres")]))?
                .totalValue ?? 0
        }
        let first = try await checkpointer.diagnosticQuery("SELECT pg_backend_pid()")
        let before = replaced()
        #expect(try await checkpointer.diagnosticQuery("SELECT pg_backend_pid()") == first, "a busy connection stays")
        // The connection sits unused past the idle timeout (time itself is what is tested).
        let quiet = ContinuousClock.now
        while ContinuousClock.now - quiet < .milliseconds(2_500) { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try await checkpointer.diagnosticQuery("SELECT pg_backend_pid()") != first)
        #expect(replaced() == before + 1)
        try await checkpointer.close()
    }

    /// The URL's pooler and keepalive settings, and their refusals.
    @Test func poolerAndKeepaliveSettingsFromTheURL() throws {
        let base = "postgres://app@db/agents"
        let defaults = try PostgresCheckpointer.Configuration(url: CheckpointerURL(base))
        #expect(defaults.pooler == .automatic)
        #expect(defaults.keepalives == PostgresCheckpointer.Keepalives())
        #expect(defaults.idleTimeout == .seconds(300))
        #expect(defaults.connectionParameters.contains { $0 == ("keepalives_idle", "30") })
        let set = try PostgresCheckpointer.Configuration(
            url: CheckpointerURL(base + "?pooler=transaction&keepalives_idle=5&keepalives_count=2&idle_timeout=0"))
        #expect(set.pooler == .transaction)
        #expect(set.keepalives == PostgresCheckpointer.Keepalives(idle: .seconds(5), count: 2))
        #expect(set.idleTimeout == nil)
        let off = try PostgresCheckpointer.Configuration(url: CheckpointerURL(base + "?keepalives=0"))
        #expect(off.keepalives == nil)
        #expect(!off.connectionParameters.contains { $0.0 == "keepalives" })
        for bad in [
            "pooler=statement", "keepalives=2", "keepalives=0&keepalives_idle=5", "idle_timeout=-1",
            // Conflicts are refused with the URL, not only when the checkpointer opens.
            "pooler=transaction&schema=agents", "pooler=transaction&tenant=acme",
        ] {
            let error = #expect(throws: CheckpointError.self, "\(bad)") {
                try PostgresCheckpointer.Configuration(url: CheckpointerURL(base + "?" + bad))
            }
            #expect(error?.code == .invalidConfiguration, "\(bad)")
        }
    }
}

import CheckpointEncryption
@testable import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation
import MetricsTestKit
import Synchronization
import Testing

struct Turn: Codable, Sendable, Equatable {
    var messages: [String] = []
    var turn = 0
}

/// Saves one turn, reloading and retrying while the server is away or another writer won.
/// Returns the errors it met.
func saveRetrying(
    _ thread: CheckpointThread<Turn>, turn: Int, onError: (CheckpointError) -> Void = { _ in }
) async throws -> [CheckpointError] {
    var errors: [CheckpointError] = []
    while true {
        do {
            var state = try await thread.latest() ?? Turn()
            guard state.turn < turn else { return errors }  // an earlier attempt committed
            state.turn = turn
            state.messages.append("message \(turn)")
            try await thread.save(state)
            return errors
        } catch let error as CheckpointError where error.code == .connectionFailed || error.code == .conflict {
            errors.append(error)
            onError(error)
            try await Task.sleep(for: .milliseconds(100))  // a retry's back-off, not a synchronization
        }
    }
}

@Suite("PostgresCheckpointer against a real server")
struct PostgresBackendTests {
    @Test func theServerRestartsAndThePoolRecoversWithoutARestartOfTheClient() async throws {
        let server = try PrivateServer()
        let checkpointer = try await PostgresCheckpointer(url: server.url + "?pool_max=3&pool_min=2&connect_timeout=2")
        let thread = try checkpointer.thread("acme:restart", as: Turn.self)
        for turn in 1...5 { _ = try await saveRetrying(thread, turn: turn) }

        // Down: calls fail at once with a typed, retryable error.
        try server.kill()
        let start = ContinuousClock.now
        let down = try await requireError(.connectionFailed) { try await thread.latest() }
        #expect(down.isRetryable)
        #expect(ContinuousClock.now - start < .seconds(5), "a refused connection fails at once, not after a timeout")
        await #expect(throws: CheckpointError.self) { try await checkpointer.history(thread: ThreadID("acme:restart")) }
        let unhealthy = await checkpointer.health()
        #expect(unhealthy.status == .unavailable && unhealthy.problem?.contains("connectionFailed") == true, "\(unhealthy)")

        // Up again: the very next calls succeed on new connections, and nothing was lost.
        try server.start()
        let healthy = await checkpointer.health()
        #expect(healthy.status == .healthy && healthy.schema?.hasPrefix("20") == true, "\(healthy)")
        let state = try await thread.latest()
        #expect(state?.turn == 5)
        for turn in 6...8 { #expect(try await saveRetrying(thread, turn: turn).isEmpty) }

        // Killed while a writer runs: its calls fail with typed errors, then it goes on.
        let restarted = Atomic<Bool>(false)
        let turnsDone = Atomic<Int>(0)
        let failuresSeen = Atomic<Int>(0)
        let writer = Task { () -> (errors: [CheckpointError], lastTurn: Int) in
            var errors: [CheckpointError] = []
            var turn = 9
            var turnsAfterRestart = 0
            while turnsAfterRestart < 20 {
                errors += try await saveRetrying(thread, turn: turn) { _ in
                    failuresSeen.add(1, ordering: .releasing)
                }
                turnsDone.add(1, ordering: .releasing)
                if restarted.load(ordering: .acquiring) { turnsAfterRestart += 1 }
                turn += 1
            }
            return (errors, turn - 1)
        }
        // Kill the server once the writer is under way, start it again once the writer has
        // met the outage: waits for those conditions, with a deadline, not for fixed times.
        try await waitUntil("the writer saved a few turns") { turnsDone.load(ordering: .acquiring) >= 3 }
        try server.kill()
        try await waitUntil("the writer met the outage") { failuresSeen.load(ordering: .acquiring) >= 2 }
        try server.start()
        restarted.store(true, ordering: .releasing)
        let (errors, lastTurn) = try await writer.value
        #expect(!errors.isEmpty, "the writer ran while the server was down")
        #expect(errors.allSatisfy { $0.code == .connectionFailed || $0.code == .conflict }, "\(errors)")
        let final = try await checkpointer.thread("acme:restart", as: Turn.self).latest()
        #expect(final?.turn == lastTurn)
        #expect(final?.messages == (1...lastTurn).map { "message \($0)" })
        let history = try await checkpointer.history(thread: ThreadID("acme:restart"), limit: 10_000)
        #expect(history.count == lastTurn, "one checkpoint per turn: none lost, none doubled")
        try await checkpointer.close()
    }

    /// Two agent processes race on one thread, directly and through the transaction pooler:
    /// one checkpoint wins each step.
    @Test(arguments: [false, true])
    func twoProcessesRacingOnOneThreadLoseNothing(throughThePooler: Bool) async throws {
        let url = try throughThePooler ? TestBouncer.isolatedURL().url : TestServer.isolatedURL()
        _ = try await runExampleAgent(["--turns", "1"], url: url)
        async let first = runExampleAgent(["--turns", "30", "--no-approvals"], url: url)
        async let second = runExampleAgent(["--turns", "30", "--no-approvals"], url: url)
        let outputs = try await [first, second]
        let checkpointer = try await PostgresCheckpointer(url: url)
        let history = try await checkpointer.history(thread: ThreadID("demo-user:support"), limit: 1000)
        #expect(history.count == 61, "\(outputs)")
        #expect(Set(history.map(\.step)) == Set(0..<61), "exactly one checkpoint won each step")
        let head = try #require(try await checkpointer.head(thread: ThreadID("demo-user:support")))
        #expect(head.step == 60)
        try await checkpointer.close()
    }

    @Test func fourProcessesMigrateAFreshDatabaseOnce() async throws {
        let url = try TestServer.isolatedURL()
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<4 { group.addTask { try await runExampleAgent(["--inbox"], url: url) } }
            var outputs: [String] = []
            for try await output in group { outputs.append(output) }
            return outputs
        }
        #expect(outputs.allSatisfy { $0.contains("No thread is waiting") }, "\(outputs)")
        let checkpointer = try await PostgresCheckpointer(url: url)
        let rows = try await checkpointer.diagnosticQuery("SELECT name, count(*) FROM checkpoint_migrations GROUP BY name")
        #expect(Set(rows.map { $0[0] }) == Set(PostgresSchema.migrations.map(\.name)))
        #expect(rows.count == PostgresSchema.migrations.count)
        #expect(rows.allSatisfy { $0[1] == "1" })
        try await checkpointer.close()
    }

    @Test func tenantModeHidesAndProtectsOtherTenantsThreads() async throws {
        let url = try TestServer.isolatedURL()
        let admin = try await PostgresCheckpointer(url: url)
        let acme = try await PostgresCheckpointer(url: url + "&tenant=acme")
        let globex = try await PostgresCheckpointer(url: url + "&tenant=globex")

        let acmeThread = try acme.thread("acme:ticket-1", as: Turn.self)
        try await acmeThread.save(Turn(messages: ["acme secret"], turn: 1))
        _ = try await acmeThread.pause(Turn(messages: ["acme secret"], turn: 2), reason: "approval", prompt: "ok?")
        try await globex.thread("globex:ticket-1", as: Turn.self).save(Turn(messages: ["globex"], turn: 1))

        // Another tenant's thread reads as missing, everywhere.
        #expect(try await globex.head(thread: ThreadID("acme:ticket-1")) == nil)
        #expect(try await globex.history(thread: ThreadID("acme:ticket-1")).isEmpty)
        #expect(try await globex.storageStatistics(thread: ThreadID("acme:ticket-1")).checkpointCount == 0)
        #expect(try await globex.pausedThreads(InboxQuery()).items.isEmpty)
        #expect(try await acme.pausedThreads(InboxQuery()).items.map(\.thread.rawValue) == ["acme:ticket-1"])
        #expect(try await acme.head(thread: ThreadID("globex:ticket-1")) == nil)

        // It cannot be written or deleted either.
        await #expect(throws: CheckpointError.self) {
            try await globex.thread("acme:ticket-2", as: Turn.self).save(Turn(turn: 1))
        }
        let denied = try await requireError(.permissionDenied) {
            try await globex.thread("acme:ticket-3", as: Turn.self).save(Turn(turn: 1))
        }
        #expect(denied.nativeCode == "SQLSTATE 42501")
        try await globex.deleteThread(ThreadID("acme:ticket-1"))
        #expect(try await acme.head(thread: ThreadID("acme:ticket-1"))?.step == 1)
        // A thread without a tenant prefix belongs to no tenant.
        await #expect(throws: CheckpointError.self) { try await acme.thread("untenanted", as: Turn.self).save(Turn()) }

        // A connection bound to no tenant sees every tenant.
        #expect(try await admin.head(thread: ThreadID("acme:ticket-1")) != nil)
        #expect(try await admin.head(thread: ThreadID("globex:ticket-1")) != nil)
        for checkpointer in [admin, acme, globex] { try await checkpointer.close() }
    }

    @Test func tenantModeRefusesARoleThatBypassesRowLevelSecurity() async throws {
        let url = try TestServer.isolatedURL("tenant=acme")
            .replacingOccurrences(of: "checkpoint_app:app-secret@", with: "checkpoint_admin:admin-secret@")
        let error = try await requireError(.invalidConfiguration) { try await PostgresCheckpointer(url: url) }
        #expect(error.message.contains("superuser"))
    }

    @Test func badURLsWrongPasswordsAndUnreachableServersGiveTypedErrors() async throws {
        // Each bad URL fails with invalidConfiguration, not retryable, and a message that names
        // what was wrong.
        let bad: [(url: String, names: [String])] = [
            ("postgres://", ["needs a host"]),
            ("postgres://host-only", ["needs a user"]),
            ("postgres://u@h/db?pool_max=0", ["pool_max", "1...1000", "'0'"]),
            ("postgres://u@h/db?sslmode=sometimes", ["sslmode", "'sometimes'"]),
            ("postgres://u@h/db?nonsense=1", ["unknown", "nonsense"]),
            ("postgres://u@h/db/extra", ["one database name"]),
            ("postgres://u@h/db?tenant=a:b", ["tenant", "':'"]),
            ("postgres://u@h/db?schema=bad-name", ["schema", "'bad-name'"]),
            ("postgres://u@h/db?connect_timeout=1", ["connect_timeout", "2...3600", "'1'"]),
        ]
        for (url, names) in bad {
            let error = try await requireError(.invalidConfiguration) {
                try await CheckpointerConfiguration(url: url).makeCheckpointer(backends: [PostgresCheckpointer.backend])
            }
            #expect(!error.isRetryable, "\(url)")
            for name in names { #expect(error.message.contains(name), "\(url): \(error.message)") }
        }

        let wrongPassword = try TestServer.url().replacingOccurrences(of: "app-secret", with: "not-the-password")
        let refused = try await requireError(.connectionFailed) { try await PostgresCheckpointer(url: wrongPassword) }
        #expect(refused.nativeCode == "SQLSTATE 28P01")
        #expect(!refused.isRetryable)
        #expect(!"\(refused)".contains("not-the-password"))
        #expect(!"\(try CheckpointerConfiguration(url: wrongPassword))".contains("not-the-password"))

        let closedPort = try await requireError(.connectionFailed) {
            try await PostgresCheckpointer(url: "postgres://u:p@127.0.0.1:1/db")
        }
        #expect(closedPort.isRetryable)

        // A host that never answers: the error comes after connect_timeout, not never.
        let start = ContinuousClock.now
        let unreachable = try await requireError(.connectionFailed) {
            try await PostgresCheckpointer(url: "postgres://u:p@10.255.255.1:5432/db?connect_timeout=2")
        }
        #expect(unreachable.isRetryable)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func theInboxIsARangeOfAPartialIndex() async throws {
        let checkpointer = try await TestServer.checkpointer()
        // Many threads that do not wait, a few that do.
        _ = try await checkpointer.diagnosticQuery(
            """
            INSERT INTO checkpoint_threads (thread, namespace, tenant, head_id)
            SELECT 't' || i, '', 'acme', decode(lpad(to_hex(i), 32, '0'), 'hex') FROM generate_series(1, 20000) i
            """)
        _ = try await checkpointer.diagnosticQuery(
            """
            INSERT INTO checkpoint_rows (thread_key, id, step, manifest, tenant)
            SELECT key, head_id, 0, '\\x00'::bytea, tenant FROM checkpoint_threads
            """)
        for index in 0..<30 {
            let thread = try checkpointer.thread(ThreadID("acme:paused-\(index)"), as: Turn.self)
            _ = try await thread.pause(Turn(turn: index), reason: index % 2 == 0 ? "refund" : "email", prompt: "ok?")
        }
        _ = try await checkpointer.diagnosticQuery("ANALYZE checkpoint_threads, checkpoint_rows")
        let queries: [(InboxQuery, String)] = [
            (InboxQuery(), "checkpoint_waiting_by_time"),
            (InboxQuery(reason: "refund"), "checkpoint_waiting_by_reason"),
            (InboxQuery(tenant: "acme"), "checkpoint_waiting_by_tenant"),
        ]
        for (query, index) in queries {
            let inbox = PostgresInbox(query)
            let values = inbox.parameters.map { value -> String in
                switch value {
                case .text(let text): text
                case .int8(let number): String(number)
                case .float8(let number): String(number)
                default: ""
                }
            }
            let plan = try await checkpointer.diagnosticQuery("EXPLAIN " + inbox.sql, values)
                .compactMap { $0.first ?? nil }.joined(separator: "\n")
            #expect(plan.contains(index), "\(plan)")
            #expect(!plan.contains("Seq Scan on checkpoint_threads"), "\(plan)")
            #expect(!plan.contains("Seq Scan on checkpoint_rows"), "\(plan)")
        }
        #expect(try await allPausedThreads(checkpointer, InboxQuery(limit: 7)).count == 30)
        try await checkpointer.close()
    }

    @Test func aSealedMarkerNeverReachesTheTables() async throws {
        let marker = "PLAINTEXT-MARKER-7f3a9c"
        let keys = try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])
        let checkpointer = try await TestServer.checkpointer()
        let sealing = Sealing.wholeState(SodiumSealer(keys: keys))
        let sealed = try checkpointer.thread("acme:sealed", as: Turn.self, sealing: sealing)
        try await sealed.save(Turn(messages: ["\(marker) one"], turn: 1))
        try await sealed.save(Turn(messages: ["\(marker) one", "\(marker) two"], turn: 2))
        let pause = try await sealed.pause(Turn(messages: [marker], turn: 3), reason: "approval", prompt: marker)
        try await sealed.resume(pause.id, with: marker)
        #expect(try await sealed.latest()?.messages == [marker])

        let rawCount = """
            SELECT count(*) FROM (
                SELECT manifest || coalesce(segments, '') || coalesce(payload, '') || coalesce(pause, '')
                       || convert_to(coalesce(metadata::text, ''), 'UTF8') AS bytes FROM checkpoint_rows
                UNION ALL SELECT response FROM checkpoint_answers
            ) stored WHERE position(convert_to($1, 'UTF8') in bytes) > 0
            """
        #expect(try await checkpointer.diagnosticQuery(rawCount, [marker]) == [["0"]])

        // The check can fail: the same marker saved without sealing is found.
        try await checkpointer.thread("acme:plain", as: Turn.self).save(Turn(messages: [marker], turn: 1))
        #expect(try await checkpointer.diagnosticQuery(rawCount, [marker]) == [["1"]])
        try await checkpointer.close()
    }

    @Test func theAgentPausesAndSixteenAnsweringProcessesRecordOneAnswer() async throws {
        let url = try TestServer.isolatedURL()
        let paused = try await runExampleAgent(["--turns", "6"], url: url)
        #expect(paused.contains("paused for a person"))
        #expect(try await runExampleAgent(["--inbox"], url: url).contains("[refund-approval]"))
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<16 {
                group.addTask { try await runExampleAgent(["--answer", "yes", "--reviewer", "r\(index)"], url: url) }
            }
            var outputs: [String] = []
            for try await output in group { outputs.append(output) }
            return outputs
        }
        #expect(outputs.filter { $0.contains("Answered pause") }.count == 1, "\(outputs)")
        #expect(outputs.filter { $0.contains("answered already") }.count == 15)
        #expect(try await runExampleAgent(["--inbox"], url: url).contains("No thread is waiting"))
        #expect(try await runExampleAgent(["--turns", "1"], url: url).contains("approved the refund"))
    }

    /// A read sends its query from the caller's thread; a reply slower than the inline wait
    /// (here the table is locked by another session) is received on the connection's thread,
    /// and the read returns the right head once the lock goes. Reads on the same connection
    /// afterwards see their own replies, not the late one.
    @Test func aReadWhoseReplyIsLateIsReceivedOnTheConnectionsThread() async throws {
        let base = try TestServer.isolatedURL()
        let url = base + "&pool_max=2&inline_reply_wait_us=200"
        let checkpointer = try await PostgresCheckpointer(url: url)
        let id = try ThreadID("acme:late")
        let thread = try checkpointer.thread(id, as: Turn.self)
        try await thread.save(Turn(messages: ["one"], turn: 1))
        #expect(try await thread.latest()?.turn == 1, "read inline: the connection is free and the reply quick")
        // The observer (one connection) holds an advisory lock; the locker takes the table,
        // then waits for the advisory lock: the table stays locked until the observer lets go.
        let observer = try await PostgresCheckpointer(url: base + "&pool_max=1")
        let locker = try await PostgresCheckpointer(url: url)
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_lock(4242)")
        let lock = Task {
            try await locker.diagnosticQuery(
                "DO $$ BEGIN LOCK TABLE checkpoint_rows IN ACCESS EXCLUSIVE MODE; PERFORM pg_advisory_lock(4242); END $$")
        }
        try await waitUntilActivity(observer, "wait_event_type = 'Lock' AND query LIKE '%pg_advisory_lock(4242)%'")
        let read = Task { try await thread.latest() }
        try await waitUntilActivity(observer, "wait_event_type = 'Lock' AND query LIKE '%checkpoint_threads%'")
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_unlock(4242)")
        _ = try await lock.value
        #expect(try await read.value?.turn == 1)
        for turn in 2...4 {
            try await thread.save(Turn(messages: ["one"], turn: turn))
            #expect(try await thread.latest()?.turn == turn)
        }
        for closing in [observer, locker, checkpointer] { try await closing.close() }
    }

    /// The pool's metrics: connections open and in use, calls waiting and how long they
    /// waited, and connections the server closed that were replaced.
    @Test func thePoolReportsConnectionsWaitsAndReplacementsAsMetrics() async throws {
        let metrics = TestMetrics()
        var configuration = try PostgresCheckpointer.Configuration(url: CheckpointerURL(TestServer.isolatedURL("pool_max=1")))
        configuration.metricsFactory = metrics
        let checkpointer = try await PostgresCheckpointer(configuration: configuration)
        let pool = [("pool", "checkpointing.postgres")]
        let id = try ThreadID("acme:metrics")
        _ = try await checkpointer.head(thread: id)
        #expect(try metrics.expectGauge("checkpoint_pool_connections", pool).lastValue == 1)
        // A connection's thread gives itself back just after it resumed its caller: the gauge
        // comes back to 0 a moment after the call returned.
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? metrics.expectGauge("checkpoint_pool_in_use", pool).lastValue) != 0 {
            guard ContinuousClock.now < deadline else { throw CheckpointError(.backendFailure, "still in use") }
            await Task.yield()
        }

        // The only connection is held (its statement waits for an advisory lock the observer
        // holds, until the observer lets go); the next call waits for the connection.
        let observer = try await PostgresCheckpointer(url: TestServer.isolatedURL("pool_max=1"))
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_lock(4343)")
        let slow = Task { try await checkpointer.diagnosticQuery("SELECT pg_advisory_xact_lock(4343) AS metrics_test") }
        try await waitUntilActivity(observer, "wait_event_type = 'Lock' AND query LIKE '%metrics_test%'")
        #expect(try metrics.expectGauge("checkpoint_pool_in_use", pool).lastValue == 1)
        let waiting = Task { try await checkpointer.head(thread: id) }
        while (try? metrics.expectGauge("checkpoint_pool_waiting", pool).lastValue) != 1 {
            guard ContinuousClock.now < deadline else { throw CheckpointError(.backendFailure, "the call never waited") }
            await Task.yield()
        }
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_unlock(4343)")
        _ = try await slow.value
        _ = try await waiting.value
        #expect(try metrics.expectGauge("checkpoint_pool_waiting", pool).lastValue == 0)
        #expect(try metrics.expectTimer("checkpoint_pool_acquire_wait", pool).values.contains { $0 > 0 })

        // The server closes the connection: the pool replaces it.
        let pid = try #require(try await checkpointer.diagnosticQuery("SELECT pg_backend_pid()").first?.first ?? nil)
        _ = try await observer.diagnosticQuery("SELECT pg_terminate_backend($1::int)", [pid])
        while (try? metrics.expectCounter("checkpoint_pool_connections_replaced", pool).totalValue) ?? 0 == 0 {
            guard ContinuousClock.now < deadline else { throw CheckpointError(.backendFailure, "never replaced") }
            _ = try? await checkpointer.head(thread: id)  // the first call may meet the closing connection
        }
        #expect(try await checkpointer.head(thread: id) == nil, "the next call runs on a new connection")
        #expect(try metrics.expectCounter("checkpoint_pool_connections_replaced", pool).totalValue == 1)
        #expect(try metrics.expectGauge("checkpoint_pool_connections", pool).lastValue == 1)
        try await observer.close()
        try await checkpointer.close()
        #expect(try metrics.expectGauge("checkpoint_pool_connections", pool).lastValue == 0)
    }

    /// Closing (a server's graceful shutdown) lets the calls under way finish, those running
    /// and those waiting for a connection alike, and refuses the ones that start after it.
    @Test func closeLetsTheCallsUnderWayFinishAndRefusesNewOnes() async throws {
        let metrics = TestMetrics()
        let url = try TestServer.isolatedURL("pool_max=1&acquire_timeout_ms=60000")
        var configuration = try PostgresCheckpointer.Configuration(url: CheckpointerURL(url))
        configuration.metricsFactory = metrics
        let checkpointer = try await PostgresCheckpointer(configuration: configuration)
        let held = try await HeldConnection(of: checkpointer)
        // A save waits for that connection.
        let write = CheckpointWrite(
            thread: try ThreadID("acme:closing"), parentID: nil, step: 0, channels: ["v": .value(Data([1]))])
        let waiting = Task { try await checkpointer.put(write) }
        try await waitUntil("the save waits for a connection") {
            (try? metrics.expectGauge("checkpoint_pool_waiting", [("pool", "checkpointing.postgres")]).lastValue) == 1
        }

        let closing = Task { try await checkpointer.close() }
        // A history of limit 0 is refused before it would wait for a connection: as an
        // invalid argument while the checkpointer is open, as closed once it is closing.
        try await waitUntil("the checkpointer is closing") {
            do {
                _ = try await checkpointer.history(thread: ThreadID("acme:closing"), limit: 0)
                return false
            } catch let error as CheckpointError {
                return error.code == .closed
            }
        }
        _ = try await requireError(.closed) { try await checkpointer.head(thread: ThreadID("acme:closing")) }
        try await held.release()
        try await waiting.value
        try await closing.value
        #expect(try metrics.expectGauge("checkpoint_pool_connections", [("pool", "checkpointing.postgres")]).lastValue == 0)

        let reader = try await PostgresCheckpointer(url: url)
        #expect(try await reader.head(thread: ThreadID("acme:closing"))?.id == write.id, "the save that waited landed")
        try await reader.close()
    }

    /// A load balancer probes every second: with every connection busy, health answers
    /// `degraded` after a short wait (not `unavailable` after the acquire timeout).
    @Test func healthOfASaturatedPoolIsDegradedNotUnavailable() async throws {
        let checkpointer = try await TestServer.checkpointer("pool_max=1&acquire_timeout_ms=60000")
        let held = try await HeldConnection(of: checkpointer)
        let report = await checkpointer.health()
        #expect(report.status == .degraded, "\(report)")
        #expect(report.problem?.contains("busy") == true, "\(report)")
        try await held.release()
        #expect(await checkpointer.health().status == .healthy)
        try await checkpointer.close()
    }

    @Test func aPoolOfOneMakesCallsWaitAndTimesOutTyped() async throws {
        let checkpointer = try await TestServer.checkpointer("pool_max=1&acquire_timeout_ms=200")
        // The only connection is held until the timeout has been seen (not by a fixed sleep,
        // which a loaded machine outlasts).
        let held = try await HeldConnection(of: checkpointer)
        let error = try await requireError(.connectionFailed) { try await checkpointer.head(thread: ThreadID("acme:x")) }
        #expect(error.message.contains("acquire timeout"))
        try await held.release()
        #expect(try await checkpointer.head(thread: ThreadID("acme:x")) == nil, "the pool works again")
        try await checkpointer.close()
    }
}

/// The only connection of a checkpointer's pool (`pool_max=1`), kept busy by a statement that
/// waits for an advisory lock another session holds, until ``release()``.
struct HeldConnection {
    private let observer: PostgresCheckpointer
    private let key = Int64.random(in: 1..<Int64.max)
    private let running: Task<[[String?]], any Error>

    /// Returns once the server shows the statement waiting for the lock.
    init(of checkpointer: PostgresCheckpointer) async throws {
        observer = try await TestServer.checkpointer("pool_max=1")
        let key = key
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_lock(\(key))")
        running = Task { try await checkpointer.diagnosticQuery("SELECT pg_advisory_xact_lock(\(key))") }
        try await waitUntilActivity(observer, "wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock(\(key))%'")
    }

    /// Lets the statement finish, and checks it succeeded.
    func release() async throws {
        _ = try await observer.diagnosticQuery("SELECT pg_advisory_unlock(\(key))")
        _ = try await running.value
        try await observer.close()
    }
}

/// Waits until another session of the server matches `condition` in `pg_stat_activity`
/// (seen through `observer`), for at most 30 seconds.
func waitUntilActivity(_ observer: PostgresCheckpointer, _ condition: String) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while try await observer.diagnosticQuery(
        "SELECT count(*) FROM pg_stat_activity WHERE \(condition) AND pid <> pg_backend_pid()"
    ).first?.first == "0" {
        guard ContinuousClock.now < deadline else { throw CheckpointError(.backendFailure, "never seen: \(condition)") }
        await Task.yield()
    }
}

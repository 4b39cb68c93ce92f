import CCheckpointSQLite
@testable import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import MetricsTestKit
import Synchronization
import Testing

/// Raw access to a database file, to look at what the backend stored or to damage it.
final class RawDatabase {
    private var handle: OpaquePointer?

    init(_ path: String, create: Bool = false) throws {
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK else {
            throw CheckpointError(.connectionFailed, "raw open failed")
        }
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs SQL and returns the first column of every row as text.
    @discardableResult
    func query(_ sql: String) throws -> [String] {
        try query(sql, column: 0)
    }

    /// Runs SQL and returns one column of every row as text.
    func query(_ sql: String, column: Int32) throws -> [String] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK else {
            throw CheckpointError(.backendFailure, String(cString: sqlite3_errmsg(handle)))
        }
        defer { sqlite3_finalize(statement) }
        var rows: [String] = []
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { return rows }
            guard result == SQLITE_ROW else { throw CheckpointError(.backendFailure, String(cString: sqlite3_errmsg(handle))) }
            rows.append(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? "NULL")
        }
    }
}

@Suite("SQLite backend")
struct SQLiteBackendTests {
    @Test func opensInWALModeAndRecordsMigrations() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await checkpointer.close()
        let raw = try RawDatabase(database.path)
        #expect(try raw.query("PRAGMA journal_mode") == ["wal"])
        #expect(
            try raw.query("SELECT name FROM checkpoint_migrations ORDER BY name")
                == [
                    "2026-11-23-initial", "2026-11-23-pauses", "2026-12-02-row-checksums", "2026-12-03-thread-activity",
                    "2026-12-03-thread-activity-partial-tenant-index",
                ])
        // A put to a thread without a tenant moves no entry of the tenant index.
        #expect(
            try raw.query("SELECT sql LIKE '%WHERE tenant IS NOT NULL' FROM sqlite_master WHERE name = 'threads_by_tenant'")
                == ["1"])
        // Opening again applies nothing twice.
        let again = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await again.close()
        #expect(try raw.query("SELECT count(*) FROM checkpoint_migrations") == ["\(Schema.migrations.count)"])
    }

    @Test func anOlderFileIsMigratedForward() async throws {
        // A file that has only the first migration, as a first release would have left it.
        let database = try TemporaryDatabase()
        let raw = try RawDatabase(database.path, create: true)
        try raw.query("PRAGMA journal_mode = WAL")
        try raw.query("CREATE TABLE checkpoint_migrations (name TEXT PRIMARY KEY NOT NULL, applied_at REAL NOT NULL) WITHOUT ROWID")
        for statement in Schema.migrations[0].sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
            try raw.query(String(statement))
        }
        try raw.query("INSERT INTO checkpoint_migrations VALUES ('2026-11-23-initial', 0)")
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        #expect(try raw.query("SELECT count(*) FROM checkpoint_migrations") == ["\(Schema.migrations.count)"])
        let thread = try checkpointer.thread(uniqueThread("upgraded"), as: TestAgentState.self)
        let pause = try await thread.pause(TestAgentState(turn: 1), reason: "check", prompt: "works?")
        #expect(try await checkpointer.pausedThreads(InboxQuery()).items.map(\.pause.id) == [pause.id])
        try await checkpointer.close()
    }

    @Test func manyInstancesOpeningOneNewFileMigrateOnce() async throws {
        let database = try TemporaryDatabase()
        let path = database.path
        let opened = try await withThrowingTaskGroup(of: SQLiteCheckpointer.self) { group in
            for _ in 0..<6 {
                group.addTask { try await SQLiteCheckpointer(configuration: .init(path: path)) }
            }
            var all: [SQLiteCheckpointer] = []
            for try await checkpointer in group { all.append(checkpointer) }
            return all
        }
        #expect(opened.count == 6)
        for checkpointer in opened { try await checkpointer.close() }
        #expect(try RawDatabase(path).query("SELECT count(*) FROM checkpoint_migrations") == ["\(Schema.migrations.count)"])
    }

    @Test func twoConnectionsOnOneFileRaceSafely() async throws {
        // Two checkpointers with their own connections behave like two processes: SQLite's file
        // lock serializes their writes and the head check refuses the loser.
        let database = try TemporaryDatabase()
        let first = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let second = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try uniqueThread("files")
        try await first.thread(id, as: TestAgentState.self).save(TestAgentState())
        let perWriter = 15
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, checkpointer) in [first, second].enumerated() {
                group.addTask {
                    let thread = try checkpointer.thread(id, as: TestAgentState.self)
                    var saved = 0
                    while saved < perWriter {
                        var state = try await thread.latest() ?? TestAgentState()
                        state.messages.append(TestMessage(role: "writer\(index)", text: "\(saved)"))
                        do {
                            try await thread.save(state)
                            saved += 1
                        } catch let error as CheckpointError where error.code == .conflict {}
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await second.thread(id, as: TestAgentState.self).latest()
        #expect(final?.messages.count == 2 * perWriter)
        #expect(try await first.history(thread: id, limit: 1000).count == 2 * perWriter + 1)
        try await first.close()
        try await second.close()
    }

    @Test func walIsCheckpointedInTheBackground() async throws {
        // SQLite's automatic checkpoint is off; the background connection must still move the
        // WAL into the database file as it grows, long before the file is closed.
        let database = try TemporaryDatabase()
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.walCheckpointPages = 20
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let initialSize = try #require(try FileManager.default.attributesOfItem(atPath: database.path)[.size] as? Int)
        let thread = try checkpointer.thread(uniqueThread("wal"), as: TestAgentState.self)
        var state = TestAgentState()
        for turn in 0..<300 {
            state.messages.append(sampleMessage(turn))
            try await thread.save(state)
        }
        var size = initialSize
        try await waitUntil("the background checkpoint copied the WAL into the file") {
            size = try #require(try FileManager.default.attributesOfItem(atPath: database.path)[.size] as? Int)
            return size > initialSize + 50_000
        }
        try await checkpointer.close()
    }

    @Test func anotherConnectionSeesWritesDespiteTheCache() async throws {
        // Each checkpointer caches content it wrote or read; heads always come from the file.
        let database = try TemporaryDatabase()
        let first = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let second = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try uniqueThread("shared")
        let writer = try first.thread(id, as: TestAgentState.self)
        let reader = try second.thread(id, as: TestAgentState.self)
        var state = TestAgentState(document: sampleText(500, seed: 1))
        for turn in 0..<5 {
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            try await writer.save(state)
            #expect(try await reader.latest() == state)
        }
        // The other side deletes and starts the thread over: no stale content shows.
        try await second.deleteThread(id)
        #expect(try await reader.latest() == nil)
        let fresh = TestAgentState(messages: [sampleMessage(100)], turn: 100)
        try await reader.save(fresh)
        #expect(try await writer.latest() == fresh)
        try await first.close()
        try await second.close()
    }

    @Test func putsRecordMetrics() async throws {
        let database = try TemporaryDatabase()
        let metrics = TestMetrics()
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.metricsFactory = metrics
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let id = try uniqueThread("metrics")
        try await checkpointer.thread(id, as: TestAgentState.self).save(TestAgentState(messages: [sampleMessage(1)]))
        let stale = try checkpointer.thread(id, as: TestAgentState.self)
        await #expect(throws: CheckpointError.self) { try await stale.save(TestAgentState()) }
        let timer = try metrics.expectTimer("checkpoint_put_duration", [("backend", "sqlite")])
        #expect(timer.values.count == 1)
        let bytes = try metrics.expectRecorder("checkpoint_put_bytes", [("backend", "sqlite")])
        #expect(bytes.values.first.map { $0 > 300 } == true)
        #expect(try metrics.expectCounter("checkpoint_put_conflicts", [("backend", "sqlite")]).totalValue == 1)
        try await checkpointer.close()
    }

    @Test(arguments: [
        InboxQuery(), InboxQuery(reason: "refund"), InboxQuery(tenant: "acme"),
        InboxQuery(reason: "refund", tenant: "acme"), InboxQuery(expiredAsOf: Date()),
        InboxQuery(after: InboxCursor(createdAt: Date(), thread: "t", namespace: "")),
        InboxQuery(reason: "refund", after: InboxCursor(createdAt: Date(), thread: "t", namespace: "")),
    ])
    func inboxQueriesUseTheWaitingPauseIndex(_ query: InboxQuery) async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await checkpointer.close()
        let plan = try RawDatabase(database.path).query("EXPLAIN QUERY PLAN " + InboxSQL(query).sql, column: 3)
        // The waiting pauses are read through one of their indexes, each row's pause through the
        // checkpoints' primary key; no table of threads or checkpoints is scanned.
        #expect(plan.contains { $0.contains("w USING") && $0.contains("INDEX waiting_by_") }, "\(plan)")
        #expect(plan.contains { $0.hasPrefix("SEARCH c USING PRIMARY KEY") }, "\(plan)")
        #expect(!plan.contains { $0.hasPrefix("SCAN c") || $0.contains("threads") || $0.contains("TEMP B-TREE") }, "\(plan)")
    }

    @Test func aCancelledTaskWritesNothing() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try uniqueThread("cancelled")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await checkpointer.put(
                CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data("1".utf8))]))
        }
        let error = await #expect(throws: CheckpointError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(try await checkpointer.head(thread: id) == nil)
        try await checkpointer.close()
    }

    /// Calls that run inline do not suspend: tasks that loop on reads (as many as the shared
    /// pool has threads) must still let a save of another task run, and a cache update after it.
    /// Each reader stops when the save landed, or at a deadline: reaching the deadline means the
    /// save waited for the readers (it did, until inline calls yielded once each).
    @Test func tasksThatLoopOnReadsDoNotStarveASave() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try ThreadID("busy-readers")
        try await checkpointer.put(
            CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data("0".utf8))]))
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let saved = Flag()
        let deadline = ContinuousClock.now + .seconds(20)
        let readers = max(2, ProcessInfo.processInfo.activeProcessorCount)
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<readers {
                group.addTask {
                    while !saved.value.load(ordering: .acquiring) {
                        guard ContinuousClock.now < deadline else { return false }
                        _ = try await checkpointer.head(thread: id)
                    }
                    return true
                }
            }
            group.addTask {
                let head = try await checkpointer.head(thread: id)
                try await checkpointer.put(
                    CheckpointWrite(thread: id, parentID: head?.id, step: 1, channels: ["v": .value(Data("1".utf8))]))
                saved.value.store(true, ordering: .releasing)
                return true
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0 }, "the readers reached the deadline before the save landed")
        #expect(try await checkpointer.head(thread: id)?.step == 1)
        try await checkpointer.close()
    }

    @Test func aCallFromTheSharedPoolWaitsForAnotherProcesssLockWithinTheBusyTimeout() async throws {
        // A call from the shared pool runs inline when the connection is free, with no busy
        // timeout (it must not block a shared thread on another process's lock): meeting the
        // lock, it goes to the connection's thread and waits there, as the configuration says.
        let database = try TemporaryDatabase()
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.busyTimeout = .seconds(10)
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let id = try uniqueThread("inline-busy")
        let first = CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(first)
        nonisolated(unsafe) let raw = try RawDatabase(database.path)
        try raw.query("BEGIN IMMEDIATE")
        // The other process holds its lock for a while (the scenario, not a synchronization:
        // the put must succeed whenever the lock is released within the busy timeout).
        let release = Thread {
            Thread.sleep(forTimeInterval: 0.3)
            _ = try? raw.query("ROLLBACK")
        }
        release.start()
        let next = CheckpointWrite(thread: id, parentID: first.id, step: 1, channels: ["v": .value(Data("2".utf8))])
        try await checkpointer.put(next)
        #expect(try await checkpointer.head(thread: id)?.id == next.id, "the put waited for the lock and landed")
        try await checkpointer.close()
    }

    @Test func aWriteLockHeldPastTheBusyTimeoutIsRetryable() async throws {
        let database = try TemporaryDatabase()
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.busyTimeout = .milliseconds(50)
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let id = try uniqueThread("busy")
        let first = CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(first)
        // Another connection (another process, as far as SQLite knows) holds the write lock.
        let raw = try RawDatabase(database.path)
        try raw.query("BEGIN IMMEDIATE")
        let next = CheckpointWrite(thread: id, parentID: first.id, step: 1, channels: ["v": .value(Data("2".utf8))])
        let error = await #expect(throws: CheckpointError.self) { try await checkpointer.put(next) }
        #expect(error?.code == .busy)
        #expect(error?.isRetryable == true)
        #expect(error?.nativeCode == "\(SQLITE_BUSY)")
        #expect(try await checkpointer.head(thread: id)?.id == first.id, "nothing was written")
        try raw.query("ROLLBACK")
        try await checkpointer.put(next)
        #expect(try await checkpointer.head(thread: id)?.id == next.id, "the same put succeeds once the lock is free")
        try await checkpointer.close()
    }

    @Test func anUpToDateFileOpensWhileAnotherConnectionHoldsTheWriteLock() async throws {
        let database = try TemporaryDatabase()
        let id = try uniqueThread("locked-open")
        let first = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await first.thread(id, as: TestAgentState.self).save(TestAgentState(turn: 3))
        try await first.close()
        let raw = try RawDatabase(database.path)
        try raw.query("BEGIN IMMEDIATE")
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.busyTimeout = .milliseconds(50)
        // The schema is up to date: opening reads the recorded migrations and needs no write lock.
        let second = try await SQLiteCheckpointer(configuration: configuration)
        #expect(try await second.thread(id, as: TestAgentState.self).latest()?.turn == 3)
        try raw.query("ROLLBACK")
        try await second.close()
    }

    @Test func aFileThatNeedsMigratingWhileLockedFailsRetryably() async throws {
        let database = try TemporaryDatabase()
        let raw = try RawDatabase(database.path, create: true)
        try raw.query("PRAGMA journal_mode = WAL")
        try raw.query("CREATE TABLE unrelated (x)")
        try raw.query("BEGIN IMMEDIATE")
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.busyTimeout = .milliseconds(50)
        let error = await #expect(throws: CheckpointError.self) { try await SQLiteCheckpointer(configuration: configuration) }
        #expect(error?.code == .busy)
        #expect(error?.isRetryable == true)
        try raw.query("ROLLBACK")
        // Once the lock is free, the same open migrates the file.
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        try await checkpointer.close()
        #expect(try raw.query("SELECT count(*) FROM checkpoint_migrations") == ["\(Schema.migrations.count)"])
    }

    @Test func damagedManifestGivesCorruptData() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try uniqueThread("damaged")
        let thread = try checkpointer.thread(id, as: TestAgentState.self)
        try await thread.save(TestAgentState(messages: [sampleMessage(1)], document: sampleText(500, seed: 2)))
        try RawDatabase(database.path).query("UPDATE checkpoints SET manifest = x'01ff'")
        let error = await #expect(throws: CheckpointError.self) { try await thread.latest() }
        #expect(error?.code == .corruptData)
        try await checkpointer.close()
    }

    @Test func missingPayloadGivesCorruptData() async throws {
        // Without the list cache, so that every read goes to the file (a cached list is the one
        // that was written, and is returned as long as the head's manifest names it).
        let database = try TemporaryDatabase()
        var configuration = SQLiteCheckpointer.Configuration(path: database.path)
        configuration.contentCacheBytes = 0
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let id = try uniqueThread("missing")
        let thread = try checkpointer.thread(id, as: TestAgentState.self)
        var state = TestAgentState(messages: [sampleMessage(1)], document: sampleText(500, seed: 2))
        try await thread.save(state)
        state.messages.append(sampleMessage(2))
        try await thread.save(state)
        let raw = try RawDatabase(database.path)
        try raw.query("UPDATE checkpoints SET segments = NULL WHERE parent_id IS NULL")
        let error = await #expect(throws: CheckpointError.self) { try await thread.latest() }
        #expect(error?.code == .corruptData)
        try raw.query("UPDATE checkpoints SET payload = NULL")
        let second = await #expect(throws: CheckpointError.self) { try await checkpointer.head(thread: id) }
        #expect(second?.code == .corruptData)
        try await checkpointer.close()
    }

    @Test func aFileThatIsNotADatabaseIsRejected() async throws {
        let database = try TemporaryDatabase()
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: database.path))
        let error = await #expect(throws: CheckpointError.self) {
            try await SQLiteCheckpointer(configuration: .init(path: database.path))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.nativeCode == "\(SQLITE_NOTADB)")
    }

    @Test func anUnreachablePathIsRejected() async throws {
        let error = await #expect(throws: CheckpointError.self) {
            try await SQLiteCheckpointer(configuration: .init(path: "/nonexistent-dir-\(UUID())/x.db"))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.isRetryable == false)
        let memory = await #expect(throws: CheckpointError.self) {
            try await SQLiteCheckpointer(configuration: .init(path: ":memory:"))
        }
        #expect(memory?.code == .invalidConfiguration)
    }

    @Test func urlsConfigureTheBackend() throws {
        let full = try SQLiteCheckpointer.Configuration(
            url: CheckpointerURL("sqlite:///var/lib/a.db?synchronous=FULL&busy_timeout_ms=250&readers=4"))
        #expect(full.path == "/var/lib/a.db")
        #expect(full.synchronous == .full)
        #expect(full.busyTimeout == .milliseconds(250))
        #expect(full.readerCount == 4)
        #expect(try SQLiteCheckpointer.Configuration(url: CheckpointerURL("sqlite://./rel.db")).path == "./rel.db")
        #expect(try SQLiteCheckpointer.Configuration(url: CheckpointerURL("sqlite:rel/a.db")).path == "rel/a.db")
        #expect(try SQLiteCheckpointer.Configuration(url: CheckpointerURL("sqlite:///a%20b.db")).path == "/a b.db")
        for bad in [
            "sqlite://", "sqlite:///", "sqlite://remote-host/a.db", "sqlite:///a.db?synchronous=sometimes",
            "sqlite:///a.db?readers=0", "sqlite:///a.db?busy_timeout_ms=soon", "sqlite:///a.db?cache=1",
        ] {
            let error = #expect(throws: CheckpointError.self, "\(bad)") {
                try SQLiteCheckpointer.Configuration(url: CheckpointerURL(bad))
            }
            #expect(error?.code == .invalidConfiguration)
        }
    }

    @Test func synchronousSettingIsApplied() async throws {
        // PRAGMA synchronous is per connection, so it is read back through the writer: a
        // checkpointer opened with FULL must fsync each commit, visible as the setting value 2.
        let database = try TemporaryDatabase()
        let checkpointer = try await CheckpointerConfiguration(url: "sqlite://\(database.path)?synchronous=full")
            .makeCheckpointer(backends: [SQLiteCheckpointer.backend])
        let sqlite = try #require(checkpointer as? SQLiteCheckpointer)
        #expect(sqlite.configuration.synchronous == .full)
        #expect(try await sqlite.pragma("synchronous") == "2")
        try await checkpointer.close()
        let normal = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        #expect(try await normal.pragma("synchronous") == "1")
        #expect(try await normal.pragma("wal_autocheckpoint") == "0")
        try await normal.close()
    }

    @Test func aLongConversationTakesLittleMoreThanItsText() async throws {
        // 500 turns, one ~300-character message each: the file stays within twice the bytes of
        // the messages themselves (each encoded once, as JSON), because every save stores only
        // the new message.
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let id = try uniqueThread("long")
        let thread = try checkpointer.thread(id, as: TestAgentState.self)
        var state = TestAgentState()
        var textBytes = 0
        for turn in 0..<500 {
            let message = sampleMessage(turn)
            textBytes += try JSONEncoder().encode(message).count
            state.messages.append(message)
            state.turn = turn
            try await thread.save(state, metadata: ["turn": .int(turn)])
        }
        #expect(try await thread.latest() == state)
        try await checkpointer.close()
        let raw = try RawDatabase(database.path)
        try raw.query("PRAGMA wal_checkpoint(TRUNCATE)")
        try raw.query("VACUUM")
        let fileBytes = try #require(
            try FileManager.default.attributesOfItem(atPath: database.path)[.size] as? Int)
        #expect(fileBytes < 2 * textBytes, "file \(fileBytes) bytes for \(textBytes) bytes of messages")
    }
}

import CCheckpointSQLite
import Checkpointing
import CheckpointRuntime
import Foundation
import Logging
import Synchronization

/// The embedded default backend: one SQLite file in WAL mode.
///
/// One writer connection and ``Configuration/readerCount`` reader connections, each with a
/// thread of its own, so that reads run beside writes. A call runs inline on its caller's
/// thread when its connection is free (with no busy timeout), and on the connection's thread
/// when the connection is busy, the call meets another process's lock, or the writer's commits
/// flush to disk: no shared thread waits on a lock or an `fsync`. Several processes may open the same file: writes serialize on
/// SQLite's lock (waiting up to ``Configuration/busyTimeout``, then failing with the retryable
/// ``CheckpointError/Code/busy``, nothing written) and the head check makes the loser of a
/// race fail with ``CheckpointError/Code/conflict``.
///
/// ```swift
/// let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: "agent.db"))
/// // ... use it ...
/// try await checkpointer.close()   // at shutdown: finishes and closes every connection
/// ```
///
/// The schema is created and migrated on open; migrations are named and recorded in the
/// `checkpoint_migrations` table.
public final class SQLiteCheckpointer: Checkpointer {
    /// The settings the checkpointer was opened with.
    public let configuration: Configuration
    private let writer: SerializedConnection
    private let readers: [SerializedConnection]
    private let walConnection: SerializedConnection
    private let nextReader = Atomic<Int>(0)
    private let isClosed = Atomic<Bool>(false)
    private let metrics: CheckpointMetrics
    private let contentCache: ContentCache
    private let heads = HeadManifests(capacity: 50_000)
    private let logger: Logger

    /// The writer connection's thread, as an executor.
    ///
    /// Code that runs under `withTaskExecutorPreference(checkpointer.writerExecutor) { ... }`
    /// runs on the writer's own thread, so its puts and reads run inline even when other tasks
    /// use the connection too (then a call from the shared pool takes two thread hops, to the
    /// connection's thread and back: on a small Linux machine a hop is tens of microseconds,
    /// more than the write itself), and its `synchronous=full` commits too. Use it for a
    /// process whose main work is one agent loop; while that code runs, other tasks' writes
    /// wait for it.
    public var writerExecutor: any TaskExecutor { writer.executor }

    /// Lets ``CheckpointerConfiguration`` open `sqlite:` URLs.
    public static let backend: any CheckpointerBackend = SQLiteBackend()

    /// Opens (creating when missing) and migrates the database file.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for bad settings and for a path
    ///   that cannot hold the database (a directory, a file that is not a database, a missing
    ///   directory, a read-only file); ``CheckpointError/Code/corruptData`` for a damaged
    ///   database; ``CheckpointError/Code/busy`` when a needed migration waits for another
    ///   writer past the busy timeout; ``CheckpointError/Code/migrationFailed`` when the schema
    ///   cannot be brought up to date. The article's "Errors" table lists every case.
    public init(configuration: Configuration, logger: Logger = Logger(label: "checkpointing.sqlite")) async throws {
        guard configuration.path != ":memory:", !configuration.path.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration, "SQLiteCheckpointer needs a file path; use InMemoryCheckpointer for memory")
        }
        guard configuration.readerCount >= 1 else {
            throw CheckpointError(.invalidConfiguration, "readerCount must be at least 1")
        }
        self.configuration = configuration
        self.logger = logger
        self.contentCache = ContentCache(capacity: configuration.contentCacheBytes)
        self.metrics = CheckpointMetrics(backend: "sqlite", factory: configuration.metricsFactory)
        let opened = try await Self.open(configuration, logger: logger)
        writer = opened.writer
        readers = opened.readers
        walConnection = opened.wal
        logger.debug("opened SQLite checkpointer", metadata: ["path": "\(configuration.path)"])
    }

    private struct OpenedConnections: Sendable {
        var writer: SerializedConnection
        var readers: [SerializedConnection]
        var wal: SerializedConnection
    }

    private static func open(_ configuration: Configuration, logger: Logger) async throws -> OpenedConnections {
        try await withUnsafeThrowingContinuation { continuation in
            DispatchQueue(label: "checkpointing.sqlite.open").async {
                continuation.resume(with: Result { try openBlocking(configuration, logger: logger) })
            }
        }
    }

    private static func openBlocking(_ configuration: Configuration, logger: Logger) throws -> OpenedConnections {
        let busyMilliseconds = configuration.busyTimeout.components.seconds * 1000
            + configuration.busyTimeout.components.attoseconds / 1_000_000_000_000_000
        /// Opens a connection and runs its setup pragmas; failures say what the path names
        /// (``CheckpointError/init(sqlite:path:phase:)``, phase `opening`).
        func connect(_ flags: Int32, _ pragmas: [String]) throws -> SQLiteConnection {
            do {
                let connection = try SQLiteConnection(path: configuration.path, flags: flags)
                connection.setBusyTimeout(milliseconds: Int32(clamping: busyMilliseconds))
                for pragma in pragmas {
                    try connection.execute(pragma)
                }
                return connection
            } catch {
                throw CheckpointError(sqlite: error, path: configuration.path, phase: .opening)
            }
        }
        let writer = try connect(
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
            [
                "PRAGMA journal_mode = WAL", "PRAGMA synchronous = \(configuration.synchronous.pragma)",
                "PRAGMA wal_autocheckpoint = 0",
            ])
        try migrate(writer, path: configuration.path, logger: logger)
        let inline = SerializedConnection.InlineCalls(busyTimeoutMilliseconds: Int32(clamping: busyMilliseconds))
        // A commit that flushes to disk is not run on a caller's (shared) thread.
        let writerFlushes = configuration.synchronous == .full || configuration.synchronous == .extra
        var readers: [SerializedConnection] = []
        for index in 0..<configuration.readerCount {
            let reader = try connect(SQLITE_OPEN_READWRITE, ["PRAGMA query_only = 1"])
            readers.append(
                SerializedConnection(
                    label: "checkpointing.sqlite.reader\(index)", connection: reader, idleSpin: configuration.idleSpin,
                    inline: inline))
        }
        // A connection that never read the file does not know it is in WAL mode, and its
        // checkpoints would do nothing; a restart checkpoint waits for a running write 5 ms at most.
        let walHandle = try connect(SQLITE_OPEN_READWRITE, ["PRAGMA journal_mode = WAL"])
        walHandle.setBusyTimeout(milliseconds: 5)
        let walConnection = SerializedConnection(label: "checkpointing.sqlite.wal", connection: walHandle)
        WALCheckpointMonitor(threshold: configuration.walCheckpointPages, connection: walConnection, logger: logger)
            .install(on: writer)
        return OpenedConnections(
            writer: SerializedConnection(
                label: "checkpointing.sqlite.writer", connection: writer, idleSpin: configuration.idleSpin,
                inline: writerFlushes ? nil : inline),
            readers: readers, wal: walConnection)
    }

    /// Applies the missing migrations in one write transaction, so that processes opening the
    /// same file at once migrate it exactly once.
    ///
    /// The recorded migrations are read first, in a read transaction: a file whose schema is
    /// up to date opens without the write lock, even while another connection holds it. When a
    /// migration is missing and the lock stays busy past the busy timeout, opening fails with
    /// the retryable ``CheckpointError/Code/busy``.
    private static func migrate(_ connection: SQLiteConnection, path: String, logger: Logger) throws {
        do {
            let recorded = try connection.transaction(immediate: false) { () throws -> Set<String> in
                try recordedMigrations(connection)
            }
            guard Schema.migrations.contains(where: { !recorded.contains($0.name) }) else { return }
            try connection.execute("BEGIN IMMEDIATE")
            do {
                try connection.execute(Schema.migrationsTable)
                let applied = try recordedMigrations(connection)
                for migration in Schema.migrations where !applied.contains(migration.name) {
                    try connection.execute(migration.sql)
                    try migration.after?(connection)
                    let record = try connection.statement(Schema.insertMigration)
                    try record.bind(1, migration.name)
                    try record.bind(2, Date().timeIntervalSince1970)
                    try record.run()
                    logger.info("applied SQLite migration", metadata: ["migration": "\(migration.name)"])
                }
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        } catch let error as SQLiteError {
            throw CheckpointError(sqlite: error, path: path, phase: .migrating)
        }
    }

    /// The names in `checkpoint_migrations`; none when the table does not exist yet.
    private static func recordedMigrations(_ connection: SQLiteConnection) throws(SQLiteError) -> Set<String> {
        let exists = try connection.statement(Schema.selectMigrationsTable)
        let hasTable = try exists.step()
        exists.reset()
        guard hasTable else { return [] }
        var applied: Set<String> = []
        let select = try connection.statement(Schema.selectMigrations)
        while try select.step() { applied.insert(select.text(0)) }
        select.reset()
        return applied
    }

    // MARK: Checkpointer

    /// Appends a checkpoint in one write transaction; see ``Checkpointer/put(_:expecting:)``.
    public func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        let start = ContinuousClock.now
        try checkOpen()
        try NamespaceValidation.validate(write.namespace)
        do {
            try await writer.run { [contentCache, heads] connection in
                try Self.put(write, expecting: expecting, on: connection, contentCache: contentCache, heads: heads)
            }
        } catch let error as CheckpointError {
            if error.code == .conflict { metrics.recordConflict() }
            throw error
        }
        metrics.recordPut(since: start, payloadBytes: write.payloadByteCount)
    }

    private static func put(
        _ write: CheckpointWrite, expecting: PutExpectation, on connection: SQLiteConnection, contentCache: ContentCache,
        heads: HeadManifests
    ) throws {
        let (threadKey, resolved) = try connection.transaction(immediate: true) { () throws -> (Int64, ResolvedWrite) in
            var threadKey: Int64?
            let selectKey = try connection.statement(Schema.selectThreadKey)
            try selectKey.bind(1, write.thread.rawValue)
            try selectKey.bind(2, write.namespace)
            if try selectKey.step() { threadKey = selectKey.int64(0) }
            selectKey.reset()

            // The head's manifest comes from memory when this checkpointer wrote or read that
            // head; otherwise from its row, checked against the row's checksum.
            var head: (id: CheckpointID, manifest: Manifest?, isPaused: Bool)?
            if let threadKey {
                let selectID = try connection.statement(Schema.selectHeadID)
                try selectID.bind(1, threadKey)
                if try selectID.step() {
                    let id = try selectID.checkpointID(0)
                    head = (id, heads.value(write.thread, write.namespace, id), selectID.int64(1) != 0)
                }
                selectID.reset()
                if let known = head, known.manifest == nil, known.id == write.parentID {
                    let selectHead = try connection.statement(Schema.selectHeadManifest)
                    try selectHead.bind(1, threadKey)
                    defer { selectHead.reset() }
                    guard try selectHead.step() else {
                        throw CheckpointError(.corruptData, "the head of thread '\(write.thread)' could not be read again")
                    }
                    let row = try selectHead.verifiedRow(
                        at: 0, thread: write.thread, namespace: write.namespace, id: known.id)
                    head?.manifest = try Manifest(decoding: selectHead.data(RowColumn.manifest), owner: row.id)
                }
            }
            var parentManifest = head.flatMap { $0.id == write.parentID ? $0.manifest : nil }
            try PutRules.check(write, expecting: expecting, head: head?.id) {
                guard let threadKey, let parentID = write.parentID else { return false }
                let select = try connection.statement(Schema.selectManifest)
                try select.bind(1, threadKey)
                try select.bind(2, parentID)
                defer { select.reset() }
                guard try select.step() else { return false }
                _ = try select.verifiedRow(at: 0, thread: write.thread, namespace: write.namespace, id: parentID)
                parentManifest = try Manifest(decoding: select.data(RowColumn.manifest), owner: parentID)
                return true
            }
            let resolved = try ResolvedWrite(write, parent: parentManifest)

            let key: Int64
            let activity = ActivityTime.microseconds(write.createdAt)
            if let threadKey {
                key = threadKey
                let advance = try connection.statement(Schema.advanceThread)
                try advance.bind(1, key)
                try advance.bind(2, write.id)
                try advance.bind(3, activity)
                try advance.run()
            } else {
                let insertThread = try connection.statement(Schema.insertThread)
                try insertThread.bind(1, write.thread.rawValue)
                try insertThread.bind(2, write.namespace)
                if let tenant = write.thread.tenant { try insertThread.bind(3, String(tenant)) } else { try insertThread.bindNull(3) }
                try insertThread.bind(4, write.id)
                try insertThread.bind(5, activity)
                try insertThread.run()
                key = connection.lastInsertRowID
            }
            let insert = try connection.statement(Schema.insertCheckpoint)
            try insert.bind(1, key)
            try insert.bind(2, write.id)
            if let parentID = write.parentID { try insert.bind(3, parentID) } else { try insert.bindNull(3) }
            try insert.bind(4, Int64(write.step))
            let row = try NewCheckpointRow(write, resolved: resolved)
            if let createdAt = row.createdAt { try insert.bind(5, createdAt) } else { try insert.bindNull(5) }
            if let metadata = row.metadata {
                try insert.bind(6, String(decoding: metadata, as: UTF8.self))
            } else {
                try insert.bindNull(6)
            }
            try insert.bind(7, row.manifest)
            if let segments = row.segments { try insert.bind(8, segments) } else { try insert.bindNull(8) }
            if let payload = row.payload { try insert.bind(9, payload) } else { try insert.bindNull(9) }
            if let pause = row.pause { try insert.bind(10, pause) } else { try insert.bindNull(10) }
            try insert.bind(11, row.checksum)
            try insert.run()
            // The waiting-pause index holds the thread while its head is paused and unanswered.
            if head?.isPaused == true, write.pause == nil {
                let delete = try connection.statement(Schema.deleteWaiting)
                try delete.bind(1, key)
                try delete.run()
            }
            if let pause = write.pause {
                let waiting = try connection.statement(Schema.insertWaiting)
                try waiting.bind(1, key)
                try waiting.bind(2, write.thread.rawValue)
                try waiting.bind(3, write.namespace)
                if let tenant = write.thread.tenant { try waiting.bind(4, String(tenant)) } else { try waiting.bindNull(4) }
                try waiting.bind(5, pause.reason)
                try waiting.bind(6, pause.createdAt.timeIntervalSince1970)
                if let expiresAt = pause.expiresAt {
                    try waiting.bind(7, expiresAt.timeIntervalSince1970)
                } else {
                    try waiting.bindNull(7)
                }
                try waiting.bind(8, write.id)
                try waiting.run()
            }
            return (key, resolved)
        }
        // After the commit only: what the caches learn must be stored.
        contentCache.learn(resolved, scope: threadKey, writeID: write.id)
        heads.store(write.thread, write.namespace, write.id, resolved.manifest)
    }

    /// Reads one checkpoint in one read transaction; see ``Checkpointer/checkpoint(thread:namespace:id:)``.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try checkOpen()
        let read: @Sendable (SQLiteConnection) throws -> Checkpoint? = { [contentCache, heads] connection in
            try connection.transaction(immediate: false) { () throws -> Checkpoint? in
                let select = try connection.statement(id == nil ? Schema.selectHead : Schema.selectCheckpoint)
                try select.bind(1, thread.rawValue)
                try select.bind(2, namespace)
                if let id { try select.bind(3, id) }
                guard try select.step() else { return nil }
                let threadKey = select.int64(0)
                let fields = SQLiteRowFields(statement: select, first: 1)
                let row = try RowChecksum.verify(fields, thread: thread, namespace: namespace, id: id)
                let answer = try select.verifiedAnswer(
                    at: 1 + RowColumn.count, thread: thread, namespace: namespace, checkpoint: row.id)
                defer { select.reset() }
                let read = try fields.checkpoint(row, thread: thread, namespace: namespace, answer: answer) { manifest in
                    try manifest.materialize(
                        scope: threadKey, cache: contentCache,
                        payloadBlob: { rowID in
                            let payload = try connection.statement(Schema.selectPayload)
                            try payload.bind(1, threadKey)
                            try payload.bind(2, rowID)
                            defer { payload.reset() }
                            guard try payload.step() else { return nil }
                            _ = try payload.verifiedRow(at: 0, thread: thread, namespace: namespace, id: rowID)
                            return payload.isNull(RowColumn.payload) ? nil : payload.data(RowColumn.payload)
                        },
                        segmentRows: { tip, visit in
                            let rows = try connection.statement(Schema.selectSegments)
                            try rows.bind(1, threadKey)
                            try rows.bind(2, tip)
                            defer { rows.reset() }
                            var order = DescendingRows(thread: thread, through: tip)
                            while try rows.step() {
                                let row = try rows.verifiedRow(at: 0, thread: thread, namespace: namespace)
                                try order.accept(row.id)
                                if try visit(row.id, row.parentID, rows.data(RowColumn.segments)) { break }
                            }
                        })
                } origins: { manifest in
                    contentCache.listOrigins(manifest, scope: threadKey)
                }
                if id == nil { heads.store(thread, namespace, read.checkpoint.id, read.manifest) }
                return read.checkpoint
            }
        }
        // The writer, when it is free, reads with its page cache intact: a reader connection's
        // is dropped whenever another connection commits, so the first read after each save
        // would load its pages again (40 µs against 16 on the benchmark's machine).
        if let checkpoint = try writer.runIfFree(read) {
            await InlineCallYield.afterCall()
            return checkpoint
        }
        return try await reader().run(read)
    }

    /// Lists checkpoints newest first; see ``Checkpointer/history(thread:namespace:before:limit:where:)``.
    public func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try checkOpen()
        try validateLimit(limit)
        let query = HistoryQuery(filter: filter)
        return try await reader().run { connection in
            let select = try connection.statement(query.sql)
            try select.bind(1, thread.rawValue)
            try select.bind(2, namespace)
            if let before { try select.bind(3, before) } else { try select.bindNull(3) }
            try select.bind(4, Int64(limit))
            try query.bindFilter(select)
            defer { select.reset() }
            var result: [CheckpointSummary] = []
            var order = DescendingRows(thread: thread, before: before)
            while try select.step() {
                let fields = SQLiteRowFields(statement: select, first: 0)
                let row = try RowChecksum.verify(fields, thread: thread, namespace: namespace)
                try order.accept(row.id)
                result.append(try fields.summary(row, thread: thread, namespace: namespace))
            }
            return result
        }
    }

    /// Deletes a thread in every namespace in one transaction; see ``Checkpointer/deleteThread(_:)``.
    public func deleteThread(_ thread: ThreadID) async throws {
        try checkOpen()
        try await writer.run { [contentCache, heads] connection in
            try connection.transaction(immediate: true) { () throws -> Void in
                let keys = try connection.statement(Schema.selectThreadKeys)
                try keys.bind(1, thread.rawValue)
                var scopes: Set<Int64> = []
                while try keys.step() { scopes.insert(keys.int64(0)) }
                keys.reset()
                contentCache.remove(scopes: scopes)
                heads.remove(thread)
                for sql in [Schema.deleteAnswers, Schema.deleteWaitingOfThread, Schema.deleteCheckpoints, Schema.deleteThreads] {
                    let delete = try connection.statement(sql)
                    try delete.bind(1, thread.rawValue)
                    try delete.run()
                    delete.reset()
                }
            }
        }
    }

    /// Counts a thread's checkpoints and payload bytes; see ``Checkpointer/storageStatistics(thread:)``.
    public func storageStatistics(thread: ThreadID) async throws -> StorageStatistics {
        try checkOpen()
        return try await reader().run { connection in
            let select = try connection.statement(Schema.statistics)
            try select.bind(1, thread.rawValue)
            defer { select.reset() }
            _ = try select.step()
            return StorageStatistics(
                checkpointCount: Int(select.int64(0)), payloadCount: Int(select.int64(1)),
                payloadByteCount: Int(select.int64(2)))
        }
    }

    /// Lists waiting pauses from the `waiting_pauses` index; see ``Checkpointer/pausedThreads(_:)``.
    public func pausedThreads(_ query: InboxQuery) async throws -> InboxPage {
        try checkOpen()
        try query.validate()
        let inbox = InboxSQL(query)
        return try await reader().run { connection in
            let select = try connection.statement(inbox.sql)
            try inbox.bind(select)
            defer { select.reset() }
            var items: [PausedThread] = []
            while try select.step() {
                let thread = try ThreadID(select.text(0))
                let namespace = select.text(1)
                let row = try select.verifiedRow(at: 2, thread: thread, namespace: namespace)
                guard !select.isNull(2 + RowColumn.pause) else {
                    throw CheckpointError(
                        .corruptData, "the inbox index names checkpoint \(row.id) of thread '\(thread)', which has no pause")
                }
                items.append(
                    PausedThread(
                        thread: thread, namespace: namespace, checkpointID: row.id,
                        pause: try Pause(decoding: select.data(2 + RowColumn.pause))))
            }
            return query.page(items)
        }
    }

    /// Lists threads from the `threads_by_activity` or `threads_by_tenant` index; see
    /// ``Checkpointer/threads(_:)``.
    public func threads(_ query: ThreadQuery) async throws -> ThreadPage {
        try checkOpen()
        try query.validate()
        let listing = ThreadListingSQL(query)
        return try await reader().run { connection in
            let select = try connection.statement(listing.sql)
            try listing.bind(select)
            defer { select.reset() }
            var items: [ThreadSummary] = []
            while try select.step() { items.append(try ThreadListingSQL.item(select)) }
            return query.page(items)
        }
    }

    /// Records an answer exactly once, in one write transaction; see
    /// ``Checkpointer/resume(thread:namespace:pauseID:response:at:)``.
    public func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try checkOpen()
        try await writer.run { connection in
            try connection.transaction(immediate: true) { () throws -> Void in
                let selectKey = try connection.statement(Schema.selectThreadKey)
                try selectKey.bind(1, thread.rawValue)
                try selectKey.bind(2, namespace)
                let key = try selectKey.step() ? selectKey.int64(0) : nil
                selectKey.reset()
                var head: (id: CheckpointID, pause: Pause?)?
                if let key {
                    let select = try connection.statement(Schema.selectHeadPause)
                    try select.bind(1, key)
                    if try select.step() {
                        let fields = SQLiteRowFields(statement: select, first: 0)
                        head = (try RowChecksum.verify(fields, thread: thread, namespace: namespace).id, try fields.pause())
                    }
                    select.reset()
                }
                let headID = try ResumeRules.check(thread: thread, pauseID: pauseID, head: head, at: now) {
                    let answered = try connection.statement(Schema.selectAnswerByPause)
                    try answered.bind(1, key ?? 0)
                    try answered.bind(2, pauseID.bytes)
                    defer { answered.reset() }
                    return try answered.step()
                }
                guard let key else { return }
                let insert = try connection.statement(Schema.insertAnswer)
                try insert.bind(1, key)
                try insert.bind(2, headID)
                try insert.bind(3, pauseID.bytes)
                try insert.bind(4, response)
                try insert.bind(5, now.timeIntervalSince1970)
                try insert.bind(
                    6,
                    RowChecksum.answer(
                        thread: thread, namespace: namespace, checkpointID: headID, pauseID: pauseID, response: response,
                        answeredAt: now.timeIntervalSince1970))
                try insert.run()
                let delete = try connection.statement(Schema.deleteWaiting)
                try delete.bind(1, key)
                try delete.run()
                let touch = try connection.statement(Schema.touchThread)
                try touch.bind(1, key)
                try touch.bind(2, ActivityTime.microseconds(now))
                try touch.run()
            }
        }
    }

    /// Keeps the newest checkpoints and unanswered pauses, in one write transaction; see
    /// ``Checkpointer/prune(thread:namespace:by:)``. It reads every row of the thread.
    public func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try checkOpen()
        try rule.validate()
        return try await writer.run { connection in
            try connection.transaction(immediate: true) { () throws -> Int in
                let selectKey = try connection.statement(Schema.selectThreadKey)
                try selectKey.bind(1, thread.rawValue)
                try selectKey.bind(2, namespace)
                guard try selectKey.step() else { return 0 }
                let key = selectKey.int64(0)
                selectKey.reset()
                return try Self.prune(key: key, thread: thread, namespace: namespace, by: rule, on: connection)
            }
        }
    }

    /// Prunes one thread row's namespace, inside the caller's write transaction.
    private static func prune(
        key: Int64, thread: ThreadID, namespace: String, by rule: RetentionRule, on connection: SQLiteConnection
    ) throws -> Int {
        let select = try connection.statement(Schema.selectRetentionRows)
        try select.bind(1, key)
        var rows: [RetentionRow] = []
        while try select.step() {
            let fields = SQLiteRowFields(statement: select, first: 0)
            let row = try RowChecksum.verify(fields, thread: thread, namespace: namespace)
            rows.append(try fields.retentionRow(row, awaitsAnswer: select.int64(RowColumn.count) != 0))
        }
        select.reset()
        let plan = RetentionPlan(rows: rows, rule: rule)
        let delete = try connection.statement(Schema.deleteCheckpoint)
        for id in plan.delete {
            delete.reset()
            try delete.bind(1, key)
            try delete.bind(2, id)
            try delete.run()
        }
        for (id, kept) in plan.tombstone {
            let content = try connection.statement(Schema.selectRowContent)
            try content.bind(1, key)
            try content.bind(2, id)
            guard try content.step() else { continue }
            let fields = SQLiteRowFields(statement: content, first: 0)
            let row = try RowChecksum.verify(fields, thread: thread, namespace: namespace, id: id)
            let kept = try fields.tombstone(row, keeping: kept, thread: thread, namespace: namespace)
            content.reset()
            let tombstone = try connection.statement(Schema.tombstoneCheckpoint)
            try tombstone.bind(1, key)
            try tombstone.bind(2, id)
            if let segments = kept.segments { try tombstone.bind(3, segments) } else { try tombstone.bindNull(3) }
            if let payload = kept.payload { try tombstone.bind(4, payload) } else { try tombstone.bindNull(4) }
            try tombstone.bind(5, kept.checksum)
            try tombstone.run()
        }
        if plan.removedFromHistory > 0 {
            let uncount = try connection.statement(Schema.uncountCheckpoints)
            try uncount.bind(1, key)
            try uncount.bind(2, Int64(plan.removedFromHistory))
            try uncount.run()
        }
        return plan.removedFromHistory
    }

    /// Sweeps idle namespaces from the `threads_by_activity` index, in one write transaction
    /// of at least one namespace and at most 16 (and `limit`) that stops after 200 µs of work,
    /// or as soon as another call waits for the writer: such a call then waits for one
    /// namespace's deletes and a small commit, not for a whole batch. When calls wait, the
    /// sweep then gives them four times as long as its batch took; see
    /// ``Checkpointer/sweepIdle(_:)``.
    /// Other processes sweeping the same file take turns on the write lock, and each
    /// transaction re-reads what is still idle.
    public func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport {
        try checkOpen()
        try batch.validate()
        let limit = min(batch.limit, 16)
        let start = ContinuousClock.now
        let report = try await writer.run { [contentCache, heads, writer] connection in
            try connection.transaction(immediate: true) { () throws -> IdleSweepReport in
                let select = try connection.statement(Schema.selectIdle)
                try select.bind(1, ActivityTime.microseconds(batch.idleBefore))
                try select.bind(2, Int64(batch.removesExpiredPauses ? 1 : 0))
                try select.bind(3, batch.now.timeIntervalSince1970)
                try select.bind(4, batch.after?.activityMicroseconds ?? .min)
                try select.bind(5, batch.after?.thread ?? "")
                try select.bind(6, batch.after?.namespace ?? "")
                try select.bind(7, Int64(batch.action == .pruneToHead ? 1 : 0))
                try select.bind(8, Int64(limit))
                var chosen: [(key: Int64, item: ThreadCursor)] = []
                while try select.step() {
                    chosen.append(
                        (select.int64(0),
                         ThreadCursor(activityMicroseconds: select.int64(3), thread: select.text(1), namespace: select.text(2))))
                }
                select.reset()
                var report = IdleSweepReport()
                let deadline = ContinuousClock.now + .microseconds(200)
                var done: [(key: Int64, item: ThreadCursor)] = []
                for (key, item) in chosen {
                    // A call that waits for the writer ends the batch early: it then waits for
                    // one namespace's deletes and a small commit, not for the whole batch.
                    if !done.isEmpty, writer.hasWaitingCalls || ContinuousClock.now >= deadline { break }
                    done.append((key, item))
                    let thread = try ThreadID(item.thread)
                    report.threads.insert(thread)
                    let sizes = try connection.statement(Schema.keyStatistics)
                    try sizes.bind(1, key)
                    _ = try sizes.step()
                    let bytesBefore = Int(sizes.int64(1))
                    let checkpoints = Int(sizes.int64(0))
                    sizes.reset()
                    switch batch.action {
                    case .pruneToHead:
                        report.checkpointsRemoved += try Self.prune(
                            key: key, thread: thread, namespace: item.namespace, by: .keepingLatest(1), on: connection)
                        try sizes.bind(1, key)
                        _ = try sizes.step()
                        report.bytesRemoved += bytesBefore - Int(sizes.int64(1))
                        sizes.reset()
                        report.prunedCount += 1
                    case .delete:
                        for sql in [Schema.deleteAnswersOfKey, Schema.deleteWaiting, Schema.deleteCheckpointsOfKey, Schema.deleteThreadOfKey] {
                            let delete = try connection.statement(sql)
                            try delete.bind(1, key)
                            try delete.run()
                        }
                        report.checkpointsRemoved += checkpoints
                        report.bytesRemoved += bytesBefore
                        report.deletedCount += 1
                    }
                    heads.remove(thread)
                }
                contentCache.remove(scopes: Set(done.map(\.key)))
                // More may be idle after the last one done: when the time ran out, or the batch was full.
                report.next = done.count < chosen.count || chosen.count == limit ? done.last?.item : nil
                return report
            }
        }
        // A sweep is background work: when other calls wait for the writer, it gives them four
        // times as long as its batch took before it goes on (a fifth of the writer at most), so
        // that the puts of a busy file do not queue behind batch after batch.
        if report.next != nil, writer.hasWaitingCalls {
            try? await Task.sleep(for: (ContinuousClock.now - start) * 4)
        }
        return report
    }

    /// Closes every connection, even from a cancelled task. Later calls fail with
    /// ``CheckpointError/Code/closed``.
    /// One round trip to the file on a reader connection, with the newest migration it records;
    /// see ``Checkpointer/health()``.
    public func health() async -> HealthReport {
        await HealthReport.probing("sqlite") {
            try checkOpen()
            return try await reader().run { connection in try Self.recordedMigrations(connection).max() }
        }
    }

    public func close() async throws {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for connection in [writer, walConnection] + readers {
            await connection.runRegardlessOfCancellation { $0.close() }
        }
        logger.debug("closed SQLite checkpointer", metadata: ["path": "\(configuration.path)"])
    }

    private func checkOpen() throws(CheckpointError) {
        if isClosed.load(ordering: .acquiring) {
            throw CheckpointError(.closed, "the SQLite checkpointer was closed")
        }
    }

    /// The connection for a read: the writer when the caller already runs on the writer's
    /// thread (no hop), otherwise the next reader.
    private func reader() -> SerializedConnection {
        if writer.isCurrent { return writer }
        let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        return readers[index % readers.count]
    }
}

struct SQLiteBackend: CheckpointerBackend {
    var schemes: Set<String> { ["sqlite"] }

    func makeCheckpointer(url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer {
        try await SQLiteCheckpointer(configuration: SQLiteCheckpointer.Configuration(url: url), logger: logger)
    }
}

extension SQLiteCheckpointer {
    /// Reads a pragma's value on the writer connection, for diagnostics (`"synchronous"`,
    /// `"journal_mode"`, ...). The name must be a plain identifier.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a name that is not an identifier.
    public func pragma(_ name: String) async throws -> String? {
        try checkOpen()
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "_") }) else {
            throw CheckpointError(.invalidArgument, "'\(name)' is not a pragma name")
        }
        return try await writer.run { connection in
            let statement = try connection.statement("PRAGMA \(name)")
            defer { statement.reset() }
            return try statement.step() ? statement.text(0) : nil
        }
    }
}

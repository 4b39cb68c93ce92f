import CCheckpointPostgres
import Checkpointing
import CheckpointRuntime
import Foundation
import Logging
import Synchronization

/// A backend for many app instances on many machines sharing one PostgreSQL (13 or later),
/// through libpq.
///
/// ```swift
/// let checkpointer = try await PostgresCheckpointer(
///     configuration: .init(url: CheckpointerURL("postgres://agent:secret@db:5432/agents?pool_max=10")))
/// ```
///
/// - A bounded pool of connections, each on a thread of its own: libpq's blocking calls never
///   run on Swift's shared threads. A connection the server closed is replaced before use, so
///   after a server restart the pool recovers by itself; while the server is down, calls fail
///   at once with ``CheckpointError/Code/connectionFailed`` (``CheckpointError/isRetryable``).
/// - The schema is migrated on open under an advisory lock, so instances starting together
///   migrate once; migrations are named and recorded in `checkpoint_migrations`.
/// - A put is one statement, one round trip: it moves the thread's head only if the head is
///   still the write's parent (``CheckpointError/Code/conflict`` otherwise) and inserts the
///   checkpoint's row. The parent's manifest, when a write needs it, comes from a small cache
///   of the heads this process wrote or read, else from one more round trip.
/// - Tenant mode (``Configuration/tenant``): PostgreSQL's row-level security restricts every
///   connection to one tenant's threads.
public final class PostgresCheckpointer: Checkpointer {
    /// The settings the checkpointer was opened with.
    public let configuration: Configuration
    private let pool: ConnectionPool<PostgresConnection>
    /// The pool of ``Configuration/replicas`` connections, when there are replicas.
    private let replicaPool: ConnectionPool<PostgresConnection>?
    private let isClosed = Atomic<Bool>(false)
    private let metrics: CheckpointMetrics
    private let contentCache: ContentCache
    private let heads = HeadManifests(capacity: 50_000)
    private let logger: Logger

    /// Lets ``CheckpointerConfiguration`` open `postgres:` and `postgresql:` URLs.
    public static let backend: any CheckpointerBackend = PostgresBackend()

    /// Connects (``Configuration/poolMin`` connections), checks the settings and migrates the schema.
    ///
    /// - Throws: ``CheckpointError/Code/connectionFailed`` when the server cannot be reached
    ///   within ``Configuration/connectTimeout`` or refuses the credentials;
    ///   ``CheckpointError/Code/migrationFailed`` when the schema cannot be brought up to date;
    ///   ``CheckpointError/Code/invalidConfiguration`` for bad settings, or a tenant mode whose
    ///   role bypasses row-level security.
    public init(configuration: Configuration, logger: Logger = Logger(label: "checkpointing.postgres")) async throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.contentCache = ContentCache(capacity: configuration.contentCacheBytes)
        self.metrics = CheckpointMetrics(backend: "postgres", factory: configuration.metricsFactory)
        let tenant = configuration.tenant
        let schema = configuration.schema
        let poolerFound = Atomic<Bool>(false)
        func makePool(label: String, parameters: [(String, String)]) -> ConnectionPool<PostgresConnection> {
            ConnectionPool(
                size: configuration.poolMax, label: label, serverName: "PostgreSQL",
                idleSpin: configuration.idleSpin, acquireTimeout: configuration.acquireTimeout, logger: logger,
                metricsFactory: configuration.metricsFactory, idleTimeout: configuration.idleTimeout,
                connect: { [pooler = configuration.pooler] in
                    try Self.connect(
                        parameters: parameters, pooler: pooler, tenant: tenant, schema: schema, poolerFound: poolerFound,
                        logger: logger)
                },
                classify: PostgresErrors.classify)
        }
        pool = makePool(label: "checkpointing.postgres", parameters: configuration.connectionParameters)
        replicaPool = configuration.replicaParameters.map { makePool(label: "checkpointing.postgres.replica", parameters: $0) }
        do {
            try await pool.run { connection in try Self.migrate(connection, schema: schema, logger: logger) }
            if tenant != nil {
                let bypasses = try await pool.run { connection in
                    let result = try connection.query(PostgresSchema.roleBypassesSecurity, [])
                    return result.rowCount == 0 || result.bool(0, 0)
                }
                if bypasses {
                    throw CheckpointError(
                        .invalidConfiguration,
                        "tenant mode needs a role that is not a superuser and has no BYPASSRLS: PostgreSQL would not restrict it"
                    )
                }
            }
            try await pool.warm(configuration.poolMin)
        } catch {
            await pool.close()
            await replicaPool?.close()
            throw error
        }
        logger.debug("opened Postgres checkpointer", metadata: ["server": "\(configuration)"])
    }

    /// Opens one pool connection: to the first server that takes it (for the primary, the
    /// first that accepts writes), turned to unnamed statements when a pooler answers, and
    /// bound to the tenant in tenant mode.
    private static func connect(
        parameters: [(String, String)], pooler: Pooler, tenant: String?, schema: String?, poolerFound: borrowing Atomic<Bool>,
        logger: Logger
    ) throws -> PostgresConnection {
        let connection = try PostgresConnection(
            parameters: parameters, namedStatements: pooler != .transaction,
            fallsBackToUnnamed: pooler == .automatic && tenant == nil)
        if pooler == .automatic, try connection.isAnsweredByAPooler() {
            guard tenant == nil, schema == nil else {
                connection.close()
                throw CheckpointError(
                    .invalidConfiguration,
                    "a connection pooler answers for PostgreSQL, and \(tenant != nil ? "tenant mode" : "a schema") needs a session setting that a transaction pooler does not keep: connect directly, or declare a session pooler with pooler=session"
                )
            }
            connection.turnToUnnamedStatements()
            if !poolerFound.exchange(true, ordering: .relaxed) {
                logger.info(
                    "a connection pooler answers for PostgreSQL: statements are sent unnamed (declare pooler=session to keep prepared statements through a session pooler, or pooler=transaction to skip this check)"
                )
            }
        }
        if let tenant {
            _ = try connection.query(PostgresSchema.bindTenant, [.text(tenant)])
        }
        return connection
    }

    /// Runs a call that may read slightly old data on the replicas when there are any (see
    /// ``Configuration/replicas``), else (or inside `ReadConsistency.readingLatest`) on the
    /// primary. A replica that cannot be reached, or
    /// that cancels the read for replication (SQLSTATE 40001), leaves the call to the primary.
    private func runOnReplica<T: Sendable>(
        unless readsLatest: Bool = false, _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        guard let replicaPool, !readsLatest, !ReadConsistency.latestRequired else { return try await pool.run(body) }
        do {
            return try await replicaPool.run(body)
        } catch let error as CheckpointError where error.code == .connectionFailed || error.code == .conflict {
            logger.warning("a read replica did not answer; reading from the primary", metadata: ["error": "\(error)"])
            return try await pool.run(body)
        }
    }

    /// Applies the missing migrations under a session advisory lock, each in its own
    /// transaction unless it cannot run in one; through a transaction pooler (no session),
    /// all in one transaction under a transaction's advisory lock.
    private static func migrate(_ connection: PostgresConnection, schema: String?, logger: Logger) throws {
        guard connection.namedStatements else {
            return try migrateInOneTransaction(connection, logger: logger)
        }
        do {
            try connection.execute("SELECT pg_advisory_lock(\(PostgresSchema.migrationLock))")
            defer { try? connection.execute("SELECT pg_advisory_unlock(\(PostgresSchema.migrationLock))") }
            if let schema {
                // A validated identifier, quoted: DDL takes no parameters.
                try connection.execute("CREATE SCHEMA IF NOT EXISTS \"\(schema)\"")
            }
            try connection.execute(PostgresSchema.migrationsTable)
            let applied = try connection.query(text: "SELECT name FROM checkpoint_migrations", [])
            let names = Set((0..<applied.rowCount).map { applied.text($0, 0) })
            for migration in PostgresSchema.migrations where !names.contains(migration.name) {
                let record = "INSERT INTO checkpoint_migrations (name) VALUES ($1)"
                if migration.transactional {
                    try connection.transaction {
                        try connection.execute(migration.sql)
                        try migration.after?(connection)
                        _ = try connection.query(text: record, [.text(migration.name)])
                    }
                } else {
                    try connection.execute(migration.sql)
                    try migration.after?(connection)
                    _ = try connection.query(text: record, [.text(migration.name)])
                }
                logger.info("applied PostgreSQL migration", metadata: ["migration": "\(migration.name)"])
            }
        } catch let error as PostgresError {
            throw migrationError(error)
        }
    }

    /// The migrations for a connection without a session of its own (a transaction pooler may
    /// give each transaction another server connection, so a session's advisory lock could be
    /// taken on one and never released): one transaction that takes
    /// `pg_advisory_xact_lock`, which ends with it.
    private static func migrateInOneTransaction(_ connection: PostgresConnection, logger: Logger) throws {
        do {
            var applied: [String] = []
            try connection.transaction {
                _ = try connection.query(text: "SELECT pg_advisory_xact_lock($1)", [.int8(PostgresSchema.migrationLock)])
                try connection.execute(PostgresSchema.migrationsTable)
                let rows = try connection.query(text: "SELECT name FROM checkpoint_migrations", [])
                let names = Set((0..<rows.rowCount).map { rows.text($0, 0) })
                for migration in PostgresSchema.migrations where !names.contains(migration.name) {
                    guard migration.transactional else {
                        throw CheckpointError(
                            .migrationFailed,
                            "migration \(migration.name) cannot run in a transaction, so not through a transaction pooler: open the checkpointer once with a direct URL (or run `checkpoint migrate` with one)"
                        )
                    }
                    try connection.execute(migration.sql)
                    try migration.after?(connection)
                    _ = try connection.query(
                        text: "INSERT INTO checkpoint_migrations (name) VALUES ($1)", [.text(migration.name)])
                    applied.append(migration.name)
                }
            }
            for name in applied { logger.info("applied PostgreSQL migration", metadata: ["migration": "\(name)"]) }
        } catch let error as PostgresError {
            throw migrationError(error)
        }
    }

    /// A server error during migration: a connection failure as it is (retryable), anything
    /// else as ``CheckpointError/Code/migrationFailed``.
    private static func migrationError(_ error: PostgresError) -> CheckpointError {
        let mapped = PostgresErrors.map(error)
        if mapped.code == .connectionFailed { return mapped }
        return CheckpointError(
            .migrationFailed, "cannot migrate the PostgreSQL schema", nativeCode: mapped.nativeCode, underlying: error)
    }

    /// A pool connection's thread, as an executor.
    ///
    /// Code that runs under `withTaskExecutorPreference(checkpointer.connectionExecutor(0))`
    /// runs on that connection's own thread, so its calls run inline, without the two
    /// thread hops (to a connection's thread and back) an `await` otherwise costs. Use one
    /// index per concurrent agent loop; calls from other tasks use the other connections.
    public func connectionExecutor(_ index: Int) -> any TaskExecutor { pool.executor(index) }

    // MARK: Checkpointer

    /// Appends a checkpoint with one statement; see ``Checkpointer/put(_:expecting:)``.
    public func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        let start = ContinuousClock.now
        try checkOpen()
        try NamespaceValidation.validate(write.namespace)
        let needsParent = Manifest.writeNeedsParent(write)
        let cachedParent = needsParent ? write.parentID.flatMap { heads.value(write.thread, write.namespace, $0) } : nil
        let (threadKey, resolved): (Int64, ResolvedWrite)
        do {
            (threadKey, resolved) = try await pool.run { connection in
                try Self.put(write, expecting: expecting, cachedParent: cachedParent, needsParent: needsParent, on: connection)
            }
        } catch let error as CheckpointError {
            if error.code == .conflict { metrics.recordConflict() }
            throw error
        }
        heads.store(write.thread, write.namespace, write.id, resolved.manifest)
        contentCache.learn(resolved, scope: threadKey, writeID: write.id)
        metrics.recordPut(since: start, payloadBytes: write.payloadByteCount)
    }

    private static func put(
        _ write: CheckpointWrite, expecting: PutExpectation, cachedParent: Manifest?, needsParent: Bool,
        on connection: PostgresConnection
    ) throws -> (Int64, ResolvedWrite) {
        var parentManifest = cachedParent
        if needsParent, parentManifest == nil, let parentID = write.parentID {
            let result = try connection.query(
                PostgresSchema.selectManifest, [.text(write.thread.rawValue), .text(write.namespace), .id(parentID)])
            guard result.rowCount == 1 else {
                try diagnose(write, expecting: expecting, on: connection)
                throw CheckpointError(.notFound, "thread '\(write.thread)' has no checkpoint \(parentID) to follow")
            }
            let parent = try result.verifiedRow(0, at: 0, thread: write.thread, namespace: write.namespace, id: parentID)
            parentManifest = try Manifest(decoding: parent.fields.data(PostgresRowColumn.manifest), owner: parentID)
        }
        let resolved = try ResolvedWrite(write, parent: parentManifest)
        let statement =
            write.parentID != nil
            ? PostgresSchema.putAfter : expecting.requiresParentIsHead ? PostgresSchema.putFirst : PostgresSchema.putRoot
        let pause = write.pause
        let row = try NewCheckpointRow(write, resolved: resolved)
        let result = try connection.query(
            statement,
            [
                .text(write.thread.rawValue), .text(write.namespace), .optional(write.thread.tenant.map(String.init)),
                .id(write.id), .id(write.parentID), .int8(Int64(write.step)), row.createdAt.map { .float8($0) } ?? .null,
                row.metadata.map { .jsonb($0) } ?? .null, .bytes(row.manifest), .bool(!expecting.requiresParentIsHead),
                .optional(pause?.id.bytes), .optional(pause?.reason),
                pause.map { .float8($0.createdAt.timeIntervalSince1970) } ?? .null,
                pause?.expiresAt.map { .float8($0.timeIntervalSince1970) } ?? .null,
                .optional(row.segments), .optional(row.payload), .optional(row.pause), .int8(row.checksum),
                .int8(ActivityTime.microseconds(write.createdAt)),
            ])
        guard result.rowCount == 1 else {
            try diagnose(write, expecting: expecting, on: connection)
            throw CheckpointError(
                .conflict, "thread '\(write.thread)' has a new head since this writer read it; nothing was written")
        }
        return (try result.int64(0, 0), resolved)
    }

    /// Says why a put changed nothing, with the error the SQLite backend gives in that case.
    private static func diagnose(
        _ write: CheckpointWrite, expecting: PutExpectation, on connection: PostgresConnection
    ) throws {
        let result = try connection.query(
            PostgresSchema.diagnosePut,
            [.text(write.thread.rawValue), .text(write.namespace), .bytes(write.parentID?.bigEndianBytes ?? Data())])
        let head = result.rowCount == 1 ? try result.checkpointID(0, 0) : nil
        try PutRules.check(write, expecting: expecting, head: head) { result.rowCount == 1 && result.bool(0, 1) }
    }

    /// Reads one checkpoint; see ``Checkpointer/checkpoint(thread:namespace:id:)``.
    ///
    /// One statement reads the row; its list segments and stored values come from the content
    /// cache or from more statements. Should a concurrent prune remove content between them,
    /// the read is repeated in one snapshot.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try checkOpen()
        let (statement, parameters) = Self.readStatement(thread, namespace, id)
        let whole: @Sendable (PostgresConnection) throws -> ReadCheckpoint? = { [contentCache] connection in
            do {
                return try Self.read(thread, namespace, id, on: connection, contentCache: contentCache)
            } catch let error as CheckpointError where error.code == .corruptData {
                return try connection.transaction("ISOLATION LEVEL REPEATABLE READ READ ONLY") {
                    try Self.read(thread, namespace, id, on: connection, contentCache: contentCache)
                }
            }
        }
        // The row's query is sent from the caller's thread when a connection is free; its reply,
        // when it comes soon, is read there too. A read that needs more (lists whose elements
        // are not in the content cache, a row that fails its check) is done whole on the
        // connection's thread.
        let checkpoint = try await pool.run(
            replyWait: configuration.inlineReplyWait,
            sending: { connection in try connection.send(statement, parameters) },
            receiving: { [contentCache] connection -> ReadCheckpoint?? in
                do {
                    return .some(
                        try Self.interpret(
                            connection.receive(), thread, namespace, id, on: nil, contentCache: contentCache))
                } catch is NeedsTheConnection {
                    return nil
                } catch let error as CheckpointError where error.code == .corruptData {
                    return nil
                } catch let error as PostgresError
                    where connection.fallsBackToUnnamed && PostgresConnection.isPoolerSymptom(error)
                {
                    // An undeclared transaction pooler: the read is done again, unnamed.
                    connection.turnToUnnamedStatements()
                    return nil
                }
            },
            otherwise: whole)
        if let checkpoint, let manifest = checkpoint.manifest {
            heads.store(thread, namespace, checkpoint.checkpoint.id, manifest)
        }
        return checkpoint?.checkpoint
    }

    private struct ReadCheckpoint: Sendable {
        var checkpoint: Checkpoint
        var manifest: Manifest?
    }

    /// The statement that reads a checkpoint's row (the head's when `id` is `nil`).
    private static func readStatement(
        _ thread: ThreadID, _ namespace: String, _ id: CheckpointID?
    ) -> (PostgresSQL, [PostgresValue]) {
        if let id {
            (PostgresSchema.selectCheckpoint, [.text(thread.rawValue), .text(namespace), .id(id)])
        } else {
            (PostgresSchema.selectHead, [.text(thread.rawValue), .text(namespace)])
        }
    }

    /// Thrown by ``interpret(_:_:_:_:on:contentCache:)`` without a connection when the row's
    /// state needs more rows than the content cache holds.
    private struct NeedsTheConnection: Error {}

    private static func read(
        _ thread: ThreadID, _ namespace: String, _ id: CheckpointID?, on connection: PostgresConnection,
        contentCache: ContentCache
    ) throws -> ReadCheckpoint? {
        let (statement, parameters) = readStatement(thread, namespace, id)
        return try interpret(
            connection.query(statement, parameters), thread, namespace, id, on: connection, contentCache: contentCache)
    }

    /// The checkpoint in a row read by ``readStatement(_:_:_:)``; the rows its lists need that
    /// the content cache does not hold are read on `connection` (without one, it throws
    /// ``NeedsTheConnection``).
    private static func interpret(
        _ result: PostgresResult, _ thread: ThreadID, _ namespace: String, _ id: CheckpointID?,
        on connection: PostgresConnection?, contentCache: ContentCache
    ) throws -> ReadCheckpoint? {
        guard result.rowCount == 1 else { return nil }
        let threadKey = try result.int64(0, 0)
        let (row, fields) = try result.verifiedRow(0, at: 1, thread: thread, namespace: namespace, id: id)
        let answer = try result.verifiedAnswer(
            0, at: 1 + PostgresRowColumn.count, thread: thread, namespace: namespace, checkpoint: row.id)
        let (checkpoint, manifest) = try fields.checkpoint(row, thread: thread, namespace: namespace, answer: answer) {
            manifest in
            try manifest.materialize(
                scope: threadKey, cache: contentCache,
                payloadBlob: { rowID in
                    guard let connection else { throw NeedsTheConnection() }
                    let rows = try connection.query(PostgresSchema.selectPayload, [.int8(threadKey), .id(rowID)])
                    guard rows.rowCount == 1 else { return nil }
                    let fields = try rows.verifiedRow(0, at: 0, thread: thread, namespace: namespace, id: rowID).fields
                    return fields.isNull(PostgresRowColumn.payload) ? nil : fields.data(PostgresRowColumn.payload)
                },
                segmentRows: { tip, visit in
                    guard let connection else { throw NeedsTheConnection() }
                    let rows = try connection.query(PostgresSchema.selectSegments, [.int8(threadKey), .id(tip)])
                    var order = DescendingRows(thread: thread, through: tip)
                    for index in 0..<rows.rowCount {
                        let (row, fields) = try rows.verifiedRow(index, at: 0, thread: thread, namespace: namespace)
                        try order.accept(row.id)
                        if try visit(row.id, row.parentID, fields.data(PostgresRowColumn.segments)) { break }
                    }
                })
        } origins: { manifest in
            contentCache.listOrigins(manifest, scope: threadKey)
        }
        return ReadCheckpoint(checkpoint: checkpoint, manifest: id == nil ? manifest : nil)
    }

    /// Lists checkpoints newest first, filtering metadata with `jsonb @>` (GIN-indexed); see
    /// ``Checkpointer/history(thread:namespace:before:limit:where:)``.
    ///
    /// Runs on ``Configuration/replicas`` when there are any, so it may miss the newest writes.
    public func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try checkOpen()
        try validateLimit(limit)
        var sql = """
            SELECT \(PostgresSchema.rowColumns)
            FROM checkpoint_threads t JOIN checkpoint_rows c ON c.thread_key = t.key
            WHERE t.thread = $1 AND t.namespace = $2 AND length(c.manifest) > 0
            """
        var parameters: [PostgresValue] = [.text(thread.rawValue), .text(namespace)]
        if let before {
            parameters.append(.id(before))
            sql += " AND c.id < $\(parameters.count)"
        }
        if !filter.isEmpty {
            parameters.append(.jsonb(try filter.jsonData()))
            sql += " AND c.metadata @> $\(parameters.count)"
        }
        parameters.append(.int8(Int64(limit)))
        sql += " ORDER BY c.id DESC LIMIT $\(parameters.count)"
        let query = sql
        let bound = parameters
        return try await runOnReplica { connection in
            let result = try connection.query(text: query, bound)
            var summaries: [CheckpointSummary] = []
            summaries.reserveCapacity(result.rowCount)
            var order = DescendingRows(thread: thread, before: before)
            for index in 0..<result.rowCount {
                let (row, fields) = try result.verifiedRow(index, at: 0, thread: thread, namespace: namespace)
                try order.accept(row.id)
                summaries.append(try fields.summary(row, thread: thread, namespace: namespace))
            }
            return summaries
        }
    }

    /// Deletes a thread in every namespace with one statement; see ``Checkpointer/deleteThread(_:)``.
    public func deleteThread(_ thread: ThreadID) async throws {
        try checkOpen()
        let keys = try await pool.run { connection in
            let result = try connection.query(PostgresSchema.deleteThread, [.text(thread.rawValue)])
            return try (0..<result.rowCount).map { try result.int64($0, 0) }
        }
        contentCache.remove(scopes: Set(keys))
        heads.remove(thread)
    }

    /// Counts a thread's checkpoints and payload bytes; see ``Checkpointer/storageStatistics(thread:)``.
    ///
    /// Runs on ``Configuration/replicas`` when there are any, so it may miss the newest writes.
    public func storageStatistics(thread: ThreadID) async throws -> StorageStatistics {
        try checkOpen()
        return try await runOnReplica { connection in
            let result = try connection.query(PostgresSchema.statistics, [.text(thread.rawValue)])
            return StorageStatistics(
                checkpointCount: Int(try result.int64(0, 0)), payloadCount: Int(try result.int64(0, 1)),
                payloadByteCount: Int(try result.int64(0, 2)))
        }
    }

    /// Lists waiting pauses from a partial index of the threads whose head waits; see
    /// ``Checkpointer/pausedThreads(_:)``.
    ///
    /// Runs on ``Configuration/replicas`` when there are any, so it may miss the newest writes.
    public func pausedThreads(_ query: InboxQuery) async throws -> InboxPage {
        try checkOpen()
        try query.validate()
        let inbox = PostgresInbox(query)
        return try await runOnReplica { connection in
            let result = try connection.query(text: inbox.sql, inbox.parameters)
            var items: [PausedThread] = []
            for index in 0..<result.rowCount {
                let thread = try ThreadID(result.text(index, 0))
                let namespace = result.text(index, 1)
                let (row, fields) = try result.verifiedRow(index, at: 2, thread: thread, namespace: namespace)
                guard !fields.isNull(PostgresRowColumn.pause) else {
                    throw CheckpointError(
                        .corruptData, "the inbox index names checkpoint \(row.id) of thread '\(thread)', which has no pause")
                }
                items.append(
                    PausedThread(
                        thread: thread, namespace: namespace, checkpointID: row.id,
                        pause: try Pause(decoding: fields.data(PostgresRowColumn.pause))))
            }
            return query.page(items)
        }
    }

    /// Lists threads from the `checkpoint_threads_by_activity` or `_by_tenant` index; see
    /// ``Checkpointer/threads(_:)``.
    ///
    /// Runs on ``Configuration/replicas`` when there are any, so it may miss the newest writes,
    /// unless the query ``ThreadQuery/readsLatest``.
    public func threads(_ query: ThreadQuery) async throws -> ThreadPage {
        try checkOpen()
        try query.validate()
        let listing = PostgresThreadListing(query)
        return try await runOnReplica(unless: query.readsLatest) { connection in
            let result = try connection.query(text: listing.sql, listing.parameters)
            var items: [ThreadSummary] = []
            for index in 0..<result.rowCount {
                let thread = try ThreadID(result.text(index, 0))
                let namespace = result.text(index, 1)
                var pause: Pause?
                if result.bool(index, 5) {
                    let (row, fields) = try result.verifiedRow(index, at: 6, thread: thread, namespace: namespace)
                    guard !fields.isNull(PostgresRowColumn.pause) else {
                        throw CheckpointError(
                            .corruptData,
                            "the thread row of '\(thread)' names waiting checkpoint \(row.id), which has no pause")
                    }
                    pause = try Pause(decoding: fields.data(PostgresRowColumn.pause))
                }
                items.append(
                    ThreadSummary(
                        thread: thread, namespace: namespace, headID: try result.checkpointID(index, 2),
                        lastActivity: ActivityTime.date(try result.int64(index, 3)),
                        checkpointCount: Int(try result.int64(index, 4)), waitingPause: pause))
            }
            return query.page(items)
        }
    }

    /// Records an answer exactly once, in one transaction holding the thread's row; see
    /// ``Checkpointer/resume(thread:namespace:pauseID:response:at:)``.
    public func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try checkOpen()
        try await pool.run { connection in
            try connection.transaction {
                let head = try connection.query(
                    PostgresSchema.lockHeadPause, [.text(thread.rawValue), .text(namespace)])
                let key = head.rowCount == 1 ? try head.int64(0, 0) : 0
                let headRow = try head.rowCount == 1
                    ? head.verifiedRow(0, at: 1, thread: thread, namespace: namespace) : nil
                let headID = try ResumeRules.check(
                    thread: thread, pauseID: pauseID, head: try headRow.map { ($0.row.id, try $0.fields.pause()) },
                    at: now
                ) {
                    try connection.query(PostgresSchema.selectAnswerByPause, [.int8(key), .bytes(pauseID.bytes)])
                        .rowCount > 0
                }
                _ = try connection.query(
                    PostgresSchema.insertAnswer,
                    [
                        .int8(key), .id(headID), .bytes(pauseID.bytes), .bytes(response),
                        .float8(now.timeIntervalSince1970), .optional(thread.tenant.map(String.init)),
                        .int8(
                            RowChecksum.answer(
                                thread: thread, namespace: namespace, checkpointID: headID, pauseID: pauseID,
                                response: response, answeredAt: now.timeIntervalSince1970)),
                    ])
                _ = try connection.query(
                    PostgresSchema.clearWaiting, [.int8(key), .int8(ActivityTime.microseconds(now))])
            }
        }
    }

    /// Keeps the newest checkpoints and unanswered pauses, in one transaction holding the
    /// thread's row; see ``Checkpointer/prune(thread:namespace:by:)``.
    public func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try checkOpen()
        try rule.validate()
        return try await pool.run { connection in
            try connection.transaction {
                let locked = try connection.query(PostgresSchema.lockThread, [.text(thread.rawValue), .text(namespace)])
                guard locked.rowCount == 1 else { return 0 }
                return try Self.prune(key: try locked.int64(0, 0), thread: thread, namespace: namespace, by: rule, on: connection)
            }
        }
    }

    /// Prunes one thread row's namespace, in the caller's transaction that holds the row.
    private static func prune(
        key: Int64, thread: ThreadID, namespace: String, by rule: RetentionRule, on connection: PostgresConnection
    ) throws -> Int {
        let result = try connection.query(PostgresSchema.selectRetentionRows, [.int8(key)])
        var rows: [RetentionRow] = []
        for index in 0..<result.rowCount {
            let (row, fields) = try result.verifiedRow(index, at: 0, thread: thread, namespace: namespace)
            rows.append(try fields.retentionRow(row, awaitsAnswer: result.bool(index, PostgresRowColumn.count)))
        }
        let plan = RetentionPlan(rows: rows, rule: rule)
        for id in plan.delete {
            _ = try connection.query(PostgresSchema.deleteRow, [.int8(key), .id(id)])
            _ = try connection.query(PostgresSchema.deleteAnswerOfRow, [.int8(key), .id(id)])
        }
        for (id, kept) in plan.tombstone {
            let content = try connection.query(PostgresSchema.selectRowContent, [.int8(key), .id(id)])
            guard content.rowCount == 1 else { continue }
            let (row, fields) = try content.verifiedRow(0, at: 0, thread: thread, namespace: namespace, id: id)
            let kept = try fields.tombstone(row, keeping: kept, thread: thread, namespace: namespace)
            _ = try connection.query(
                PostgresSchema.tombstoneRow,
                [.int8(key), .id(id), .optional(kept.segments), .optional(kept.payload), .int8(kept.checksum)])
            _ = try connection.query(PostgresSchema.deleteAnswerOfRow, [.int8(key), .id(id)])
        }
        if plan.removedFromHistory > 0 {
            _ = try connection.query(
                PostgresSchema.uncountCheckpoints, [.int8(key), .int8(Int64(plan.removedFromHistory))])
        }
        return plan.removedFromHistory
    }

    /// Sweeps idle namespaces: one statement locks a batch from the activity index with
    /// `FOR UPDATE SKIP LOCKED` (rows another sweeper or a put holds are skipped, nobody
    /// waits) and deletes it; pruning to the head locks the batch the same way and prunes each
    /// in the same transaction. See ``Checkpointer/sweepIdle(_:)``.
    public func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport {
        try checkOpen()
        try batch.validate()
        let parameters: [PostgresValue] = [
            .int8(ActivityTime.microseconds(batch.idleBefore)), .bool(batch.removesExpiredPauses),
            .float8(batch.now.timeIntervalSince1970), .int8(batch.after?.activityMicroseconds ?? .min),
            .text(batch.after?.thread ?? ""), .text(batch.after?.namespace ?? ""), .int8(Int64(batch.limit)),
        ]
        let (counted, chosen) = try await pool.run { connection -> (IdleSweepReport, [(key: Int64, cursor: ThreadCursor)]) in
            func cursor(_ result: PostgresResult, _ index: Int) throws -> ThreadCursor {
                ThreadCursor(
                    activityMicroseconds: try result.int64(index, 3), thread: result.text(index, 1),
                    namespace: result.text(index, 2))
            }
            var report = IdleSweepReport()
            var chosen: [(key: Int64, cursor: ThreadCursor)] = []
            switch batch.action {
            case .delete:
                let result = try connection.query(PostgresSchema.sweepDelete, parameters)
                for index in 0..<result.rowCount {
                    report.checkpointsRemoved += Int(try result.int64(index, 4))
                    report.bytesRemoved += Int(try result.int64(index, 5))
                    report.deletedCount += 1
                    chosen.append((try result.int64(index, 0), try cursor(result, index)))
                }
            case .pruneToHead:
                try connection.transaction {
                    let result = try connection.query(PostgresSchema.lockIdleForPruning, parameters)
                    for index in 0..<result.rowCount {
                        let key = try result.int64(index, 0)
                        let before = try connection.query(PostgresSchema.keyBytes, [.int8(key)])
                        report.checkpointsRemoved += try Self.prune(
                            key: key, thread: try ThreadID(result.text(index, 1)), namespace: result.text(index, 2),
                            by: .keepingLatest(1), on: connection)
                        let after = try connection.query(PostgresSchema.keyBytes, [.int8(key)])
                        report.bytesRemoved += Int(try before.int64(0, 0) - after.int64(0, 0))
                        report.prunedCount += 1
                        chosen.append((key, try cursor(result, index)))
                    }
                }
            }
            return (report, chosen)
        }
        var report = counted
        contentCache.remove(scopes: Set(chosen.map(\.key)))
        for (_, cursor) in chosen {
            let thread = try ThreadID(cursor.thread)
            heads.remove(thread)
            report.threads.insert(thread)
        }
        report.next = chosen.count == batch.limit ? chosen.last?.cursor : nil
        return report
    }

    /// One round trip on a pooled connection, with the newest migration the schema records;
    /// see ``Checkpointer/health()``. While the server is down it waits for a connection
    /// attempt (`connect_timeout`) at most; while every connection is busy, it waits 1 second
    /// for one at most, then reports `degraded` (the pool is saturated: calls wait).
    ///
    /// With ``Configuration/replicas``, the replicas are probed too, as a part of the report:
    /// while none answers, the report is `degraded` (their calls go to the primary).
    public func health() async -> HealthReport {
        let probe: @Sendable (PostgresConnection) throws -> String? = { connection in
            try connection.textQuery("SELECT max(name) FROM checkpoint_migrations", []).first?.first ?? nil
        }
        var report = await HealthReport.probing("postgres") {
            try checkOpen()
            return try await pool.run(waitingAtMost: HealthReport.poolWait, probe)
        }
        if let replicaPool {
            let replica = await HealthReport.probing("postgres-replicas") {
                try checkOpen()
                return try await replicaPool.run(waitingAtMost: HealthReport.poolWait, probe)
            }
            if replica.status != .healthy, report.status == .healthy { report.status = .degraded }
            report.parts.append(replica)
        }
        return report
    }

    /// Drains, then closes every connection: calls that start from now on fail with
    /// ``CheckpointError/Code/closed``; the calls under way finish first, those waiting for a
    /// connection too.
    public func close() async throws {
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await pool.close()
        await replicaPool?.close()
        logger.debug("closed Postgres checkpointer", metadata: ["server": "\(configuration)"])
    }

    private func checkOpen() throws(CheckpointError) {
        if isClosed.load(ordering: .acquiring) {
            throw CheckpointError(.closed, "the Postgres checkpointer was closed")
        }
    }
}

extension PostgresCheckpointer {
    /// Opens a checkpointer for a `postgres://` URL; see ``Configuration/init(url:)``.
    public convenience init(url: String, logger: Logger = Logger(label: "checkpointing.postgres")) async throws {
        try await self.init(configuration: Configuration(url: CheckpointerURL(url)), logger: logger)
    }

    /// Runs SQL on one of the pool's connections, for tests and diagnostics (query plans,
    /// raw table bytes). Values are bound parameters (text); each row comes back as text.
    ///
    /// Not for application data: the schema is the checkpointer's own.
    public func diagnosticQuery(_ sql: String, _ parameters: [String] = []) async throws -> [[String?]] {
        try checkOpen()
        return try await pool.run { connection in
            let result = try connection.textQuery(sql, parameters)
            return result
        }
    }
}

struct PostgresBackend: CheckpointerBackend {
    var schemes: Set<String> { ["postgres", "postgresql"] }

    func makeCheckpointer(url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer {
        try await PostgresCheckpointer(configuration: PostgresCheckpointer.Configuration(url: url), logger: logger)
    }
}

/// The SQL of an inbox query: a range of one of the partial indexes of waiting threads.
struct PostgresInbox {
    let sql: String
    let parameters: [PostgresValue]

    init(_ query: InboxQuery) {
        var conditions = ["t.waiting_pause_id IS NOT NULL"]
        var parameters: [PostgresValue] = []
        func parameter(_ value: PostgresValue) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        if let reason = query.reason { conditions.append("t.waiting_reason = \(parameter(.text(reason)))") }
        if let tenant = query.tenant { conditions.append("t.tenant = \(parameter(.text(tenant)))") }
        if let expiredAsOf = query.expiredAsOf {
            conditions.append("t.waiting_expires_at <= \(parameter(.float8(expiredAsOf.timeIntervalSince1970)))")
        }
        if let after = query.after {
            let createdAt = parameter(.float8(after.createdAt.timeIntervalSince1970))
            let thread = parameter(.text(after.thread))
            let namespace = parameter(.text(after.namespace))
            conditions.append("(t.waiting_created_at, t.thread, t.namespace) > (\(createdAt), \(thread), \(namespace))")
        }
        let limit = parameter(.int8(Int64(query.limit)))
        // The page of waiting threads comes first (a range of a partial index, then the
        // limit), and only then its checkpoints' pauses: a materialized step, so that the
        // planner cannot start from the checkpoints (its estimate of the row-level security
        // filter is far too low and would make it scan them).
        sql = """
            WITH page AS MATERIALIZED (
                SELECT t.key, t.thread, t.namespace, t.head_id, t.waiting_created_at
                FROM checkpoint_threads t
                WHERE \(conditions.joined(separator: " AND "))
                ORDER BY t.waiting_created_at, t.thread, t.namespace
                LIMIT \(limit)
            )
            SELECT page.thread, page.namespace, \(PostgresSchema.rowColumns)
            FROM page JOIN checkpoint_rows c ON c.thread_key = page.key AND c.id = page.head_id
            ORDER BY page.waiting_created_at, page.thread, page.namespace
            """
        self.parameters = parameters
    }
}

/// The SQL of a thread listing: a range of `checkpoint_threads_by_activity` (or `_by_tenant`),
/// in the query's order, then the waiting pauses of the page's threads. Every value is a
/// bound parameter.
struct PostgresThreadListing {
    let sql: String
    let parameters: [PostgresValue]

    init(_ query: ThreadQuery) {
        var conditions = ["t.last_activity IS NOT NULL"]
        var parameters: [PostgresValue] = []
        func parameter(_ value: PostgresValue) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        if let tenant = query.tenant { conditions.append("t.tenant = \(parameter(.text(tenant)))") }
        if let namespace = query.namespace { conditions.append("t.namespace = \(parameter(.text(namespace)))") }
        let bounds = query.activityBounds
        if let before = bounds.before { conditions.append("t.last_activity < \(parameter(.int8(before)))") }
        if let since = bounds.since { conditions.append("t.last_activity >= \(parameter(.int8(since)))") }
        if let paused = query.paused {
            conditions.append(paused ? "t.waiting_pause_id IS NOT NULL" : "t.waiting_pause_id IS NULL")
        }
        let newestFirst = query.order == .newestActivityFirst
        if let after = query.after {
            let activity = parameter(.int8(after.activityMicroseconds))
            let thread = parameter(.text(after.thread))
            let namespace = parameter(.text(after.namespace))
            conditions.append(
                "(t.last_activity, t.thread, t.namespace) \(newestFirst ? "<" : ">") (\(activity), \(thread), \(namespace))")
        }
        // One more than the page, so that a page that ends the listing says so.
        let limit = parameter(.int8(Int64(query.limit) + 1))
        let direction = newestFirst ? "DESC" : "ASC"
        let order = "last_activity \(direction), thread \(direction), namespace \(direction)"
        // The page comes first (a range of an index, then the limit), and only then the pauses
        // of its waiting heads, as in the inbox.
        sql = """
            WITH page AS MATERIALIZED (
                SELECT t.key, t.thread, t.namespace, t.head_id, t.last_activity, t.checkpoint_count,
                       t.waiting_pause_id IS NOT NULL AS waiting
                FROM checkpoint_threads t
                WHERE \(conditions.joined(separator: " AND "))
                ORDER BY t.\(order.replacingOccurrences(of: ", ", with: ", t."))
                LIMIT \(limit)
            )
            SELECT page.thread, page.namespace, page.head_id, page.last_activity, page.checkpoint_count, page.waiting,
                   \(PostgresSchema.rowColumns)
            FROM page LEFT JOIN checkpoint_rows c ON page.waiting AND c.thread_key = page.key AND c.id = page.head_id
            ORDER BY page.\(order.replacingOccurrences(of: ", ", with: ", page."))
            """
        self.parameters = parameters
    }
}

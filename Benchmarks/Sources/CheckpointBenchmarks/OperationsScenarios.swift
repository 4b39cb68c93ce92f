import CSQLiteFloor
import CheckpointPostgres
import CheckpointSQLite
import Checkpointing
import Foundation
import Synchronization

// Operating a large store: a page of the thread listing out of 1,000,000 threads next to the
// same page out of 1,000, and an idle sweep of 100,000 expired threads with the p99 of puts
// running beside it next to puts alone.

/// Times pages of 100 (the newest, the oldest from a cursor in the middle, one tenant's) on a
/// large and a small store, alternating which goes first, and reports them.
func measureListing(_ rows: inout [Row], _ label: String, large: any Checkpointer, small: any Checkpointer, largeCount: Int)
    async throws
{
    var largeNewest = Samples(), smallNewest = Samples()
    var largeCursor = Samples(), smallCursor = Samples()
    var largeTenant = Samples(), smallTenant = Samples()
    let middle = ThreadCursor(activityMicroseconds: 1_700_000_000_000_000 + 500 * 1000, thread: "", namespace: "")
    let newest = ThreadQuery(limit: 100)
    let fromMiddle = ThreadQuery(order: .oldestActivityFirst, after: middle, limit: 100)
    let tenant = ThreadQuery(tenant: "big", limit: 100)  // 200 threads in either store
    for round in 0..<300 {
        if round % 2 == 0 {
            _ = try await time(&largeNewest) { try await large.threads(newest) }
            _ = try await time(&smallNewest) { try await small.threads(newest) }
            _ = try await time(&largeCursor) { try await large.threads(fromMiddle) }
            _ = try await time(&smallCursor) { try await small.threads(fromMiddle) }
            _ = try await time(&largeTenant) { try await large.threads(tenant) }
            _ = try await time(&smallTenant) { try await small.threads(tenant) }
        } else {
            _ = try await time(&smallNewest) { try await small.threads(newest) }
            _ = try await time(&largeNewest) { try await large.threads(newest) }
            _ = try await time(&smallCursor) { try await small.threads(fromMiddle) }
            _ = try await time(&largeCursor) { try await large.threads(fromMiddle) }
            _ = try await time(&smallTenant) { try await small.threads(tenant) }
            _ = try await time(&largeTenant) { try await large.threads(tenant) }
        }
    }
    let count = "\(largeCount / 1000)k"
    report(&rows, "\(label)thread listing: newest 100 of \(count) threads", largeNewest, floor: ("same, of 1k threads", smallNewest))
    report(&rows, "\(label)thread listing: 100 oldest-first from a cursor, \(count)", largeCursor, floor: ("same, of 1k threads", smallCursor))
    report(&rows, "\(label)thread listing: newest 100 of a 200-thread tenant, \(count)", largeTenant, floor: ("same, of 1k threads", smallTenant))
}

/// Bulk-made thread rows for the listing (the listing reads the thread table only): `count`
/// threads over 1,000 tenants (and the first 200 of tenant `big`), activity 1 ms apart.
func bulkThreadsSQL(_ count: Int, sqlite: Bool) -> String {
    if sqlite {
        return """
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < \(count))
            INSERT INTO threads (thread, namespace, tenant, head_id, last_activity, checkpoint_count)
            SELECT (CASE WHEN n <= 200 THEN 'big' ELSE 'bulk-' || (n % 1000) END) || ':t' || n, '',
                   CASE WHEN n <= 200 THEN 'big' ELSE 'bulk-' || (n % 1000) END, randomblob(16),
                   1700000000000000 + n * 1000, 1 FROM g
            """
    }
    return """
        INSERT INTO checkpoint_threads (thread, namespace, tenant, head_id, last_activity, checkpoint_count)
        SELECT (CASE WHEN n <= 200 THEN 'big' ELSE 'bulk-' || (n % 1000) END) || ':t' || n, '',
               CASE WHEN n <= 200 THEN 'big' ELSE 'bulk-' || (n % 1000) END, decode(md5(n::text), 'hex'),
               1700000000000000 + n * 1000, 1 FROM generate_series(1, \(count)) n
        """
}

func sqliteExecute(_ path: String, _ sql: String) {
    var db: OpaquePointer?
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK,
        sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK
    else { fatalError("bulk SQL failed: \(String(cString: sqlite3_errmsg(db)))") }
    sqlite3_close_v2(db)
}

/// The idle sweep of `expired` threads, timed, with puts to other threads beside it; the
/// puts' p99 next to the same puts alone.
func measureSweep(_ rows: inout [Row], _ label: String, _ checkpointer: any Checkpointer, expired: Int) async throws {
    let base = Date(timeIntervalSince1970: 1_000_000_000)
    let active = try (0..<20).map { try ThreadID("active:\($0)") }
    var heads: [ThreadID: CheckpointID] = [:]
    func put(_ thread: ThreadID) async throws {
        let write = CheckpointWrite(
            thread: thread, parentID: heads[thread], step: 0,
            channels: ["turn": .value(Data("\(heads.count)".utf8)), "messages": .append([Data("{\"role\":\"user\"}".utf8)])])
        try await checkpointer.put(write)
        heads[thread] = write.id
    }
    for thread in active {
        let write = CheckpointWrite(thread: thread, parentID: nil, step: 0, channels: ["messages": .list([])])
        try await checkpointer.put(write)
        heads[thread] = write.id
    }

    let policy = IdleThreadPolicy(idleFor: .seconds(86_400))
    let start = ContinuousClock.now
    let batchSize = Int(option("--sweep-batch") ?? "") ?? 100
    let finished = SweepFlag()
    let sweeping = Task {
        defer { finished.flag.store(true, ordering: .releasing) }
        return try await checkpointer.sweep(policy, now: base + 10 * 86_400, batchSize: batchSize)
    }
    var beside = Samples()
    var round = 0
    // Puts until the sweep is done.
    while !finished.flag.load(ordering: .acquiring) {
        try await time(&beside) { try await put(active[round % active.count]) }
        round += 1
    }
    let report = try await sweeping.value
    let elapsed = ContinuousClock.now - start
    // As many puts alone right after: the same WAL growth and checkpoints as beside the
    // sweep, but no sweep (a short run of puts alone would miss the checkpoints a long one
    // meets, and compare a p99 without them with one with them).
    var alone = Samples()
    for round in 0..<max(2000, beside.nanoseconds.count) { try await time(&alone) { try await put(active[round % active.count]) } }
    var sweepSamples = Samples()
    sweepSamples.add(elapsed)
    guard report.deletedCount == expired else {
        fatalError("the sweep deleted \(report.deletedCount) of \(expired) expired threads")
    }
    reportSweep(&rows, "\(label)idle sweep of \(expired / 1000)k expired threads (whole sweep, once)", sweepSamples)
    reportP99(&rows, "\(label)puts beside the sweep (\(beside.nanoseconds.count))", beside, alone: alone)
    if option("--sweep-detail") != nil {
        print("\(label)puts beside the sweep: p90 \(beside.percentile(90) / 1000) p95 \(beside.percentile(95) / 1000) p98 \(beside.percentile(98) / 1000) p99 \(beside.p99 / 1000) p99.9 \(beside.percentile(99.9) / 1000) µs")
    }
}

/// Set when the sweep has finished.
final class SweepFlag: Sendable {
    let flag = Atomic<Bool>(false)
}

func reportSweep(_ rows: inout [Row], _ scenario: String, _ samples: Samples) {
    report(&rows, scenario, samples)
}

/// A row whose ratio columns compare p99 with p99 (puts beside the sweep against puts alone).
func reportP99(_ rows: inout [Row], _ scenario: String, _ samples: Samples, alone: Samples) {
    report(&rows, scenario, samples, floor: ("the same puts alone", alone))
}

/// SQLite: the listing at 1,000,000 and 1,000 threads, and the sweep of 100,000.
func sqliteOperations(_ rows: inout [Row], directory: URL) async throws {
    let largeCount = Int(option("--listing-threads") ?? "") ?? 1_000_000
    let largePath = directory.appendingPathComponent("listing-large.db").path
    let smallPath = directory.appendingPathComponent("listing-small.db").path
    for (path, count) in [(largePath, largeCount), (smallPath, 1000)] {
        try await SQLiteCheckpointer(configuration: .init(path: path)).close()  // the schema
        sqliteExecute(path, bulkThreadsSQL(count, sqlite: true))
    }
    let large = try await SQLiteCheckpointer(configuration: .init(path: largePath))
    let small = try await SQLiteCheckpointer(configuration: .init(path: smallPath))
    try await measureListing(&rows, "", large: large, small: small, largeCount: largeCount)
    try await large.close()
    try await small.close()

    let expired = Int(option("--sweep-threads") ?? "") ?? 100_000
    let sweep = try await SQLiteCheckpointer(configuration: .init(path: directory.appendingPathComponent("sweep.db").path))
    try await withTaskExecutorPreference(sweep.writerExecutor) {
        for index in 0..<expired { try await sweep.put(try expiredWrite(index)) }
    }
    try await measureSweep(&rows, "", sweep, expired: expired)
    try await sweep.close()
}

/// A thread created long ago and not touched since.
func expiredWrite(_ index: Int) throws -> CheckpointWrite {
    CheckpointWrite(
        thread: try ThreadID("expired-\(index % 100):\(index)"), parentID: nil, step: 0,
        createdAt: Date(timeIntervalSince1970: 1_000_000_000 + Double(index % 1000)),
        channels: ["turn": .value(Data("1".utf8)), "messages": .list([Data("{\"role\":\"user\",\"text\":\"hello\"}".utf8)])])
}

/// Postgres: the same, each store in a schema of its own.
func postgresOperations(_ rows: inout [Row], url: String, schema: String) async throws {
    let largeCount = Int(option("--listing-threads") ?? "") ?? 1_000_000
    let large = try await PostgresCheckpointer(url: url + "?schema=\(schema)_list_large&pool_max=4")
    let small = try await PostgresCheckpointer(url: url + "?schema=\(schema)_list_small&pool_max=4")
    _ = try await large.diagnosticQuery(bulkThreadsSQL(largeCount, sqlite: false))
    _ = try await small.diagnosticQuery(bulkThreadsSQL(1000, sqlite: false))
    for store in [large, small] { _ = try await store.diagnosticQuery("ANALYZE checkpoint_threads") }
    try await measureListing(&rows, "postgres: ", large: large, small: small, largeCount: largeCount)
    try await large.close()
    try await small.close()

    let expired = Int(option("--sweep-threads") ?? "") ?? 100_000
    let sweep = try await PostgresCheckpointer(url: url + "?schema=\(schema)_sweep&pool_max=8")
    try await withThrowingTaskGroup(of: Void.self) { group in
        for writer in 0..<8 {
            group.addTask {
                try await withTaskExecutorPreference(sweep.connectionExecutor(writer)) {
                    for index in stride(from: writer, to: expired, by: 8) { try await sweep.put(try expiredWrite(index)) }
                }
            }
        }
        try await group.waitForAll()
    }
    _ = try await sweep.diagnosticQuery("ANALYZE checkpoint_threads, checkpoint_rows")
    try await measureSweep(&rows, "postgres: ", sweep, expired: expired)
    try await sweep.close()
}

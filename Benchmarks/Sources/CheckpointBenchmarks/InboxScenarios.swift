import CheckpointPostgres
import CheckpointSQLite
import Checkpointing
import Foundation

/// The write of inbox thread `index`: one in `pausedEvery` threads pauses.
func inboxWrite(_ index: Int, pausedEvery: Int) throws -> CheckpointWrite {
    let pause = index % pausedEvery == 0
        ? try Pause(reason: index % 3 == 0 ? "refund" : "email", prompt: Data("{\"amount\":42}".utf8))
        : nil
    return CheckpointWrite(
        thread: try ThreadID("tenant-\(index % 50):thread-\(index)"), parentID: nil, step: 0,
        channels: ["turn": .value(Data("1".utf8)), "messages": .list([Data("{}".utf8)])], pause: pause)
}

/// Times inbox pages (from the start and from the middle, without and with a reason filter)
/// on a large and a small inbox, alternating which goes first, and reports them.
func measureInbox(_ rows: inout [Row], _ label: String, large: any Checkpointer, small: any Checkpointer) async throws {
    var largePages = Samples()
    var smallPages = Samples()
    var largeReason = Samples()
    var smallReason = Samples()
    for round in 0..<300 {
        let cursor = round % 2 == 0 ? nil : InboxCursor(createdAt: .distantPast, thread: "tenant-25", namespace: "")
        let query = InboxQuery(after: cursor, limit: 100)
        let filtered = InboxQuery(reason: "refund", after: cursor, limit: 100)
        if round % 4 < 2 {
            _ = try await time(&largePages) { try await large.pausedThreads(query) }
            _ = try await time(&smallPages) { try await small.pausedThreads(query) }
            _ = try await time(&largeReason) { try await large.pausedThreads(filtered) }
            _ = try await time(&smallReason) { try await small.pausedThreads(filtered) }
        } else {
            _ = try await time(&smallPages) { try await small.pausedThreads(query) }
            _ = try await time(&largePages) { try await large.pausedThreads(query) }
            _ = try await time(&smallReason) { try await small.pausedThreads(filtered) }
            _ = try await time(&largeReason) { try await large.pausedThreads(filtered) }
        }
    }
    let count = try await allPages(large)
    report(&rows, "\(label)inbox page of 100, 100k threads (\(count) paused)", largePages, floor: ("same query, 1k paused threads only", smallPages))
    report(&rows, "\(label)inbox page of 100 by reason, 100k threads", largeReason, floor: ("same query, 1k paused threads only", smallReason))
}

/// Counts every waiting thread by paging through the inbox.
func allPages(_ checkpointer: any Checkpointer) async throws -> Int {
    var query = InboxQuery(limit: 250)
    var count = 0
    while true {
        let page = try await checkpointer.pausedThreads(query)
        count += page.items.count
        guard let next = page.next else { return count }
        query.after = next
    }
}

/// The inbox: 100,000 threads of which 1,000 are paused, next to 1,000 paused threads alone.
func sqliteInbox(_ rows: inout [Row], directory: URL) async throws {
    func populate(_ checkpointer: SQLiteCheckpointer, threads: Int, pausedEvery: Int) async throws {
        try await withTaskExecutorPreference(checkpointer.writerExecutor) {
            for index in 0..<threads { try await checkpointer.put(try inboxWrite(index, pausedEvery: pausedEvery)) }
        }
    }
    let large = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("inbox-large.db").path))
    let small = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("inbox-small.db").path))
    try await populate(large, threads: 100_000, pausedEvery: 100)
    try await populate(small, threads: 1_000, pausedEvery: 1)
    try await measureInbox(&rows, "", large: large, small: small)
    try await large.close()
    try await small.close()
}

/// The inbox on Postgres: 100,000 threads of which 1,000 are paused, next to 1,000
/// paused threads alone, each in a schema of its own.
func postgresInbox(_ rows: inout [Row], url: String, schema: String) async throws {
    func populate(_ checkpointer: PostgresCheckpointer, threads: Int, pausedEvery: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    try await withTaskExecutorPreference(checkpointer.connectionExecutor(writer)) {
                        for index in stride(from: writer, to: threads, by: 8) {
                            try await checkpointer.put(try inboxWrite(index, pausedEvery: pausedEvery))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        _ = try await checkpointer.diagnosticQuery("ANALYZE checkpoint_threads, checkpoint_rows")
    }
    let large = try await PostgresCheckpointer(url: url + "?schema=\(schema)_inbox_large&pool_max=8")
    let small = try await PostgresCheckpointer(url: url + "?schema=\(schema)_inbox_small&pool_max=8")
    try await populate(large, threads: 100_000, pausedEvery: 100)
    try await populate(small, threads: 1_000, pausedEvery: 1)
    try await measureInbox(&rows, "postgres: ", large: large, small: small)
    try await large.close()
    try await small.close()
}

// Checkpoint write and read latency of every backend, next to the raw sqlite3 floor doing the
// same write in the same run, so that the library's overhead is a ratio.
//
//   swift run -c release checkpoint-benchmarks [--threads N] [--json results.json]
//       [--only sqlite|postgres|redis] [--postgres URL] [--redis URL] [--pg-threads N] [--pg-puts N]
//       [--pg-inbox no] [--redis-threads N] [--listing-threads N] [--sweep-threads N]
//       [--pgbouncer URL] [--pooler-rounds N] [--pooler-agents N] [--pooler-turns N]
//
// `--only operations` runs the thread listing (a page out of 1,000,000 threads next to a page
// out of 1,000) and the idle sweep of 100,000 expired threads with puts beside it, on SQLite
// and (with a server) Postgres.
//
// `--only pooler` runs the transaction-pooler rows: unnamed statements against prepared ones,
// PgBouncer in transaction mode against direct, and 64 agents on a pool of 8 through it.
//
// The Postgres, PgBouncer and Redis scenarios run when server URLs are given (--postgres,
// --pgbouncer, --redis, or CHECKPOINT_BENCH_POSTGRES_URL, CHECKPOINT_BENCH_PGBOUNCER_URL,
// CHECKPOINT_BENCH_REDIS_URL); scripts/benchmark.sh starts throwaway servers and passes them.
import Foundation

func option(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return CommandLine.arguments[index + 1]
}

/// Whether `--only` (when given) names this group of scenarios.
func runs(_ group: String) -> Bool {
    guard let only = option("--only") else { return true }
    return only == group
}

/// Runs every scenario off the main actor, as a server's tasks would run: awaiting from the
/// main actor would add a main-queue hop to every call.
nonisolated func runBenchmarks(threadCount: Int) async throws -> (rows: [Row], storage: [String: Int]) {
    var rows: [Row] = []
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    print("checkpoint-benchmarks: \(threadCount) conversations per scenario, \(ProcessInfo.processInfo.activeProcessorCount) cores")

    if runs("sqlite") { try await sqliteNormal(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteWriterExecutor(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try sqliteFloorAt200(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") || runs("sealing") { try await sealingCost(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteFull(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await inMemory(&rows, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteInbox(&rows, directory: directory) }
    if runs("sqlite") || runs("operations") { try await sqliteOperations(&rows, directory: directory) }
    if runs("postgres") || runs("operations"),
        let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"]
    {
        try await postgresOperations(&rows, url: url, schema: "ops_" + UUID().uuidString.lowercased().prefix(8))
    }
    if runs("postgres"), let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"] {
        try await postgresScenarios(&rows, url: url)
    }
    if runs("postgres") || runs("pooler"),
        let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"],
        let bouncerURL = option("--pgbouncer") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_PGBOUNCER_URL"]
    {
        try await postgresPoolerScenarios(&rows, url: url, bouncerURL: bouncerURL)
    }
    if runs("redis"), let redisURL = option("--redis") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_REDIS_URL"],
        let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"]
    {
        try await redisScenarios(&rows, redisURL: redisURL, url: url)
    }
    var storage: [String: Int] = [:]
    if runs("sqlite") { storage = try await storageScenarios(&rows, directory: directory, threadCount: threadCount) }
    return (rows, storage)
}

if let mode = option("--profile") {
    try await runProfile(mode)
    exit(0)
}

let threadCount = Int(option("--threads") ?? "") ?? 150
let (rows, storage) = try await runBenchmarks(threadCount: threadCount)
printTable(rows, storage)
if let path = option("--json") {
    try writeJSON(rows, storage, to: path)
}

// The processes scripts/fault-tests.sh kills, restarts servers under and damages files for.
// Each mode prints what it did to stdout, one line per event, so that the script can check it
// even after a SIGKILL; errors go to stderr.
//
//   checkpoint-fault-writer write URL THREADS            # saves until killed; "ack THREAD TURN" per save
//   checkpoint-fault-writer write-retrying URL THREADS   # the same, retrying errors whose isRetryable is
//                                                         # true; "ack THREAD TURN ID" per save, "retry CODE"
//                                                         # per retried error, "landed THREAD TURN" for a
//                                                         # save that failed but had committed; exits 1 on
//                                                         # an error that is not retryable
//   checkpoint-fault-writer check URL ACK-LOG [--all]    # exit 0 when nothing was lost or damaged;
//                                                         # --all reads every checkpoint, not only heads
//   checkpoint-fault-writer redis-cache SQLITE-PATH REDIS-URL
//                                                         # a writer task and two reader tasks on one
//                                                         # RedisCachedCheckpointer over SQLite, until
//                                                         # SIGTERM; counts stale reads (see RedisCacheMode)
//   checkpoint-fault-writer damage DIR FILES SEED [FIRST] # random byte damage of copies of a reference
//                                                         # SQLite file, every read classified (see DamageMode)
//
// URLs are sqlite: or postgres: (see CheckpointerConfiguration).

import CheckpointPostgres
import CheckpointSQLite
import Checkpointing
import Foundation
import Logging

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("checkpoint-fault-writer: \(message)\n".utf8))
    exit(1)
}

/// One line to stdout, written at once (not buffered: the process may be killed next).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// One line to stderr.
func warn(_ line: String) {
    FileHandle.standardError.write(Data("checkpoint-fault-writer: \(line)\n".utf8))
}

func openCheckpointer(_ url: String) async throws -> any Checkpointer {
    try await CheckpointerConfiguration(url: url).makeCheckpointer(
        backends: [SQLiteCheckpointer.backend, PostgresCheckpointer.backend])
}

// The library's logs go to stderr: stdout is the record the script reads.
LoggingSystem.bootstrap(StreamLogHandler.standardError)

let arguments = CommandLine.arguments
let usage = "usage: write URL THREADS | write-retrying URL THREADS | check URL ACK-LOG [--all] | redis-cache SQLITE-PATH REDIS-URL | damage DIR FILES SEED [FIRST]"
guard arguments.count >= 4 else { fail(usage) }

do {
    switch arguments[1] {
    case "write":
        try await write(url: arguments[2], threads: Int(arguments[3]) ?? 2)
    case "write-retrying":
        try await writeRetrying(url: arguments[2], threads: Int(arguments[3]) ?? 2)
    case "check":
        try await check(url: arguments[2], log: arguments[3], all: arguments.contains("--all"))
    case "redis-cache":
        try await runRedisCache(sqlitePath: arguments[2], redisURL: arguments[3])
    case "damage":
        guard arguments.count >= 5, let files = Int(arguments[3]), let seed = UInt64(arguments[4]) else { fail(usage) }
        let first = arguments.count >= 6 ? Int(arguments[5]) ?? 0 : 0
        try await runDamage(directory: arguments[2], files: files, seed: seed, first: first)
    default:
        fail("unknown command \(arguments[1]); \(usage)")
    }
} catch {
    fail("\(error)")
}

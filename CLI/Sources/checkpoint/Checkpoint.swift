import ArgumentParser
import CheckpointEncryption
import CheckpointPostgres
import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import Foundation
import Logging

/// `checkpoint`: look inside a store and operate it from a shell.
///
/// Exit codes (also in `checkpoint --help`): 0 success; 64 a usage error (also a malformed
/// option value, such as a duration); 65 bad input (a malformed URL or file, a bad thread id,
/// an answer that is not JSON or that the pause can no longer take); 66 not found; 69 the
/// store cannot be reached (retryable); 75 a conflict or a busy store (retryable); 70
/// anything else (a damaged row, a backend failure).
@main
struct CheckpointCommand: AsyncParsableCommand {
    /// The library logs to standard error; the tool shows its warnings and errors only, or
    /// everything with `CHECKPOINT_LOG_LEVEL=debug` (trace, debug, info, notice, warning, error).
    static func main() async {
        let level = ProcessInfo.processInfo.environment["CHECKPOINT_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Look inside a checkpoint store and operate it.",
        discussion: """
            The store is named by --url or $CHECKPOINTER_URL (sqlite:///path/agent.db, \
            postgres://user:password@host/db, memory:), with $CHECKPOINTER_CACHE_URL or --cache for a \
            Redis cache in front (writes then go through it, so it never serves what was changed here) \
            and $CHECKPOINTER_KEYS or --keys (env:NAME, file:/path) to open sealed state.

            Exit codes: 0 success; 64 usage error (also a malformed option value); 65 bad input (also \
            an answer the pause can no longer take); 66 not found; 69 the store cannot be reached \
            (retry); 75 conflict or busy store (retry); 70 any other failure.
            """,
        subcommands: [
            Threads.self, History.self, Show.self, Inbox.self, Answer.self, Prune.self, DeleteThread.self,
            DeleteTenant.self, Sweep.self, Export.self, Import.self, Copy.self, Migrate.self, Verify.self, Stats.self, Health.self,
        ])
}

// MARK: - Shared options

struct StoreOptions: ParsableArguments {
    @Option(help: "The store's URL; default: $CHECKPOINTER_URL.")
    var url: String?

    @Option(help: "A Redis cache in front of the store (redis://...); default: $CHECKPOINTER_CACHE_URL.")
    var cache: String?

    @Option(help: "Keys that open sealed state: env:NAME or file:/path; default: $CHECKPOINTER_KEYS.")
    var keys: String?

    @Flag(help: "Print JSON instead of a table or text.")
    var json = false

    /// Whether the command may create the store (an import, a copy's target, a migration);
    /// any other command refuses a SQLite path where no file is, rather than make an empty one.
    var creates = false

    /// The configured store, and the sealing its keys give.
    func open() async throws -> (any Checkpointer, Sealing?) {
        let environment = ProcessInfo.processInfo.environment
        guard let url = url ?? environment[CheckpointerConfiguration.defaultEnvironmentVariable], !url.isEmpty else {
            throw ValidationError("no store: pass --url or set \(CheckpointerConfiguration.defaultEnvironmentVariable)")
        }
        let keys = keys ?? environment[CheckpointerConfiguration.keysEnvironmentVariable]
        let cache = cache ?? environment[CheckpointerConfiguration.cacheEnvironmentVariable]
        let configuration = try CheckpointerConfiguration(
            url: url, keySource: try keys.flatMap { $0.isEmpty ? nil : try KeySource($0) },
            cacheURL: cache.flatMap { $0.isEmpty ? nil : $0 })
        if !creates, configuration.url.scheme == "sqlite", let path = try? SQLiteCheckpointer.Configuration(url: configuration.url).path,
            !FileManager.default.fileExists(atPath: path)
        {
            throw CheckpointError(
                .notFound, "no SQLite database at \(path); `checkpoint migrate` or `import` creates one")
        }
        let sealing = try configuration.makeSealing()
        let checkpointer = try await configuration.makeCheckpointer(
            backends: [SQLiteCheckpointer.backend, PostgresCheckpointer.backend], caches: [RedisCachedCheckpointer.cacheLayer])
        return (checkpointer, sealing)
    }
}

struct NamespaceOption: ParsableArguments {
    @Option(help: "The namespace (default: the default namespace, \"\").")
    var namespace = ""
}

/// Runs `body` with the store open, closes it, and turns a ``CheckpointError`` into a message
/// and an exit code.
func withStore<T>(
    _ options: StoreOptions, _ body: (any Checkpointer, Sealing?) async throws -> T
) async throws -> T {
    let (checkpointer, sealing): (any Checkpointer, Sealing?)
    do {
        (checkpointer, sealing) = try await options.open()
    } catch let error as CheckpointError {
        throw Failure(error)
    }
    do {
        let result = try await body(checkpointer, sealing)
        try? await checkpointer.close()
        return result
    } catch let error as CheckpointError {
        try? await checkpointer.close()
        throw Failure(error)
    } catch {
        try? await checkpointer.close()
        throw error
    }
}

/// A ``CheckpointError`` as the tool reports it: its message on standard error, its exit code.
struct Failure: Error, CustomStringConvertible {
    let error: CheckpointError
    init(_ error: CheckpointError) { self.error = error }

    var description: String { "\(error.code): \(error.message)\(error.isRetryable ? " (retryable)" : "")" }

    var exitCode: ExitCode { ExitCode(Failure.exitCode(for: error)) }

    static func exitCode(for error: CheckpointError) -> Int32 {
        switch error.code {
        case .invalidArgument, .invalidThreadID, .invalidConfiguration, .decodingFailed, .decryptionFailed, .encodingFailed: 65
        // Retrying cannot make these succeed: the pause has its answer, expired, or the agent went on.
        case .alreadyResumed, .stalePause, .pauseExpired: 65
        case .notFound: 66
        case .connectionFailed: 69
        case .conflict, .busy: 75
        default: error.isRetryable ? 75 : 70
        }
    }
}

extension AsyncParsableCommand {
    /// Runs a command's body, leaving with the exit code of a store failure.
    func reporting(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as Failure {
            FileHandle.standardError.write(Data("checkpoint: \(failure)\n".utf8))
            throw failure.exitCode
        }
    }
}

// MARK: - Output

enum Output {
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        write(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// A table with a header row, columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        for row in [header] + rows {
            write(
                row.enumerated().map { column, cell in
                    column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                }.joined(separator: "  "))
        }
    }

    /// A time as ISO 8601 with microseconds, in UTC.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// A progress line on standard error, rewritten in place, only when it is a terminal.
    static func progress(_ text: String) {
        guard isatty(2) != 0 else { return }
        FileHandle.standardError.write(Data("\r\(text)\u{1B}[K".utf8))
    }

    static func endProgress() {
        guard isatty(2) != 0 else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// Reads a duration: `30d`, `12h`, `15m`, `90s`.
func parseDuration(_ text: String) throws -> Duration {
    let units: [Character: Double] = ["d": 86_400, "h": 3600, "m": 60, "s": 1]
    guard let unit = text.last, let seconds = units[unit], let count = Double(text.dropLast()), count >= 0, count.isFinite else {
        throw ValidationError("'\(text)' is not a duration such as 30d, 12h, 15m or 90s")
    }
    return .milliseconds(Int64((count * seconds * 1000).rounded()))
}

/// "1 thread", "2 threads".
func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

/// Reads a time: an ISO 8601 date (`2026-11-01T00:00:00Z`) or an age before now (`30d`, `12h`,
/// `15m`, `90s`).
func parseTime(_ text: String, now: Date = Date()) throws -> Date {
    let units: [Character: Double] = ["d": 86_400, "h": 3600, "m": 60, "s": 1]
    if let unit = text.last, let seconds = units[unit], let count = Double(text.dropLast()), count >= 0 {
        return now.addingTimeInterval(-count * seconds)
    }
    let formatter = ISO8601DateFormatter()
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    throw ValidationError("'\(text)' is neither an ISO 8601 time nor an age such as 30d, 12h, 15m or 90s")
}

func threadID(_ text: String) throws -> ThreadID {
    do {
        return try ThreadID(text)
    } catch {
        throw Failure(error)
    }
}

func checkpointID(_ text: String) throws -> CheckpointID {
    do {
        return try CheckpointID(text)
    } catch {
        throw Failure(CheckpointError(.invalidArgument, "'\(text)' is not a checkpoint id"))
    }
}

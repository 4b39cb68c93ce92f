import Checkpointing
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the example agent, built beside the running test bundle, as a separate OS process
/// on the store `url` names, and returns what it printed.
///
/// - Throws: when the binary is not built, or the process exits with a failure.
public func runExampleAgent(_ arguments: [String], url: String) async throws -> String {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let executable = directory.appendingPathComponent("example-agent")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw CheckpointError(.notFound, "example-agent is not built at \(executable.path); run swift build first")
    }
    let result = try await ChildProcess.run(executable.path, arguments, environment: ["CHECKPOINTER_URL": url])
    guard result.status == 0 else {
        throw CheckpointError(
            .backendFailure, "example-agent exited with \(result.status): \(result.output)\(result.errors.suffix(2000))")
    }
    return result.output
}

/// Runs a command (through `env`, with /usr/sbin on the PATH) and returns what it printed;
/// fails with its output when it fails. For tests that start and stop servers.
@discardableResult
public func runCommand(_ arguments: [String]) throws -> String {
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = (environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    let result = try ChildProcess.runBlocking("/usr/bin/env", arguments, environment: environment, mergeErrors: true)
    guard result.status == 0 else {
        throw CheckpointError(.backendFailure, "\(arguments.joined(separator: " ")) failed: \(result.output)")
    }
    return result.output
}

/// Child processes started with `posix_spawn`, their output in files (never pipes: a server a
/// script starts inherits the descriptor and keeps it open). Not Foundation's `Process`, whose
/// `run()` on Linux crashes now and then when processes start at once (an over-read in
/// `findMaximumOpenFromProcSelfFD`, swift-corelibs-foundation #5472).
enum ChildProcess {
    struct Outcome: Sendable {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs the process to its end on a thread of its own, so no Swift concurrency thread waits.
    static func run(_ path: String, _ arguments: [String], environment: [String: String]) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try runBlocking(path, arguments, environment: environment) })
            }
            thread.start()
        }
    }

    static func runBlocking(
        _ path: String, _ arguments: [String], environment: [String: String], mergeErrors: Bool = false
    ) throws -> Outcome {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).out")
        let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).err")
        defer {
            try? FileManager.default.removeItem(at: outputPath)
            try? FileManager.default.removeItem(at: errorPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let flags = O_WRONLY | O_CREAT | O_TRUNC
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath.path, flags, 0o600)
        if mergeErrors {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath.path, flags, 0o600)
        }
        let argv = ([path] + arguments).map { strdup($0) }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv + [nil], envp + [nil])
        guard spawned == 0 else {
            throw CheckpointError(.backendFailure, "could not start \(path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw CheckpointError(.backendFailure, "waitpid failed for \(path)") }
        }
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let output = (try? String(contentsOf: outputPath, encoding: .utf8)) ?? ""
        let errors = mergeErrors ? "" : ((try? String(contentsOf: errorPath, encoding: .utf8)) ?? "")
        return Outcome(status: exitStatus, output: output, errors: errors)
    }
}

import Checkpointing
import Foundation

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
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ["CHECKPOINTER_URL": url]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    async let errorData = Task.detached { errors.fileHandleForReading.readDataToEndOfFile() }.value
    let data = await Task.detached { output.fileHandleForReading.readDataToEndOfFile() }.value
    let errorText = String(decoding: await errorData, as: UTF8.self)
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw CheckpointError(
            .backendFailure, "example-agent exited with \(process.terminationStatus): \(text)\(errorText.suffix(2000))")
    }
    return text
}

/// Runs a command (through `env`, with /usr/sbin on the PATH) and returns what it printed;
/// fails with its output when it fails. For tests that start and stop servers.
@discardableResult
public func runCommand(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = (environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    process.environment = environment
    // A file, not a pipe: the server the script starts would inherit the pipe's descriptor
    // and keep it open, and reading to its end would never finish.
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("shell-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: outputPath.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outputPath) }
    let output = try FileHandle(forWritingTo: outputPath)
    process.standardOutput = output
    process.standardError = output
    try process.run()
    process.waitUntilExit()
    try output.close()
    let text = (try? String(contentsOf: outputPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        throw CheckpointError(.backendFailure, "\(arguments.joined(separator: " ")) failed: \(text)")
    }
    return text
}


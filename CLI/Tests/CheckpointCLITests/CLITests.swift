import Checkpointing
import CheckpointSQLite
import Foundation
import Testing

/// Runs the built `checkpoint` executable (the package's own build) and captures what it does.
struct CLI {
    struct Run {
        var status: Int32
        var output: String
        var error: String
        /// The standard output as JSON.
        func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(output.utf8)) }
    }

    static let executable: URL = {
        // Tests/CheckpointCLITests/CLITests.swift → the package's .build/debug/checkpoint.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/checkpoint")
    }()

    static func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil) throws -> Run {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CheckpointError(.notFound, "the checkpoint executable is not built at \(executable.path): run swift build first")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged["CHECKPOINTER_URL"] = nil
        merged["CHECKPOINTER_KEYS"] = nil
        merged["CHECKPOINTER_CACHE_URL"] = nil
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let output = Pipe()
        let error = Pipe()
        let standardInput = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = standardInput
        try process.run()
        if let input { standardInput.fileHandleForWriting.write(input) }
        try standardInput.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
            error: String(decoding: err, as: UTF8.self))
    }
}

struct Message: Codable, Sendable, Equatable { var role: String; var text: String }
struct State: Codable, Sendable, Equatable { var messages: [Message] = []; var turn = 0 }

/// A SQLite file with three threads of tenant `acme` (one paused) and one of `globex`.
func makeStore() async throws -> (url: String, folder: URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let path = folder.appendingPathComponent("agent.db").path
    let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: path))
    for name in ["acme:one", "acme:two", "acme:three", "globex:one"] {
        let thread = try checkpointer.thread(ThreadID(name), as: State.self)
        var state = State()
        for turn in 0..<3 {
            state.messages.append(Message(role: "user", text: "\(name) turn \(turn)"))
            state.turn = turn
            try await thread.save(state, metadata: ["turn": .int(turn)])
        }
        if name == "acme:two" { try await thread.pause(state, reason: "refund", prompt: ["amount": 42]) }
    }
    try await checkpointer.close()
    return ("sqlite://\(path)", folder)
}

@Suite("The checkpoint command, run against real stores")
struct CLITests {
    @Test func listsShowsAnswersAndExportsAgainstASQLiteFile() async throws {
        let (url, folder) = try await makeStore()
        defer { try? FileManager.default.removeItem(at: folder) }
        let env = ["CHECKPOINTER_URL": url]

        let threads = try CLI.run(["threads", "--tenant", "acme"], environment: env)
        #expect(threads.status == 0, "\(threads.error)")
        let lines = threads.output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("THREAD") == true)
        #expect(lines.count == 4, "\(threads.output)")
        #expect(threads.output.contains("refund"))

        let listed = try CLI.run(["threads", "--json", "--limit", "2"], environment: env)
        let page = try #require(try listed.json() as? [String: Any])
        #expect((page["threads"] as? [Any])?.count == 2)
        let token = try #require(page["next"] as? String)
        let rest = try CLI.run(["threads", "--json", "--limit", "2", "--after", token], environment: env)
        #expect(((try rest.json() as? [String: Any])?["threads"] as? [Any])?.count == 2)

        let shown = try CLI.run(["show", "acme:one", "--json"], environment: env)
        #expect(shown.status == 0, "\(shown.error)")
        let state = try #require((try shown.json() as? [String: Any])?["state"] as? [String: Any])
        #expect(state["turn"] as? Int == 2)
        #expect((state["messages"] as? [[String: Any]])?.last?["text"] as? String == "acme:one turn 2")

        let history = try CLI.run(["history", "acme:one"], environment: env)
        #expect(history.output.split(separator: "\n").count == 4 && history.output.contains("turn=2"))

        let inbox = try CLI.run(["inbox", "--json"], environment: env)
        let waiting = try #require(try inbox.json() as? [[String: Any]])
        #expect(waiting.count == 1 && waiting.first?["thread"] as? String == "acme:two")
        #expect((waiting.first?["prompt"] as? [String: Any])?["amount"] as? Int == 42, "the inbox shows the question")
        #expect(waiting.first?["status"] as? String == "waiting")
        let table = try CLI.run(["inbox"], environment: env)
        #expect(table.output.contains("{\"amount\":42}") && table.output.contains("waiting"), "\(table.output)")
        let pause = try #require(waiting.first?["pause"] as? String)
        let notJSON = try CLI.run(["answer", "acme:two", pause, "yes"], environment: env)
        #expect(notJSON.status == 65 && notJSON.error.contains("not JSON"))
        let answered = try CLI.run(["answer", "acme:two", pause, "\"yes\""], environment: env)
        #expect(answered.status == 0, "\(answered.error)")
        let shownAnswer = try CLI.run(["show", "acme:two"], environment: env)
        #expect(shownAnswer.output.contains("(answered)") && shownAnswer.output.contains("answer     \"yes\""), "\(shownAnswer.output)")
        let again = try CLI.run(["answer", "acme:two", pause, "\"no\""], environment: env)
        #expect(again.status == 65 && again.error.contains("alreadyResumed"), "\(again.error)")
        #expect(try CLI.run(["inbox", "--json"], environment: env).output.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]")

        // Export, delete, import: the thread comes back the same.
        let exported = try CLI.run(["export", "acme:one"], environment: env)
        #expect(exported.status == 0 && exported.output.hasPrefix("{\"format\":\"swift-checkpointing.thread\""))
        #expect(try CLI.run(["delete-thread", "acme:one"], environment: env).status == 64, "--yes is required")
        #expect(try CLI.run(["delete-thread", "acme:one", "--yes"], environment: env).status == 0)
        #expect(try CLI.run(["show", "acme:one"], environment: env).status == 66)
        let imported = try CLI.run(["import"], environment: env, input: Data(exported.output.utf8))
        #expect(imported.status == 0 && imported.output.contains("imported 3 checkpoints"), "\(imported.output)\(imported.error)")
        #expect(try CLI.run(["export", "acme:one"], environment: env).output == exported.output)
        let cut = try CLI.run(["import"], environment: env, input: Data(exported.output.prefix(200).utf8))
        #expect(cut.status == 65, "\(cut.error)")

        let pruned = try CLI.run(["prune", "acme:three", "--keep", "1"], environment: env)
        #expect(pruned.output.contains("removed 2 checkpoints"), "\(pruned.output)\(pruned.error)")
        let stats = try CLI.run(["stats", "--json"], environment: env)
        let totals = try #require(try stats.json() as? [String: Int])
        #expect(totals == ["threads": 4, "checkpoints": 11, "waiting": 0])
        let verified = try CLI.run(["verify"], environment: env)
        #expect(verified.status == 0 && verified.output.contains("read 11 checkpoints, 0 problems"), "\(verified.output)")
        let nothingIdle = try CLI.run(["sweep", "--idle-for", "1d", "--json"], environment: env)
        #expect(try nothingIdle.json() as? [String: Int] == ["deleted": 0, "pruned": 0, "checkpoints": 0, "bytes": 0])
        #expect(try CLI.run(["sweep", "--idle-for", "soon"], environment: env).status == 64)
        let swept = try CLI.run(["sweep", "--idle-for", "0s", "--prune-to-head", "--json"], environment: env)
        #expect((try swept.json() as? [String: Int])?["pruned"] == 3, "\(swept.output)\(swept.error)")
        let erased = try CLI.run(["delete-tenant", "acme", "--yes"], environment: env)
        #expect(erased.output.contains("deleted 3 threads"), "\(erased.output)\(erased.error)")
        #expect(try CLI.run(["migrate"], environment: env).output.contains("2026-12-03-thread-activity"))
    }

    @Test func badInputGetsItsExitCodeAndAMessage() async throws {
        let (url, folder) = try await makeStore()
        defer { try? FileManager.default.removeItem(at: folder) }
        let typo = folder.appendingPathComponent("typo.db").path
        let missing = try CLI.run(["threads", "--url", "sqlite://\(typo)"])
        #expect(missing.status == 66 && missing.error.contains("no SQLite database"), "\(missing.error)")
        #expect(!FileManager.default.fileExists(atPath: typo), "a mistyped path makes no empty database")
        let noHistory = try CLI.run(["history", "acme:nobody", "--url", url])
        #expect(noHistory.status == 66, "\(noHistory.error)")
        let health = try CLI.run(["health", "--json", "--url", url])
        #expect((try health.json() as? [String: Any])?["status"] as? String == "healthy", "\(health.output)")
        let noStore = try CLI.run(["threads"])
        #expect(noStore.status == 64 && noStore.error.contains("CHECKPOINTER_URL"))
        let badURL = try CLI.run(["threads", "--url", "sqlite://"])
        #expect(badURL.status == 65, "\(badURL.error)")
        let unreachable = try CLI.run(["threads", "--url", "postgres://u:secret@127.0.0.1:1/db"])
        #expect(unreachable.status == 69 && !unreachable.error.contains("secret"), "\(unreachable.error)")
        let badThread = try CLI.run(["show", String(repeating: "x", count: 300), "--url", url])
        #expect(badThread.status == 65)
        let badCursor = try CLI.run(["threads", "--after", "nonsense", "--url", url])
        #expect(badCursor.status == 65)
        let badTime = try CLI.run(["prune", "acme:one", "--older-than", "yesterday", "--url", url])
        #expect(badTime.status == 64, "\(badTime.error)")
    }

    /// The move of a growing agent: `checkpoint copy` from the SQLite file to the test Postgres,
    /// interrupted by nothing here but run twice (the second finds everything there), then the
    /// pause answered on Postgres.
    @Test func copiesASQLiteFileToPostgres() async throws {
        guard let server = ProcessInfo.processInfo.environment["CHECKPOINT_TEST_POSTGRES_URL"] else {
            Issue.record("CHECKPOINT_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
            return
        }
        let (url, folder) = try await makeStore()
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = server + "?schema=cli_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        let copied = try CLI.run(["copy", url, target, "--json"])
        #expect(copied.status == 0, "\(copied.error)")
        #expect(try copied.json() as? [String: Int] == ["threads": 4, "checkpoints": 13, "skipped": 0, "answers": 0])
        let again = try CLI.run(["copy", url, target, "--json"])
        #expect(try again.json() as? [String: Int] == ["threads": 4, "checkpoints": 0, "skipped": 13, "answers": 0])
        let source = try CLI.run(["threads", "--json"], environment: ["CHECKPOINTER_URL": url])
        let copy = try CLI.run(["threads", "--json"], environment: ["CHECKPOINTER_URL": target])
        #expect(copy.status == 0 && copy.output == source.output, "\(copy.output) vs \(source.output)")
        let inbox = try #require(try CLI.run(["inbox", "--json", "--url", target]).json() as? [[String: Any]])
        let pause = try #require(inbox.first?["pause"] as? String)
        #expect(try CLI.run(["answer", "acme:two", pause, "{\"approved\":true}", "--url", target]).status == 0)
        #expect(try CLI.run(["show", "acme:two", "--url", target]).output.contains("(answered)"))
    }
}

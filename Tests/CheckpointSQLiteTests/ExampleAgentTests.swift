import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// Runs the example agent as a separate OS process on an SQLite file.
func runExampleAgent(_ arguments: [String], databasePath: String) async throws -> String {
    try await runExampleAgent(arguments, url: "sqlite://\(databasePath)")
}

struct AgentMessage: Codable, Sendable, Equatable {
    var role: String
    var text: String
}

struct AgentStateMirror: Codable, Sendable {
    var messages: [AgentMessage]
    var turn: Int
    var topic: String
}

@Suite("Example agent, as separate processes")
struct ExampleAgentTests {
    @Test func stoppedAndStartedItContinues() async throws {
        let database = try TemporaryDatabase()
        let first = try await runExampleAgent(["--turns", "2"], databasePath: database.path)
        #expect(first.contains("no checkpoint yet"))
        let second = try await runExampleAgent(["--turns", "2"], databasePath: database.path)
        #expect(second.contains("after turn 2: 4 messages"))
        #expect(second.contains("turn 4"))
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let state = try await checkpointer.thread("demo-user:support", as: AgentStateMirror.self).latest()
        #expect(state?.turn == 4)
        #expect(state?.messages.count == 8)
        try await checkpointer.close()
    }

    /// A typo or a value the agent cannot use stops it with its usage, before it opens the store.
    @Test(arguments: [["--anwser", "yes"], ["--answer", "maybe"], ["--rewind", "two"], ["--turns"]])
    func anArgumentItDoesNotKnowStopsItWithItsUsage(_ arguments: [String]) async throws {
        let database = try TemporaryDatabase()
        let error = await #expect(throws: CheckpointError.self) {
            try await runExampleAgent(arguments, databasePath: database.path)
        }
        #expect(error?.message.contains("exited with 2") == true)
        #expect(error?.message.contains("usage: example-agent") == true)
        #expect(!FileManager.default.fileExists(atPath: database.path), "nothing was opened")
    }

    @Test func twoProcessesRacingOnOneThreadLoseNothing() async throws {
        let database = try TemporaryDatabase()
        let path = database.path
        _ = try await runExampleAgent(["--turns", "1"], databasePath: path)
        async let first = runExampleAgent(["--turns", "40", "--no-approvals"], databasePath: path)
        async let second = runExampleAgent(["--turns", "40", "--no-approvals"], databasePath: path)
        _ = try await (first, second)
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let state = try await checkpointer.thread("demo-user:support", as: AgentStateMirror.self).latest()
        #expect(state?.turn == 81)
        #expect(state?.messages.count == 162)
        let history = try await checkpointer.history(thread: ThreadID("demo-user:support"), limit: 1000)
        #expect(history.count == 81)
        #expect(Set(history.map(\.step)) == Set(0..<81))
        try await checkpointer.close()
    }

    @Test func theAgentPausesAndSixteenAnsweringProcessesRecordOneAnswer() async throws {
        let database = try TemporaryDatabase()
        let path = database.path
        let paused = try await runExampleAgent(["--turns", "6"], databasePath: path)
        #expect(paused.contains("paused for a person"))
        #expect(try await runExampleAgent([], databasePath: path).contains("Still waiting for a person"))
        #expect(try await runExampleAgent(["--inbox"], databasePath: path).contains("[refund-approval]"))

        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<16 {
                group.addTask { try await runExampleAgent(["--answer", "yes", "--reviewer", "r\(index)"], databasePath: path) }
            }
            var outputs: [String] = []
            for try await output in group { outputs.append(output) }
            return outputs
        }
        let answered = outputs.filter { $0.contains("Answered pause") }
        #expect(answered.count == 1, "\(outputs)")
        #expect(outputs.filter { $0.contains("answered already") }.count == 15)
        let answeredLine = try #require(answered.first?.split(separator: "\n").first { $0.contains("Answered pause") })
        let winner = try #require(answeredLine.split(separator: " ").last?.dropLast())  // "... approved by r7."

        #expect(try await runExampleAgent(["--inbox"], databasePath: path).contains("No thread is waiting"))
        let resumed = try await runExampleAgent(["--turns", "1"], databasePath: path)
        #expect(resumed.contains("\(winner) approved the refund"))
        #expect(resumed.contains("turn 6"))
    }
}

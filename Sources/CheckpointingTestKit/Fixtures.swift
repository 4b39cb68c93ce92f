import Checkpointing
import Foundation

/// A chat message, the usual list channel of an agent's state.
public struct TestMessage: Codable, Sendable, Equatable {
    /// Who wrote it.
    public var role: String
    /// Its text.
    public var text: String

    /// Creates a message.
    public init(role: String, text: String) {
        self.role = role
        self.text = text
    }
}

/// A representative agent state: a growing message list, a large document, a small scalar.
public struct TestAgentState: Codable, Sendable, Equatable {
    /// The conversation.
    public var messages: [TestMessage] = []
    /// A large value that rarely changes.
    public var document: String = ""
    /// A value that changes every turn.
    public var turn: Int = 0
    /// An optional value, absent in most states.
    public var note: String?

    /// Creates a state.
    public init(messages: [TestMessage] = [], document: String = "", turn: Int = 0, note: String? = nil) {
        self.messages = messages
        self.document = document
        self.turn = turn
        self.note = note
    }
}

/// A thread id no other check uses: `test-<label>-<UUID>`.
///
/// - Throws: ``ConformanceFailure`` (the check fails, the test run goes on) when `label`
///   makes no valid thread id: more than 213 bytes of UTF-8, or a NUL.
public func uniqueThread(_ label: String, file: StaticString = #filePath, line: UInt = #line) throws -> ThreadID {
    do {
        return try ThreadID("test-\(label)-\(UUID().uuidString)")
    } catch {
        throw ConformanceFailure(message: "the label '\(label.prefix(40))' makes no valid thread id: \(error)", file: file, line: line)
    }
}

/// Text of `count` characters that differs with `seed`.
public func sampleText(_ count: Int, seed: Int) -> String {
    let words = ["agent", "checkpoint", "thread", "state", "resume", "tool", "reply", "human", "plan", "step"]
    var text = ""
    var index = seed
    while text.utf8.count < count {
        text += words[Int(UInt(bitPattern: index) % UInt(words.count))] + " "
        index = index &* 31 &+ 7
    }
    return String(text.prefix(count))
}

/// A message of about 300 characters.
public func sampleMessage(_ index: Int) -> TestMessage {
    TestMessage(role: index % 2 == 0 ? "user" : "assistant", text: "\(index): " + sampleText(300, seed: index))
}

/// Four threads of `tenant` for tests of the thread listing: saves, a pruned history, a
/// waiting pause and an answered one (threads `<tenant>:0` to `<tenant>:3`).
public func makeListingFixture(on checkpointer: any Checkpointer, tenant: String) async throws {
    for index in 0..<4 {
        let agent = try checkpointer.thread(ThreadID("\(tenant):\(index)"), as: TestAgentState.self)
        var state = TestAgentState()
        for turn in 0..<(index + 2) {
            state.messages.append(sampleMessage(turn))
            try await agent.save(state)
        }
        if index == 1 { _ = try await agent.prune(keepingLatest: 1) }
        if index >= 2 {
            let pause = try await agent.pause(state, reason: "approve", prompt: "go on?")
            if index == 3 { try await agent.resume(pause.id, with: "yes") }
        }
    }
}

/// Whether two listings name the same items with the same heads, counts, pauses and
/// activity (within a microsecond).
public func sameListing(_ first: [ThreadSummary], _ second: [ThreadSummary]) -> Bool {
    first.count == second.count
        && zip(first, second).allSatisfy { a, b in
            a.thread == b.thread && a.namespace == b.namespace && a.headID == b.headID
                && a.checkpointCount == b.checkpointCount && samePause(a.waitingPause, b.waitingPause)
                && abs(a.lastActivity.timeIntervalSince(b.lastActivity)) < 0.000_002
        }
}

/// Whether two pauses are the same, their times within a microsecond (as the stores keep them).
public func samePause(_ first: Pause?, _ second: Pause?) -> Bool {
    guard let first, let second else { return first == nil && second == nil }
    func close(_ a: Date?, _ b: Date?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return abs(a.timeIntervalSince(b)) < 0.000_002
    }
    return first.id == second.id && first.reason == second.reason && first.prompt == second.prompt
        && close(first.createdAt, second.createdAt) && close(first.expiresAt, second.expiresAt)
}


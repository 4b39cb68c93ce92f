import Checkpointing
import Foundation

/// A thread holding every kind of stored content (a list appended over several turns, a large
/// value, metadata, a pause and its answer) beside a second thread, for tests that damage a
/// store's bytes and check that every read notices: a backend's checksum tests write it, damage
/// one column, and expect ``readEverything(from:)`` to throw `corruptData`.
public struct StoredContentProbe: Sendable {
    /// The thread with the content.
    public let thread: ThreadID
    /// Another thread, written after it.
    public let other: ThreadID
    /// Text only the state holds: an error must never show it.
    public static let secret = "a secret only the state holds"
    /// The metadata every save of ``thread`` carries.
    public static let metadata: Metadata = ["source": "plan"]

    /// A probe on two threads no other test uses.
    public init(label: String = "probe") throws {
        thread = try uniqueThread(label)
        other = try uniqueThread(label + "-other")
    }

    /// Writes four turns, a pause and its answer to ``thread``, then one turn to ``other``.
    public func write(to checkpointer: some Checkpointer) async throws {
        let agent = try checkpointer.thread(thread, as: TestAgentState.self)
        var state = TestAgentState(document: sampleText(400, seed: 1) + Self.secret)
        for turn in 1...4 {
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            try await agent.save(state, metadata: Self.metadata)
        }
        let pause = try await agent.pause(state, reason: "approve", prompt: "go on?")
        try await agent.resume(pause.id, with: "yes")
        try await checkpointer.thread(other, as: TestAgentState.self).save(TestAgentState(turn: 1))
    }

    /// Reads everything of both threads: every checkpoint of the history, both heads, the
    /// inbox, and a prune (which reads every row of the thread).
    public func readEverything(from checkpointer: some Checkpointer) async throws {
        for id in try await checkpointer.history(thread: thread, limit: 100).map(\.id) {
            _ = try await checkpointer.checkpoint(thread: thread, namespace: "", id: id)
        }
        _ = try await checkpointer.head(thread: thread)
        _ = try await checkpointer.head(thread: other)
        _ = try await checkpointer.history(thread: other, limit: 100)
        _ = try await checkpointer.pausedThreads(InboxQuery())
        _ = try await checkpointer.prune(thread: thread, namespace: "", keepingLatest: 100)
    }
}

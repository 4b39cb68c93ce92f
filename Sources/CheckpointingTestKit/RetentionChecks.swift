import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// The retention checks, part of ``checks``.
    static let retentionChecks: [ConformanceCheck] = [pruneKeepsTheNewestWhole, pruneNeverRemovesUnansweredPauses]

    static let pruneKeepsTheNewestWhole = ConformanceCheck("prune keeps the newest checkpoints whole") { checkpointer in
        let id = try uniqueThread("prune")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState()
        var saved: [(CheckpointID, TestAgentState)] = []
        for turn in 0..<30 {
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            if turn % 3 == 0 { state.document = sampleText(2000, seed: turn) }  // a value replaced now and then
            saved.append((try await thread.save(state), state))
        }
        // A fork from turn 20 that goes on for two turns: it shares the older messages.
        var fork = try await thread.rewind(to: saved[20].0)
        for turn in 0..<2 {
            fork.messages.append(TestMessage(role: "fork", text: "\(turn)"))
            saved.append((try await thread.save(fork), fork))
        }
        let before = try await checkpointer.storageStatistics(thread: id)
        let removed = try await thread.prune(keepingLatest: 5)
        try await require(removed == 27, "27 of 32 checkpoints leave the history, not \(removed)")
        let history = try await thread.history(limit: 100)
        try await require(history.map(\.id) == saved.suffix(5).map(\.0).reversed(), "the newest five stay, newest first")
        for (checkpointID, expected) in saved.suffix(5) {
            try await require(try await thread.state(at: checkpointID) == expected, "a kept checkpoint reads back whole")
        }
        for (checkpointID, _) in saved.prefix(27) {
            let gone = try await checkpointer.checkpoint(thread: id, namespace: "", id: checkpointID)
            try await require(gone == nil, "a pruned checkpoint is not found")
        }
        let after = try await checkpointer.storageStatistics(thread: id)
        try await require(after.checkpointCount == 5, "statistics count the kept checkpoints")
        // Ten document versions were stored; the kept checkpoints use two (turn 27's, and turn
        // 18's on the fork): the other eight are deleted, the messages all stay.
        try await require(
            after.payloadByteCount <= before.payloadByteCount - 8 * 2000
                && after.payloadByteCount >= 2 * 2000 + 32 * 300,
            "replaced values are deleted (\(before.payloadByteCount) → \(after.payloadByteCount) bytes)")
        try await require(try await thread.prune(keepingLatest: 5) == 0, "pruning again removes nothing")
        // The thread goes on as before.
        var next = try await thread.latest() ?? TestAgentState()
        next.messages.append(sampleMessage(99))
        try await thread.save(next)
        try await require(try await thread.latest() == next, "the thread goes on after pruning")
        try await requireError(.invalidArgument) { try await thread.prune(keepingLatest: 0) }
        try await require(
            try await checkpointer.prune(thread: uniqueThread("none"), namespace: "", keepingLatest: 1) == 0,
            "pruning an unknown thread removes nothing")
    }

    static let pruneNeverRemovesUnansweredPauses = ConformanceCheck("prune never removes an unanswered pause") {
        checkpointer in
        let id = try uniqueThread("retained")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        try await thread.save(TestAgentState(turn: 0))
        let answered = try await thread.pause(TestAgentState(turn: 1), reason: "approve", prompt: "first?")
        try await thread.resume(answered.id, with: "yes")
        _ = try await thread.latest()
        try await thread.save(TestAgentState(turn: 2))
        let unanswered = try await thread.pause(TestAgentState(turn: 3), reason: "approve", prompt: "second?")
        let pausedAt = try await checkpointer.head(thread: id)?.id
        try await thread.save(TestAgentState(turn: 4))  // the agent went on without the answer
        try await thread.save(TestAgentState(turn: 5))
        try await thread.prune(keepingLatest: 1)
        let history = try await thread.history(limit: 100)
        try await require(history.count == 2, "the head and the unanswered pause stay, not \(history.count)")
        try await require(history.last?.id == pausedAt, "the checkpoint with the unanswered pause stays")
        let kept = try await checkpointer.checkpoint(thread: id, namespace: "", id: pausedAt)
        try await require(kept?.pause?.id == unanswered.id && kept?.answer == nil, "with its pause")

        // A paused head stays too, whatever the count.
        let waiting = try uniqueThread("waiting")
        let agent = try checkpointer.facade(waiting, as: TestAgentState.self)
        for turn in 0..<3 { try await agent.save(TestAgentState(turn: turn)) }
        let pause = try await agent.pause(TestAgentState(turn: 3), reason: "approve", prompt: "ok?")
        try await agent.prune(keepingLatest: 1)
        try await require(try await agent.history().count == 1, "only the paused head stays")
        if declares(.inbox) {
            try await require(
                try await checkpointer.pausedThreads(InboxQuery()).items.contains { $0.pause.id == pause.id },
                "and the thread still waits in the inbox")
        }
        try await agent.resume(pause.id, with: "ok")
        _ = try await agent.latest()
        try await require(try agent.answer(as: String.self) == "ok", "and can be answered")
    }
}

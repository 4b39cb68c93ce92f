import Checkpointing
import Foundation
import Synchronization

extension CheckpointerConformance {
    /// The retention checks, part of ``checks``.
    static let retentionChecks: [ConformanceCheck] = [
        pruneKeepsTheNewestWhole, pruneNeverRemovesUnansweredPauses, pruneOlderThanKeepsRecentHeadAndPauses,
    ]

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

extension CheckpointerConformance {
    /// A clock a check moves by hand.
    final class ManualClock: Sendable {
        private let time: Mutex<Date>
        init(_ start: Date) { time = Mutex(start) }
        var now: Date { time.withLock { $0 } }
        func set(_ date: Date) { time.withLock { $0 = date } }
    }

    static let pruneOlderThanKeepsRecentHeadAndPauses = ConformanceCheck(
        "prune by age keeps the recent checkpoints, the head and unanswered pauses"
    ) { checkpointer in
        let tenant = uniqueTenant("prune-age")
        let id = try ThreadID("\(tenant):thread")
        let base = Date(timeIntervalSince1970: 1_750_000_000)
        let clock = ManualClock(base)
        let thread = try CheckpointThread<TestAgentState>(
            checkpointer: checkpointer, id: id, sealing: CheckpointerConformance.sealing, now: { clock.now })
        var state = TestAgentState(document: sampleText(500, seed: 1))
        var saved: [(CheckpointID, TestAgentState)] = []
        for turn in 0..<10 {
            clock.set(base + Double(turn) * 3600)
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            if turn == 2 {
                try await thread.pause(state, reason: "approve", prompt: "ok?")
                guard let paused = try await checkpointer.head(thread: id) else {
                    throw ConformanceFailure(message: "the paused head is not found", file: #filePath, line: #line)
                }
                saved.append((paused.id, state))
            } else {
                saved.append((try await thread.save(state), state))
            }
        }
        // Turns 0, 1, 3, 4, 5 are older than turn 6; turn 2 waits for an answer.
        let removed = try await thread.prune(olderThan: base + 6 * 3600)
        try await require(removed == 5, "five checkpoints are older than the cut, not \(removed)")
        let history = try await thread.history(limit: 100).map(\.id)
        let kept = [9, 8, 7, 6, 2].map { saved[$0].0 }
        try await require(history == kept, "the recent ones and the unanswered pause stay")
        for index in [9, 6, 2] {
            try await require(
                try await thread.state(at: saved[index].0) == saved[index].1, "a kept checkpoint reads back whole")
        }
        try await require(
            try await checkpointer.checkpoint(thread: id, namespace: "", id: saved[5].0) == nil,
            "a removed checkpoint is not found")
        try await require(try await thread.prune(olderThan: base + 6 * 3600) == 0, "pruning again removes nothing")
        // A cut after every checkpoint keeps the head: retention never empties a thread.
        let all = try await thread.prune(olderThan: base + 1_000_000)
        try await require(all == 3, "everything but the head and the pause goes, \(all) removed")
        try await require(
            try await thread.history(limit: 100).map(\.id) == [saved[9].0, saved[2].0], "the head and the pause stay")
        try await require(try await thread.latest() == saved[9].1, "the head reads back whole")
        let listed = try await checkpointer.threads(ThreadQuery(tenant: tenant)).items
        try await require(listed.map(\.checkpointCount) == [2], "the listing counts what stays")
    }
}

extension CheckpointerConformance {
    /// The idle sweep checks, part of ``checks``.
    static let sweepChecks: [ConformanceCheck] = [sweepDeletesIdleNamespacesOnly, sweepPrunesIdleNamespacesToTheirHead]

    static let sweepDeletesIdleNamespacesOnly = ConformanceCheck(
        "a sweep deletes idle namespaces, never active or waiting ones"
    ) { checkpointer in
        // Times long before any other check's, so that a sweep of the whole store sees only these.
        let base = Date(timeIntervalSince1970: 1_000_000_000)
        let tenant = uniqueTenant("sweep")
        func thread(_ name: String) throws -> ThreadID { try ThreadID("\(tenant):\(name)") }
        var parent = try await putAt(checkpointer, try thread("idle"), after: nil, createdAt: base, padding: 100)
        parent = try await putAt(checkpointer, try thread("idle"), after: parent, createdAt: base + 1)
        try await putAt(checkpointer, try thread("idle"), namespace: "tools", after: nil, createdAt: base + 2)
        try await putAt(checkpointer, try thread("idle-too"), after: nil, createdAt: base + 3)
        let recent = try await putAt(checkpointer, try thread("active"), after: nil, createdAt: base)
        try await putAt(checkpointer, try thread("active"), after: recent, createdAt: base + 4500)
        let open = try Pause(reason: "approve", prompt: Data("{}".utf8), createdAt: base + 5, expiresAt: base + 10_000_000)
        try await putAt(checkpointer, try thread("waiting"), after: nil, createdAt: base + 5, pause: open)
        let lapsed = try Pause(reason: "approve", prompt: Data("{}".utf8), createdAt: base + 6, expiresAt: base + 100)
        try await putAt(checkpointer, try thread("lapsed"), after: nil, createdAt: base + 6, pause: lapsed)

        let now = base + 5000
        let policy = IdleThreadPolicy(idleFor: .seconds(1000))
        let report = try await checkpointer.sweep(policy, now: now, batchSize: 2)
        try await require(report.deletedCount == 3, "three idle namespaces are deleted, not \(report.deletedCount)")
        try await require(report.checkpointsRemoved == 4, "with their four checkpoints, not \(report.checkpointsRemoved)")
        try await require(report.bytesRemoved >= 100, "and their bytes, not \(report.bytesRemoved)")
        for (name, namespace) in [("idle", ""), ("idle", "tools"), ("idle-too", "")] {
            try await require(
                try await checkpointer.head(thread: thread(name), namespace: namespace) == nil, "\(name)/\(namespace) is gone")
        }
        for name in ["active", "waiting", "lapsed"] {
            try await require(try await checkpointer.head(thread: thread(name)) != nil, "\(name) stays")
        }
        let listed = try await checkpointer.threads(ThreadQuery(tenant: tenant)).items.map(\.thread.rawValue).sorted()
        try await require(listed == ["active", "lapsed", "waiting"].map { "\(tenant):\($0)" }, "the listing follows: \(listed)")

        // An expired pause goes only when the policy says so; an open one never.
        let expired = IdleThreadPolicy(idleFor: .seconds(1000), removesExpiredPauses: true)
        let second = try await checkpointer.sweep(expired, now: now)
        try await require(second.deletedCount == 1, "the lapsed pause's namespace goes, \(second.deletedCount) deleted")
        try await require(try await checkpointer.head(thread: thread("lapsed")) == nil, "the lapsed thread is gone")
        try await require(try await checkpointer.head(thread: thread("waiting"))?.pause == open, "the open pause stays")
        try await require(try await checkpointer.sweep(expired, now: now).deletedCount == 0, "sweeping again removes nothing")
        try await requireError(.invalidArgument) {
            try await checkpointer.sweepIdle(IdleSweepBatch(idleBefore: now, now: now, action: .delete, removesExpiredPauses: false, limit: 0))
        }
    }

    static let sweepPrunesIdleNamespacesToTheirHead = ConformanceCheck(
        "a sweep can prune idle namespaces to their head instead"
    ) { checkpointer in
        let base = Date(timeIntervalSince1970: 1_000_100_000)
        let tenant = uniqueTenant("sweep-prune")
        let long = try ThreadID("\(tenant):long")
        var parent: CheckpointID?
        for turn in 0..<5 { parent = try await putAt(checkpointer, long, after: parent, createdAt: base + Double(turn)) }
        let short = try ThreadID("\(tenant):short")
        try await putAt(checkpointer, short, after: nil, createdAt: base)
        let policy = IdleThreadPolicy(idleFor: .seconds(1000), action: .pruneToHead)
        let report = try await checkpointer.sweep(policy, now: base + 5000)
        try await require(report.prunedCount == 1 && report.deletedCount == 0, "one namespace is pruned: \(report)")
        try await require(report.checkpointsRemoved == 4, "four checkpoints leave its history, not \(report.checkpointsRemoved)")
        try await require(try await checkpointer.history(thread: long).map(\.id) == [parent].compactMap { $0 }, "the head stays")
        try await require(try await checkpointer.head(thread: short) != nil, "a namespace with one checkpoint stays")
        let again = try await checkpointer.sweep(policy, now: base + 5000)
        try await require(again.prunedCount == 0 && again.checkpointsRemoved == 0, "nothing is left to prune: \(again)")
    }
}

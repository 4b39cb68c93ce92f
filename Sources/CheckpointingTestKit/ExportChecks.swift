import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// The export and import checks, part of ``checks``.
    static let exportChecks: [ConformanceCheck] = [exportImportRoundTrips, importRefusesBadFilesAndGoesOnAfterACut]

    /// A thread with a fork, metadata, an answered pause and a waiting one at its head.
    static func exportFixture(_ checkpointer: any Checkpointer, _ id: ThreadID) async throws -> [CheckpointID: TestAgentState] {
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState(document: sampleText(300, seed: 3))
        var saved: [CheckpointID: TestAgentState] = [:]
        var ids: [CheckpointID] = []
        for turn in 0..<6 {
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            let checkpointID = try await thread.save(state, metadata: ["turn": .int(turn), "source": "loop"])
            saved[checkpointID] = state
            ids.append(checkpointID)
        }
        var fork = try await thread.rewind(to: ids[3])
        fork.messages.append(TestMessage(role: "fork", text: "another way"))
        saved[try await thread.save(fork)] = fork
        let asked = try await thread.pause(fork, reason: "approve", prompt: "go on?")
        try await thread.resume(asked.id, with: "yes")
        _ = try await thread.latest()
        state = fork
        state.messages.append(sampleMessage(99))
        saved[try await thread.save(state)] = state
        try await thread.pause(state, reason: "review", prompt: "and now?", expiresAt: Date().addingTimeInterval(86_400))
        return saved
    }

    static let exportImportRoundTrips = ConformanceCheck("an export imports back whole and exports the same bytes") {
        checkpointer in
        let id = try uniqueThread("export")
        let saved = try await exportFixture(checkpointer, id)
        let before = try await checkpointer.storageStatistics(thread: id)
        let exported = try await checkpointer.export(thread: id)
        let lines = exported.split(separator: 0x0A)
        try await require(lines.count == 2 + before.checkpointCount, "a header, one line per checkpoint, an end")
        try await checkpointer.deleteThread(id)

        let imported = try await checkpointer.importThread(exported)
        try await require(imported.checkpointCount == before.checkpointCount, "every checkpoint is imported")
        try await require(imported.answerCount == 1, "the answer is recorded again")
        let again = try await checkpointer.export(thread: id)
        try await require(again == exported, "the import exports the same bytes")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        for (checkpointID, state) in saved {
            try await require(try await thread.state(at: checkpointID) == state, "checkpoint \(checkpointID) reads back")
        }
        let head = try await checkpointer.head(thread: id)
        try await require(head?.pause?.reason == "review" && head?.answer == nil, "the head still waits")
        if declares(.inbox) {
            let inbox = try await checkpointer.pausedThreads(InboxQuery(limit: 1000)).items
            try await require(inbox.contains { $0.thread == id }, "the imported thread waits in the inbox")
        }
        if declares(.deltaStorage) {
            let after = try await checkpointer.storageStatistics(thread: id)
            try await require(
                after.payloadByteCount <= before.payloadByteCount + 64,
                "an import stores what the original stored (\(before.payloadByteCount) → \(after.payloadByteCount) bytes)")
        }
        let repeated = try await checkpointer.importThread(exported)
        try await require(
            repeated.checkpointCount == 0 && repeated.skippedCount == before.checkpointCount && repeated.answerCount == 0,
            "importing again writes nothing")

        // A pruned history exports its oldest kept checkpoint as a root, and round-trips.
        _ = try await checkpointer.prune(thread: id, namespace: "", keepingLatest: 3)
        let pruned = try await checkpointer.export(thread: id)
        try await checkpointer.deleteThread(id)
        try await checkpointer.importThread(pruned)
        try await require(try await checkpointer.export(thread: id) == pruned, "a pruned history round-trips")
        try await requireError(.notFound) { try await checkpointer.export(thread: uniqueThread("none")) }
    }

    static let importRefusesBadFilesAndGoesOnAfterACut = ConformanceCheck(
        "an import refuses a bad file and goes on after an interruption"
    ) { checkpointer in
        let id = try uniqueThread("import")
        _ = try await exportFixture(checkpointer, id)
        let exported = try await checkpointer.export(thread: id)
        try await checkpointer.deleteThread(id)
        let lines = exported.split(separator: 0x0A).map { Data($0) }

        // Cut off after four checkpoints: refused for its missing end, with what came stored.
        try await requireError(.invalidArgument) { try await checkpointer.importThread(lines: Array(lines.prefix(5))) }
        let rest = try await checkpointer.importThread(lines: lines)
        try await require(rest.skippedCount == 4 && rest.checkpointCount == lines.count - 6, "the import goes on")
        try await require(try await checkpointer.export(thread: id) == exported, "and ends whole")

        let header = String(decoding: lines[0], as: UTF8.self)
        for (label, text) in [
            ("a later version", header.replacingOccurrences(of: "\"version\":1", with: "\"version\":2")),
            ("another format", header.replacingOccurrences(of: "swift-checkpointing.thread", with: "other")),
            ("not JSON", "{\"format\":"),
        ] {
            try await requireError(.invalidArgument) {
                try await checkpointer.importThread(lines: [Data(text.utf8)] + lines.dropFirst())
            }
            _ = label
        }
        let wrongCount = Data(String(decoding: lines[lines.count - 1], as: UTF8.self)
            .replacingOccurrences(of: "\"checkpoints\":", with: "\"checkpoints\":1").utf8)
        try await requireError(.invalidArgument) { try await checkpointer.importThread(lines: lines.dropLast() + [wrongCount]) }
        try await requireError(.invalidArgument) { try await checkpointer.importThread(lines: [lines[0], lines[2]]) }
        try await requireError(.invalidArgument) { try await checkpointer.importThread(Data()) }
    }
}

import Checkpointing
import Foundation

extension CheckpointerConformance {
    static let cancelledCallsDoNothing = ConformanceCheck(
        "a call from a cancelled task throws cancelled and changes nothing"
    ) { checkpointer in
        let id = try uniqueThread("cancelled")
        let first = CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(first)
        let next = CheckpointWrite(thread: id, parentID: first.id, step: 1, channels: ["v": .value(Data("2".utf8))])
        let paused = try uniqueThread("cancelled-pause")
        let agent = try checkpointer.facade(paused, as: TestAgentState.self)
        let pause = try await agent.pause(TestAgentState(turn: 1), reason: "cancelled", prompt: "go on?")
        let facade = try checkpointer.facade(id, as: TestAgentState.self)

        let failures = try await inCancelledTask { () async -> [String] in
            var failures: [String] = []
            func expectCancelled(_ call: String, _ body: () async throws -> Void) async {
                do {
                    try await body()
                    failures.append("\(call) returned normally")
                } catch let error as CheckpointError where error.code == .cancelled {
                    if error.isRetryable { failures.append("\(call): cancelled is not retryable") }
                } catch {
                    failures.append("\(call) threw \(type(of: error)): \(error)")
                }
            }
            await expectCancelled("put") { try await checkpointer.put(next) }
            await expectCancelled("fork put") { try await checkpointer.put(next, expecting: .anyParent) }
            await expectCancelled("save") { try await facade.save(TestAgentState(turn: 9)) }
            await expectCancelled("head") { _ = try await checkpointer.head(thread: id) }
            await expectCancelled("read by id") { _ = try await checkpointer.checkpoint(thread: id, namespace: "", id: first.id) }
            await expectCancelled("history") { _ = try await checkpointer.history(thread: id, where: ["k": 1]) }
            await expectCancelled("storageStatistics") { _ = try await checkpointer.storageStatistics(thread: id) }
            await expectCancelled("pausedThreads") { _ = try await checkpointer.pausedThreads(InboxQuery()) }
            await expectCancelled("resume") {
                try await checkpointer.resume(
                    thread: paused, pauseID: pause.id, with: ApprovalAnswer(approved: true, reviewer: "cancelled"),
                    sealing: CheckpointerConformance.sealing)
            }
            await expectCancelled("prune") { _ = try await checkpointer.prune(thread: id, namespace: "", keepingLatest: 1) }
            await expectCancelled("deleteThread") { try await checkpointer.deleteThread(id) }
            return failures
        }
        try await require(failures.isEmpty, "in a cancelled task: \(failures.joined(separator: "; "))")

        // Read from a task that is not cancelled: nothing changed.
        try await require(try await checkpointer.head(thread: id)?.id == first.id, "the thread's head is unchanged")
        try await require(
            try await checkpointer.head(thread: id)?.channels["v"] == .value(Data("1".utf8)), "and so is its content")
        try await require(try await checkpointer.history(thread: id).map(\.id) == [first.id], "no checkpoint was added")
        try await require(
            try await checkpointer.head(thread: paused).map { $0.pause?.id == pause.id && $0.answer == nil } == true,
            "the pause still waits for its answer")
        if declares(.inbox) {
            try await require(
                try await allPausedThreads(checkpointer, InboxQuery(reason: "cancelled")).map(\.pause.id) == [pause.id],
                "and is listed in the inbox")
        }
        // The same calls from a task that is not cancelled succeed.
        try await checkpointer.put(next)
        try await require(try await checkpointer.head(thread: id)?.id == next.id, "the same put succeeds afterwards")
        try await agent.resume(pause.id, with: ApprovalAnswer(approved: true, reviewer: "later"))
    }
}

/// Runs `body` in a child task that cancels itself first, so that every call it makes comes
/// from a cancelled task (keeping the caller's task-local values and executor preference).
///
/// - Throws: ``ConformanceFailure`` (the check fails, the test run goes on) when the child
///   task returned nothing.
private func inCancelledTask<T: Sendable>(
    file: StaticString = #filePath, line: UInt = #line, _ body: @escaping @Sendable () async -> T
) async throws -> T {
    let result = await withTaskGroup(of: T.self) { group -> T? in
        group.addTask {
            withUnsafeCurrentTask { $0?.cancel() }
            return await body()
        }
        var result: T?
        for await value in group { result = value }
        return result
    }
    guard let result else {
        throw ConformanceFailure(message: "the cancelled child task returned nothing", file: file, line: line)
    }
    return result
}

import Checkpointing
import Foundation

/// What an agent asks a person in the pause checks.
public struct ApprovalPrompt: Codable, Sendable, Equatable {
    /// The question.
    public var question: String
    /// The amount at stake.
    public var amount: Int

    /// Creates a prompt.
    public init(question: String, amount: Int) {
        self.question = question
        self.amount = amount
    }
}

/// A person's answer in the pause checks.
public struct ApprovalAnswer: Codable, Sendable, Equatable {
    /// Whether the person approved.
    public var approved: Bool
    /// Who answered.
    public var reviewer: String

    /// Creates an answer.
    public init(approved: Bool, reviewer: String) {
        self.approved = approved
        self.reviewer = reviewer
    }
}

/// Reads every page of the inbox for a query.
public func allPausedThreads(_ checkpointer: any Checkpointer, _ query: InboxQuery) async throws -> [PausedThread] {
    var query = query
    var items: [PausedThread] = []
    while true {
        let page = try await checkpointer.pausedThreads(query)
        items += page.items
        guard let next = page.next else { return items }
        query.after = next
    }
}

extension CheckpointerConformance {
    /// The human-in-the-loop checks, part of ``checks``.
    static let pauseChecks: [ConformanceCheck] = [
        pauseListResumeContinue, concurrentResumes, staleAndExpiredPauses, inboxFilters, inboxPagingWhilePausesArrive,
        answeredPauseSurvivesAReopen,
    ]

    static let pauseListResumeContinue = ConformanceCheck("pause, list, resume, continue") { checkpointer in
        let id = try uniqueThread("hitl")
        let agent = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState(messages: [sampleMessage(0)], turn: 1)
        try await agent.save(state)
        state.messages.append(TestMessage(role: "assistant", text: "I need approval for a refund."))
        let prompt = ApprovalPrompt(question: "Refund 120 EUR?", amount: 120)
        let pause = try await agent.pause(state, reason: "refund-approval", prompt: prompt)
        try await require(agent.isAwaitingAnswer, "the façade knows it waits")

        if declares(.inbox) {
            let inbox = try await allPausedThreads(checkpointer, InboxQuery())
            try await require(inbox.map(\.thread) == [id], "the paused thread is in the inbox")
            try await require(inbox.first?.pause.id == pause.id, "with its pause")
            try await require(try inbox.first.map(decodePrompt) == prompt, "and its prompt")
        }

        // Another process (here: another façade) answers.
        let reviewer = try checkpointer.facade(id, as: TestAgentState.self)
        try await reviewer.resume(pause.id, with: ApprovalAnswer(approved: true, reviewer: "ana"))
        try await require(try await inboxIsEmpty(checkpointer), "an answered thread leaves the inbox")

        // The agent starts again, finds the answer and goes on.
        let restarted = try checkpointer.facade(id, as: TestAgentState.self)
        guard var resumed = try await restarted.latest() else {
            throw ConformanceFailure(message: "the paused state is missing", file: #filePath, line: #line)
        }
        try await require(resumed == state, "the paused state reads back")
        try await require(restarted.pause?.id == pause.id, "the head holds the pause")
        try await require(!restarted.isAwaitingAnswer, "and it is answered")
        try await require(
            try restarted.answer(as: ApprovalAnswer.self) == ApprovalAnswer(approved: true, reviewer: "ana"),
            "the answer decodes")
        resumed.messages.append(TestMessage(role: "assistant", text: "Refund done."))
        try await restarted.save(resumed)
        try await require(try await restarted.latest() == resumed, "the agent continues after the answer")
        try await require(restarted.pause == nil, "the new head has no pause")
        try await requireError(.alreadyResumed) {
            try await reviewer.resume(pause.id, with: ApprovalAnswer(approved: false, reviewer: "late"))
        }
        try await require(
            try await checkpointer.checkpoint(thread: id, namespace: "", id: nil).map { $0.pause == nil } == true,
            "a late second answer changes nothing")
    }

    static let concurrentResumes = ConformanceCheck("16 concurrent resumes of one pause: exactly one wins") {
        checkpointer in
        let id = try uniqueThread("resumes")
        let agent = try checkpointer.facade(id, as: TestAgentState.self)
        let pause = try await agent.pause(TestAgentState(turn: 1), reason: "confirm", prompt: "Send the email?")
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<16 {
                group.addTask {
                    do {
                        try await checkpointer.resume(
                            thread: id, pauseID: pause.id, with: ApprovalAnswer(approved: true, reviewer: "r\(index)"),
                            sealing: CheckpointerConformance.sealing)
                        return "ok r\(index)"
                    } catch let error as CheckpointError where error.code == .alreadyResumed {
                        return "already"
                    }
                }
            }
            var outcomes: [String] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        let winners = outcomes.filter { $0.hasPrefix("ok") }
        try await require(winners.count == 1, "exactly one resume succeeds, not \(winners.count)")
        try await require(outcomes.filter { $0 == "already" }.count == 15, "the others get alreadyResumed")
        _ = try await agent.latest()
        let answer = try agent.answer(as: ApprovalAnswer.self)
        try await require(answer.map { "ok \($0.reviewer)" } == winners.first, "the winner's answer is the one stored")
    }

    static let staleAndExpiredPauses = ConformanceCheck("stale and expired pauses are refused") { checkpointer in
        let id = try uniqueThread("stale")
        let agent = try checkpointer.facade(id, as: TestAgentState.self)
        let old = try await agent.pause(TestAgentState(turn: 1), reason: "approve", prompt: "first?")
        try await agent.save(TestAgentState(turn: 2))  // the agent went on without an answer
        try await requireError(.stalePause) { try await agent.resume(old.id, with: "yes") }
        try await require(try await inboxIsEmpty(checkpointer), "it left the inbox")
        try await requireError(.stalePause) { try await agent.resume(UUID(), with: "yes") }
        try await requireError(.notFound) {
            try await checkpointer.resume(thread: uniqueThread("none"), pauseID: old.id, with: "yes")
        }

        let expiry = Date().addingTimeInterval(3600)
        let expiring = try await agent.pause(TestAgentState(turn: 3), reason: "approve", prompt: "soon?", expiresAt: expiry)
        if declares(.inbox) {
            let expired = try await allPausedThreads(checkpointer, InboxQuery(expiredAsOf: expiry.addingTimeInterval(1)))
            try await require(expired.map(\.pause.id) == [expiring.id], "an expired pause is listed as expired")
            try await require(
                try await allPausedThreads(checkpointer, InboxQuery(expiredAsOf: Date())).isEmpty,
                "a pause that has not expired is not")
        }
        try await requireError(.pauseExpired) {
            try await agent.resume(expiring.id, with: "too late", at: expiry.addingTimeInterval(1))
        }
        try await agent.resume(expiring.id, with: "in time", at: expiry.addingTimeInterval(-1))
        _ = try await agent.latest()
        try await require(try agent.answer(as: String.self) == "in time", "an answer in time is recorded")
        try await requireError(.invalidArgument) {
            try await agent.pause(TestAgentState(), reason: "", prompt: "no reason")
        }
    }

    static let inboxFilters = ConformanceCheck(
        "the inbox filters by reason and tenant, oldest first", requires: .inbox
    ) { checkpointer in
        let tenants = ["acme", "globex"]
        var expected: [String: [ThreadID]] = [:]
        for index in 0..<12 {
            let tenant = tenants[index % 2]
            let reason = index % 3 == 0 ? "refund" : "email"
            let id = try ThreadID("\(tenant):user-\(index)-\(UUID().uuidString.prefix(8))")
            try await checkpointer.facade(id, as: TestAgentState.self)
                .pause(TestAgentState(turn: index), reason: reason, prompt: index)
            expected["\(tenant)/\(reason)", default: []].append(id)
            expected["\(tenant)/*", default: []].append(id)
            expected["*/\(reason)", default: []].append(id)
        }
        let all = try await allPausedThreads(checkpointer, InboxQuery(limit: 5))
        try await require(all.count == 12, "every paused thread is listed")
        try await require(
            zip(all, all.dropFirst()).allSatisfy { $0.pause.createdAt <= $1.pause.createdAt }, "oldest pause first")
        for tenant in tenants {
            for reason in ["refund", "email"] {
                let both = try await allPausedThreads(checkpointer, InboxQuery(reason: reason, tenant: tenant, limit: 2))
                try await require(
                    both.map(\.thread) == expected["\(tenant)/\(reason)"], "reason and tenant \(tenant)/\(reason)")
            }
            let byTenant = try await allPausedThreads(checkpointer, InboxQuery(tenant: tenant, limit: 4))
            try await require(byTenant.map(\.thread) == expected["\(tenant)/*"], "tenant \(tenant)")
        }
        let refunds = try await allPausedThreads(checkpointer, InboxQuery(reason: "refund", limit: 3))
        try await require(refunds.map(\.thread) == expected["*/refund"], "reason refund")
        try await requireError(.invalidArgument) { try await checkpointer.pausedThreads(InboxQuery(limit: 0)) }
    }

    static let inboxPagingWhilePausesArrive = ConformanceCheck(
        "inbox pages list each thread once while pauses arrive", requires: .inbox
    ) {
        checkpointer in
        var first: Set<ThreadID> = []
        for index in 0..<20 {
            let id = try uniqueThread("page\(index)")
            try await checkpointer.facade(id, as: TestAgentState.self).pause(TestAgentState(), reason: "r", prompt: index)
            first.insert(id)
        }
        var seen: [ThreadID] = []
        var arrivals: Set<ThreadID> = []
        var query = InboxQuery(limit: 6)
        var pages = 0
        while true {
            let page = try await checkpointer.pausedThreads(query)
            seen += page.items.map(\.thread)
            pages += 1
            // New pauses arrive between pages.
            for _ in 0..<2 where pages < 6 {
                let id = try uniqueThread("arrival")
                try await checkpointer.facade(id, as: TestAgentState.self).pause(TestAgentState(), reason: "r", prompt: 0)
                arrivals.insert(id)
            }
            guard let next = page.next else { break }
            query.after = next
            try await require(pages < 100, "paging ends")
        }
        try await require(Set(seen).count == seen.count, "no thread is listed twice")
        try await require(first.isSubset(of: Set(seen)), "every thread paused before the first page is listed")
        try await require(Set(seen).isSubset(of: first.union(arrivals)), "only paused threads are listed")
    }

    /// Whether the inbox lists nothing (true, unasked, for a backend without the inbox).
    static func inboxIsEmpty(_ checkpointer: any Checkpointer) async throws -> Bool {
        guard declares(.inbox) else { return true }
        return try await checkpointer.pausedThreads(InboxQuery()).items.isEmpty
    }

    /// A backend without the inbox says so, with a typed error that is not retryable.
    static let noInboxIsUnsupported = ConformanceCheck("a backend without the inbox says unsupported") { checkpointer in
        let id = try uniqueThread("noinbox")
        try await checkpointer.facade(id, as: TestAgentState.self).pause(TestAgentState(), reason: "r", prompt: 1)
        let error = try await requireError(.unsupported) { try await checkpointer.pausedThreads(InboxQuery()) }
        try await require(!error.isRetryable, "unsupported is not retryable")
    }

    static let answeredPauseSurvivesAReopen = ConformanceCheck("an answer is kept when the agent stops before going on") {
        checkpointer in
        let id = try uniqueThread("crash")
        let agent = try checkpointer.facade(id, as: TestAgentState.self)
        let pause = try await agent.pause(TestAgentState(turn: 7), reason: "approve", prompt: "ok?")
        try await checkpointer.resume(
            thread: id, pauseID: pause.id, with: ApprovalAnswer(approved: false, reviewer: "bo"),
            sealing: CheckpointerConformance.sealing)
        // The agent process died before it read the answer: a fresh one finds it, twice.
        for _ in 0..<2 {
            let fresh = try checkpointer.facade(id, as: TestAgentState.self)
            try await require(try await fresh.latest()?.turn == 7, "the paused state is there")
            try await require(
                try fresh.answer(as: ApprovalAnswer.self) == ApprovalAnswer(approved: false, reviewer: "bo"),
                "the answer is there")
        }
    }
}


/// Decodes an inbox prompt, opening it first when the suite runs sealed.
func decodePrompt(_ item: PausedThread) throws -> ApprovalPrompt {
    if let sealing = CheckpointerConformance.sealing {
        return try item.prompt(as: ApprovalPrompt.self, sealing: sealing)
    }
    return try item.prompt(as: ApprovalPrompt.self)
}

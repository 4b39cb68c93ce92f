import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// The thread listing checks, part of ``checks``.
    static let threadListingChecks: [ConformanceCheck] = [
        threadsListByActivity, threadsFollowAnswersPrunesAndDeletes, deleteTenantErasesEveryThreadOfTheTenant,
    ]

    /// A tenant no other check uses, so that a listing of it sees only this check's threads.
    static func uniqueTenant(_ label: String) -> String { "\(label)-\(UUID().uuidString.prefix(8))" }

    /// Puts one checkpoint created at `createdAt` after `parent` (or starting the thread).
    @discardableResult
    static func putAt(
        _ checkpointer: any Checkpointer, _ thread: ThreadID, namespace: String = "", after parent: CheckpointID?,
        createdAt: Date, pause: Pause? = nil, padding: Int = 0
    ) async throws -> CheckpointID {
        let write = CheckpointWrite(
            thread: thread, namespace: namespace, parentID: parent, step: 0, createdAt: createdAt,
            channels: ["v": .value(Data("\(createdAt.timeIntervalSince1970)\(String(repeating: " ", count: padding))".utf8))],
            pause: pause)
        try await checkpointer.put(write)
        return write.id
    }

    /// Every page of a listing, followed by its cursors.
    static func allPages(_ checkpointer: any Checkpointer, _ query: ThreadQuery) async throws -> [ThreadSummary] {
        var query = query
        var items: [ThreadSummary] = []
        for _ in 0..<1000 {
            let page = try await checkpointer.threads(query)
            items += page.items
            guard let next = page.next else { return items }
            try await require(page.items.count == query.limit, "a page with a next cursor is full")
            // The cursor also travels as text.
            query.after = try ThreadCursor(token: next.token)
        }
        throw ConformanceFailure(message: "a listing did not end after 1000 pages", file: #filePath, line: #line)
    }

    static let threadsListByActivity = ConformanceCheck("threads list by activity, filtered and paged") { checkpointer in
        let tenant = uniqueTenant("list")
        let base = Date(timeIntervalSince1970: 1_700_000_000.123456)
        // Seven threads whose activity order is not the order they were made in; one of them
        // has a second namespace, active later; a thread of another tenant.
        let offsets = [40, 10, 70, 20, 60, 30, 50]
        var expected: [(thread: ThreadID, namespace: String, activity: Date, head: CheckpointID)] = []
        for (index, offset) in offsets.enumerated() {
            let thread = try ThreadID("\(tenant):thread-\(index)")
            let first = try await putAt(checkpointer, thread, after: nil, createdAt: base + Double(offset) - 5)
            let head = try await putAt(checkpointer, thread, after: first, createdAt: base + Double(offset))
            expected.append((thread, "", base + Double(offset), head))
        }
        let busy = expected[0].thread
        let other = try await putAt(checkpointer, busy, namespace: "tools", after: nil, createdAt: base + 80)
        expected.append((busy, "tools", base + 80, other))
        try await putAt(checkpointer, try ThreadID("\(tenant)x:thread"), after: nil, createdAt: base + 90)

        let newestFirst = expected.sorted { $0.activity > $1.activity }
        for limit in [1, 3, 8, 100] {
            let listed = try await allPages(checkpointer, ThreadQuery(tenant: tenant, limit: limit))
            try await require(
                listed.map { "\($0.thread)/\($0.namespace)" } == newestFirst.map { "\($0.thread)/\($0.namespace)" },
                "pages of \(limit), newest first, list each thread's namespace once: \(listed.map(\.thread))")
        }
        try await require(
            try await checkpointer.threads(ThreadQuery(tenant: tenant, limit: expected.count)).next == nil,
            "a page that ends the listing has no cursor (no empty page follows)")
        let oldestFirst = try await allPages(checkpointer, ThreadQuery(tenant: tenant, order: .oldestActivityFirst, limit: 3))
        try await require(
            oldestFirst.map(\.headID) == newestFirst.reversed().map(\.head), "oldest first is the reverse order")
        let first = try await checkpointer.threads(ThreadQuery(tenant: tenant, limit: 100)).items
        for (item, want) in zip(first, newestFirst) {
            try await require(item.headID == want.head, "an item names its head")
            try await require(
                abs(item.lastActivity.timeIntervalSince(want.activity)) < 0.000_002,
                "the activity is the newest checkpoint's time (\(item.lastActivity) vs \(want.activity))")
            try await require(item.checkpointCount == (item.namespace == "" ? 2 : 1), "an item counts its checkpoints")
            try await require(item.waitingPause == nil, "no item waits")
        }

        // Activity bounds: [since, before).
        let idle = try await allPages(checkpointer, ThreadQuery(tenant: tenant, activeBefore: base + 40, limit: 2))
        try await require(Set(idle.map(\.headID)) == Set(expected.filter { $0.activity < base + 40 }.map(\.head)),
            "activeBefore lists the threads idle since then (\(idle.count))")
        let recent = try await allPages(checkpointer, ThreadQuery(tenant: tenant, activeSince: base + 60, limit: 2))
        try await require(Set(recent.map(\.headID)) == Set(expected.filter { $0.activity >= base + 60 }.map(\.head)),
            "activeSince lists the threads active since then, that time included (\(recent.count))")
        let window = try await allPages(
            checkpointer, ThreadQuery(tenant: tenant, activeBefore: base + 60, activeSince: base + 20, limit: 2))
        try await require(window.count == 4, "both bounds together: 20, 30, 40, 50 (\(window.count))")
        let tools = try await allPages(checkpointer, ThreadQuery(tenant: tenant, namespace: "tools"))
        try await require(tools.map(\.headID) == [other], "a namespace filter lists that namespace only")

        // The whole store, paged, holds this check's threads among others'.
        let everything = try await checkpointer.threads(ThreadQuery(limit: 5))
        try await require(!everything.items.isEmpty, "a listing without a tenant lists threads")

        try await requireError(.invalidArgument) { try await checkpointer.threads(ThreadQuery(limit: 0)) }
        try await requireError(.invalidArgument) {
            try await checkpointer.threads(ThreadQuery(activeBefore: base, activeSince: base))
        }
        _ = try await requireError(.invalidArgument) { try ThreadCursor(token: "not a cursor") }
    }

    static let threadsFollowAnswersPrunesAndDeletes = ConformanceCheck(
        "a listing follows pauses, answers, retention and deletion"
    ) { checkpointer in
        let tenant = uniqueTenant("follow")
        let base = Date(timeIntervalSince1970: 1_700_100_000)
        let waiting = try ThreadID("\(tenant):waiting")
        let answered = try ThreadID("\(tenant):answered")
        let long = try ThreadID("\(tenant):long")
        var parent: CheckpointID?
        for turn in 0..<6 { parent = try await putAt(checkpointer, long, after: parent, createdAt: base + Double(turn)) }
        let question = try Pause(reason: "approve", prompt: Data("{}".utf8), createdAt: base + 10)
        let pausedHead = try await putAt(checkpointer, waiting, after: nil, createdAt: base + 10, pause: question)
        let other = try Pause(reason: "approve", prompt: Data("{}".utf8), createdAt: base + 11)
        try await putAt(checkpointer, answered, after: nil, createdAt: base + 11, pause: other)
        try await checkpointer.resume(
            thread: answered, namespace: "", pauseID: other.id, response: Data("true".utf8), at: base + 100)

        let listed = try await allPages(checkpointer, ThreadQuery(tenant: tenant))
        try await require(
            listed.map(\.thread) == [answered, waiting, long], "an answer is activity: the answered thread is newest")
        try await require(
            abs(listed[0].lastActivity.timeIntervalSince(base + 100)) < 0.000_002, "the answer's time is the activity")
        try await require(listed[0].waitingPause == nil, "an answered pause no longer waits")
        try await require(
            listed[1].waitingPause == question && listed[1].headID == pausedHead, "a waiting head shows its pause")
        let paused = try await allPages(checkpointer, ThreadQuery(tenant: tenant, paused: true))
        try await require(paused.map(\.thread) == [waiting], "paused: true lists the waiting thread only")
        let notPaused = try await allPages(checkpointer, ThreadQuery(tenant: tenant, paused: false))
        try await require(notPaused.map(\.thread) == [answered, long], "paused: false lists the others")

        try await require(listed[2].checkpointCount == 6, "six checkpoints are counted")
        _ = try await checkpointer.prune(thread: long, namespace: "", keepingLatest: 2)
        let pruned = try await checkpointer.threads(ThreadQuery(tenant: tenant, paused: false)).items
        try await require(
            pruned.first { $0.thread == long }?.checkpointCount == 2, "after pruning, the kept checkpoints are counted")
        try await require(
            pruned.first { $0.thread == long }?.headID == parent, "pruning keeps the head")

        // A put older than the activity does not move it back.
        _ = try await putAt(checkpointer, long, after: parent, createdAt: base - 1000)
        let after = try await checkpointer.threads(ThreadQuery(tenant: tenant, paused: false)).items
        try await require(
            after.first { $0.thread == long }.map { abs($0.lastActivity.timeIntervalSince(base + 5)) < 0.000_002 } == true,
            "the activity is the latest time, not the last written")

        try await checkpointer.deleteThread(waiting)
        let remaining = try await allPages(checkpointer, ThreadQuery(tenant: tenant))
        try await require(remaining.map(\.thread) == [answered, long], "a deleted thread is not listed")
    }

    static let deleteTenantErasesEveryThreadOfTheTenant = ConformanceCheck(
        "deleteTenant erases every thread of the tenant, and no other"
    ) { checkpointer in
        let tenant = uniqueTenant("erase")
        let neighbour = tenant + "x"
        let base = Date(timeIntervalSince1970: 1_700_200_000)
        var doomed: [ThreadID] = []
        for index in 0..<7 {
            let thread = try ThreadID("\(tenant):\(index)")
            doomed.append(thread)
            let first = try await putAt(checkpointer, thread, after: nil, createdAt: base + Double(index))
            try await putAt(checkpointer, thread, after: first, createdAt: base + Double(index) + 0.5)
        }
        try await putAt(checkpointer, doomed[0], namespace: "tools", after: nil, createdAt: base + 20)
        let question = try Pause(reason: "approve", prompt: Data("{}".utf8), createdAt: base + 30)
        try await putAt(checkpointer, doomed[1], namespace: "review", after: nil, createdAt: base + 30, pause: question)
        let kept = try ThreadID("\(neighbour):0")
        try await putAt(checkpointer, kept, after: nil, createdAt: base)
        let untenanted = try uniqueThread("no-tenant")
        try await putAt(checkpointer, untenanted, after: nil, createdAt: base)

        let erasure = try await checkpointer.deleteTenant(tenant, batchSize: 2)
        try await require(erasure.threadCount == 7, "seven threads are deleted, not \(erasure.threadCount)")
        try await require(erasure.checkpointCount == 16, "holding 16 checkpoints in their namespaces, not \(erasure.checkpointCount)")
        try await require(
            try await checkpointer.threads(ThreadQuery(tenant: tenant)).items.isEmpty, "the tenant lists nothing")
        for thread in doomed {
            for namespace in ["", "tools", "review"] {
                try await require(
                    try await checkpointer.head(thread: thread, namespace: namespace) == nil,
                    "no head of \(thread)/\(namespace) is left")
            }
        }
        if declares(.inbox) {
            try await require(
                try await checkpointer.pausedThreads(InboxQuery(tenant: tenant)).items.isEmpty,
                "the tenant's pauses left the inbox")
        }
        try await require(try await checkpointer.head(thread: kept) != nil, "another tenant's thread stays")
        try await require(try await checkpointer.head(thread: untenanted) != nil, "a thread without a tenant stays")
        let again = try await checkpointer.deleteTenant(tenant)
        try await require(again == TenantErasure(tenant: tenant), "erasing again finds nothing")
        for bad in ["", "a:b"] {
            try await requireError(.invalidArgument) { try await checkpointer.deleteTenant(bad) }
        }
        try await requireError(.invalidArgument) { try await checkpointer.deleteTenant(tenant, batchSize: 0) }
    }
}

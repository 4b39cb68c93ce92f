import Checkpointing
import Foundation

/// A message whose `==` compares ids only, as many apps write it: the façade must still store
/// an edit of its text.
public struct IDOnlyMessage: Codable, Sendable, Equatable {
    /// The message's id, the only thing `==` compares.
    public var id: Int
    /// Its text.
    public var text: String

    /// Creates a message.
    public init(id: Int, text: String) {
        self.id = id
        self.text = text
    }

    /// Compares ids only.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
}

/// A message that is not `Equatable`: the façade must still store only appended elements.
public struct PlainMessage: Codable, Sendable {
    /// The message's id.
    public var id: Int
    /// Its text.
    public var text: String

    /// Creates a message.
    public init(id: Int, text: String) {
        self.id = id
        self.text = text
    }
}

/// A state whose list holds `Message`s, for the checks that run over several message kinds.
public struct ListState<Message: Codable & Sendable>: Codable, Sendable {
    /// The conversation.
    public var messages: [Message] = []
    /// A value that changes every turn.
    public var turn = 0

    /// Creates a state.
    public init(messages: [Message] = [], turn: Int = 0) {
        self.messages = messages
        self.turn = turn
    }
}

/// The message kinds the storage and round-trip checks run over.
protocol CheckedMessage: Codable, Sendable {
    init(id: Int, text: String)
    var id: Int { get }
    var text: String { get set }
}

extension IDOnlyMessage: CheckedMessage {}
extension PlainMessage: CheckedMessage {}
extension TestMessage: CheckedMessage {
    init(id: Int, text: String) { self.init(role: "\(id)", text: text) }
    var id: Int { Int(role) ?? -1 }
}

private func texts<Message: CheckedMessage>(_ state: ListState<Message>?) -> [String] {
    state?.messages.map(\.text) ?? []
}

extension CheckpointerConformance {
    static let facadeChecks: [ConformanceCheck] = [
        sharedFacadeReadModifyWrite, sharedFacadeUpdate, snapshotsCarryTheirCheckpoint,
        editsAreStoredWhateverEqualitySays, appendsStoreOnlyNewElementsForAnyElement, expiredPauseIsNotAwaited,
        stateEvolution,
    ]

    /// Two tasks, 100 rounds each of latest() → append → save() through one façade.
    static let sharedFacadeReadModifyWrite = ConformanceCheck(
        "one façade shared by two tasks: read-modify-write loses no update"
    ) { checkpointer in
        let id = try uniqueThread("shared")
        let thread = try checkpointer.facade(id, as: ListState<PlainMessage>.self)
        try await thread.save(ListState())
        let outcomes = try await withThrowingTaskGroup(of: [(text: String, saved: Bool)].self) { group in
            for writer in 0..<2 {
                group.addTask {
                    var outcomes: [(text: String, saved: Bool)] = []
                    for round in 0..<100 {
                        let text = "writer \(writer) round \(round)"
                        var state = try await thread.latest() ?? ListState()
                        await Task.yield()  // the agent's work between the read and the save
                        state.messages.append(PlainMessage(id: round, text: text))
                        do {
                            try await thread.save(state)
                            outcomes.append((text, true))
                        } catch let error as CheckpointError where error.code == .conflict {
                            outcomes.append((text, false))
                        }
                    }
                    return outcomes
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let stored = Set(texts(try await checkpointer.facade(id, as: ListState<PlainMessage>.self).latest()))
        let saved = outcomes.filter(\.saved).map(\.text)
        let lost = saved.filter { !stored.contains($0) }
        try await require(lost.isEmpty, "\(lost.count) of \(saved.count) acknowledged saves were lost")
        try await require(stored.count == saved.count, "only acknowledged saves are stored: \(stored.count) vs \(saved.count)")
        try await require(outcomes.count == 200, "every round either saved or got conflict")
    }

    /// Two tasks, 100 rounds each of update { append } through one façade: all 200 land.
    static let sharedFacadeUpdate = ConformanceCheck("one façade shared by two tasks: update retries and loses nothing") {
        checkpointer in
        let id = try uniqueThread("update")
        let thread = try checkpointer.facade(id, as: ListState<PlainMessage>.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<2 {
                group.addTask {
                    for round in 0..<100 {
                        try await thread.update(startingWith: ListState(), maxAttempts: 1_000) { state in
                            await Task.yield()
                            state.messages.append(PlainMessage(id: round, text: "writer \(writer) round \(round)"))
                            state.turn += 1
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await checkpointer.facade(id, as: ListState<PlainMessage>.self).latest()
        try await require(final?.messages.count == 200, "200 updates give 200 messages, not \(final?.messages.count ?? 0)")
        try await require(final?.turn == 200, "every update saw the one before it")
        try await require(Set(texts(final)).count == 200, "no update was applied twice")
        try await requireError(.invalidArgument) {
            try await thread.update(startingWith: ListState(), maxAttempts: 0) { _ in }
        }
    }

    /// A snapshot saves after its own checkpoint, whatever the façade did meanwhile.
    static let snapshotsCarryTheirCheckpoint = ConformanceCheck("a snapshot saves after its own checkpoint") {
        checkpointer in
        let id = try uniqueThread("snapshot")
        let thread = try checkpointer.facade(id, as: ListState<PlainMessage>.self)
        try await thread.save(ListState(messages: [PlainMessage(id: 0, text: "zero")]))
        guard var first = try await thread.load(), var second = try await thread.load() else {
            throw ConformanceFailure(message: "the saved state is missing", file: #filePath, line: #line)
        }
        try await require(first.checkpointID == second.checkpointID, "two loads of one head carry the same checkpoint")
        first.state.messages.append(PlainMessage(id: 1, text: "one"))
        let saved = try await thread.save(first)
        try await require(saved.checkpointID > first.checkpointID, "the save returns its new checkpoint")
        second.state.messages.append(PlainMessage(id: 2, text: "two"))
        try await requireError(.conflict) { try await thread.save(second) }
        var next = saved
        next.state.messages.append(PlainMessage(id: 2, text: "two"))
        try await thread.save(next)
        let final = try await checkpointer.facade(id, as: ListState<PlainMessage>.self).latest()
        try await require(texts(final) == ["zero", "one", "two"], "the snapshot chain stored every change")
        // The plain API in one task, after another task saved: the stale read conflicts.
        _ = try await thread.latest()
        async let other = thread.update(startingWith: ListState()) { $0.turn = 7 }  // another task
        _ = try await other
        try await requireError(.conflict) {
            try await thread.save(ListState(messages: [PlainMessage(id: 9, text: "stale")]))
        }
        try await require(try await thread.latest()?.turn == 7, "the stale save wrote nothing")
    }

    /// Edits at any position are stored, whatever the element type's `==` says.
    static let editsAreStoredWhateverEqualitySays = ConformanceCheck(
        "an edit is stored whatever == says (id-only ==, not Equatable, Equatable)"
    ) { checkpointer in
        try await checkEdits(IDOnlyMessage.self, checkpointer)
        try await checkEdits(PlainMessage.self, checkpointer)
        try await checkEdits(TestMessage.self, checkpointer)
    }

    private static func checkEdits<Message: CheckedMessage>(_ type: Message.Type, _ checkpointer: any Checkpointer)
        async throws
    {
        let id = try uniqueThread("edit")
        let thread = try checkpointer.facade(id, as: ListState<Message>.self)
        var state = ListState<Message>(messages: (0..<5).map { Message(id: $0, text: "original \($0)") })
        try await thread.save(state)
        for position in [0, 2, 4] {
            state.messages[position].text = "edited \(position)"
            try await thread.save(state)
            let reader = try checkpointer.facade(id, as: ListState<Message>.self)
            try await require(
                texts(try await reader.latest()) == state.messages.map(\.text),
                "\(Message.self): the edit at \(position) is stored")
        }
        // An edit in a copy rebuilt from scratch (no shared storage) is found by its bytes too.
        state.messages = state.messages.map { Message(id: $0.id, text: $0.text) }
        state.messages[1].text = "rebuilt and edited"
        state.messages.append(Message(id: 5, text: "appended"))
        try await thread.save(state)
        let reader = try checkpointer.facade(id, as: ListState<Message>.self)
        try await require(
            texts(try await reader.latest()) == state.messages.map(\.text),
            "\(Message.self): an edit in a rebuilt list is stored")
    }

    /// Appending to a list of any element kind stores only the new element.
    static let appendsStoreOnlyNewElementsForAnyElement = ConformanceCheck(
        "an appended list stores only new elements (id-only ==, not Equatable, Equatable)", requires: .deltaStorage
    ) { checkpointer in
        try await checkAppends(IDOnlyMessage.self, checkpointer)
        try await checkAppends(PlainMessage.self, checkpointer)
        try await checkAppends(TestMessage.self, checkpointer)
    }

    private static func checkAppends<Message: CheckedMessage>(_ type: Message.Type, _ checkpointer: any Checkpointer)
        async throws
    {
        let id = try uniqueThread("grow")
        let thread = try checkpointer.facade(id, as: ListState<Message>.self)
        var state = ListState<Message>()
        var growth: [Int] = []
        var last = 0
        for index in 0..<20 {
            state.messages.append(Message(id: index, text: sampleText(300, seed: index)))
            state.turn = index
            try await thread.save(state)
            let now = try await checkpointer.storageStatistics(thread: id).payloadByteCount
            if index > 0 { growth.append(now - last) }
            last = now
        }
        try await require(
            growth.allSatisfy { $0 < 700 }, "\(Message.self): each save stored only the new ~330-byte message: \(growth)")
        // The same after a fresh read: the read's bytes are the base.
        let reader = try checkpointer.facade(id, as: ListState<Message>.self)
        guard var read = try await reader.latest() else {
            throw ConformanceFailure(message: "the state is missing", file: #filePath, line: #line)
        }
        read.messages.append(Message(id: 20, text: sampleText(300, seed: 20)))
        try await reader.save(read)
        let after = try await checkpointer.storageStatistics(thread: id).payloadByteCount
        try await require(after - last < 700, "\(Message.self): a save after a read stores only the new message")
        try await require(
            texts(try await thread.latest()) == read.messages.map(\.text), "\(Message.self): the list reads back whole")
    }

    /// An expired pause is told apart from a waiting one.
    static let expiredPauseIsNotAwaited = ConformanceCheck("a pause reads as waiting, answered or expired") {
        checkpointer in
        let id = try uniqueThread("expiry")
        let thread = try checkpointer.facade(id, as: ListState<PlainMessage>.self)
        try await require(thread.pauseStatus() == .notPaused, "a new thread is not paused")
        let expiresAt = Date().addingTimeInterval(3_600)
        let pause = try await thread.pause(ListState(), reason: "approval", prompt: "ok?", expiresAt: expiresAt)
        try await require(thread.pauseStatus().isWaiting(pause), "a fresh pause waits")
        try await require(thread.isAwaitingAnswer, "a fresh pause is awaited")
        try await require(
            thread.pauseStatus(at: expiresAt.addingTimeInterval(1)).isExpired(pause), "past its expiry it is expired")
        let reader = try checkpointer.facade(id, as: ListState<PlainMessage>.self)
        _ = try await reader.load()
        try await require(reader.pauseStatus(at: expiresAt).isExpired(pause), "at its expiry it is expired")
        try await requireError(.pauseExpired) {
            try await reader.resume(pause.id, with: "late", at: expiresAt.addingTimeInterval(1))
        }
        // The agent goes on without an answer: a save moves the thread past the pause.
        guard let snapshot = try await reader.load() else {
            throw ConformanceFailure(message: "the paused state is missing", file: #filePath, line: #line)
        }
        try await require(snapshot.pauseStatus(at: expiresAt).isExpired(pause), "a snapshot tells it expired too")
        try await reader.save(snapshot)
        try await require(reader.pauseStatus() == .notPaused, "after the save the thread is not paused")

        // isAwaitingAnswer follows the façade's clock: true before the expiry, false after.
        let clock = ManualDate(Date())
        let timed = try CheckpointThread<ListState<PlainMessage>>(
            checkpointer: checkpointer, id: id, sealing: CheckpointerConformance.sealing, now: { clock.now })
        let short = try await timed.update(startingWith: ListState()) { $0.turn = 1 }
        let timedPause = try await timed.pause(
            short.state, reason: "approval", prompt: "quick?", expiresAt: clock.now.addingTimeInterval(60))
        try await require(timed.isAwaitingAnswer, "before its expiry the pause is awaited")
        clock.now = clock.now.addingTimeInterval(61)
        try await require(!timed.isAwaitingAnswer, "after its expiry the pause is no longer awaited")
        try await require(timed.pauseStatus().isExpired(timedPause), "pauseStatus() uses the façade's clock")
        // An answered pause.
        _ = try await thread.latest()
        let answered = try await thread.pause(short.state, reason: "approval", prompt: "yes?")
        try await thread.resume(answered.id, with: "yes")
        try await require(thread.pauseStatus().isWaiting(answered), "the façade tells what it last read: still waiting")
        _ = try await thread.latest()
        guard case .answered(let pausedBy, let answer) = thread.pauseStatus() else {
            throw ConformanceFailure(message: "an answered pause reads as answered", file: #filePath, line: #line)
        }
        try await require(pausedBy.id == answered.id && answer.pauseID == answered.id, "the answer is the pause's")
        try await require(try thread.answer(as: String.self) == "yes", "the answer decodes")
    }
}

/// A clock a test moves by hand.
final class ManualDate: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Date
    init(_ value: Date) { self.value = value }
    var now: Date {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

extension PauseStatus {
    // Pauses compare by id: a sealed prompt reads back opened, so the values differ.
    func isWaiting(_ pause: Pause) -> Bool {
        if case .waiting(let waiting) = self { return waiting.id == pause.id }
        return false
    }

    func isExpired(_ pause: Pause) -> Bool {
        if case .expired(let expired) = self { return expired.id == pause.id }
        return false
    }
}

// MARK: - State evolution

/// The first version of an evolving state.
struct EvolvingStateV1: Codable, Sendable, Equatable {
    struct Message: Codable, Sendable, Equatable { var text: String }
    struct Profile: Codable, Sendable, Equatable {
        var first: String
        var last: String
    }
    var messages: [Message] = []
    var name = ""
    var count = "0"
    var profile = Profile(first: "", last: "")
    var a = 0
    var b = 0
    var legacy = "old"
}

/// The same state two deploys later: a field added with a default, one removed, one renamed,
/// one whose type changed, one split in two, two merged into one, and list elements that
/// gained a field.
struct EvolvingStateV3: Codable, Sendable, Equatable {
    struct Message: Codable, Sendable, Equatable {
        var text: String
        var language: String
    }
    struct Pair: Codable, Sendable, Equatable {
        var a: Int
        var b: Int
    }
    var messages: [Message] = []
    var title = ""
    var count = 0
    var first = ""
    var last = ""
    var pair = Pair(a: 0, b: 0)
    var mood = "neutral"
    var priority = 1
}

extension CheckpointerConformance {
    static let evolution = StateVersions(
        current: 3,
        upgrades: [
            StateUpgrade(from: 1) { state in
                state.rename("name", to: "title")
                if case .string(let text)? = state["count"] { state["count"] = .int(Int(text) ?? 0) }
                if let profile = try state["profile"]?.decode(as: EvolvingStateV1.Profile.self) {
                    state["first"] = .string(profile.first)
                    state["last"] = .string(profile.last)
                    state.remove("profile")
                }
                if case .int(let a)? = state["a"], case .int(let b)? = state["b"] {
                    state["pair"] = try JSONValue(encoding: EvolvingStateV3.Pair(a: a, b: b))
                    state.remove("a")
                    state.remove("b")
                }
                state.setDefault("neutral", for: "mood")
                state.remove("legacy")
                state.updateElements(of: "messages") { message in
                    if case .object(var fields) = message {
                        fields["language"] = "en"
                        message = .object(fields)
                    }
                }
            },
            // Version 2 had no structural change this code cares about; version 3 added `priority`.
            StateUpgrade(from: 2) { state in state.setDefault(1, for: "priority") },
        ])

    static let stateEvolution = ConformanceCheck(
        "old checkpoints (plain, paused, answered) load after the state type changed"
    ) { checkpointer in
        let id = try uniqueThread("evolve")
        let old = try checkpointer.facade(id, as: EvolvingStateV1.self)
        var v1 = EvolvingStateV1(
            messages: [.init(text: "hello")], name: "Ada", count: "41",
            profile: .init(first: "Ada", last: "Lovelace"), a: 1, b: 2)
        let first = try await old.save(v1)
        v1.messages.append(.init(text: "how much?"))
        v1.count = "42"
        let pause = try await old.pause(v1, reason: "approval", prompt: "refund?")

        let new = try CheckpointThread<EvolvingStateV3>(
            checkpointer: checkpointer, id: id, sealing: CheckpointerConformance.sealing, versions: evolution)
        let expected = EvolvingStateV3(
            messages: [.init(text: "hello", language: "en"), .init(text: "how much?", language: "en")], title: "Ada",
            count: 42, first: "Ada", last: "Lovelace", pair: .init(a: 1, b: 2), mood: "neutral", priority: 1)
        try await require(try await new.latest() == expected, "the paused v1 head loads as v3")
        try await require(new.pauseStatus().isWaiting(pause), "the pause survives the upgrade")
        try await require(try await new.state(at: first).count == 41, "an older v1 checkpoint loads as v3")
        try await new.resume(pause.id, with: "yes")
        guard var upgraded = try await new.latest() else {
            throw ConformanceFailure(message: "the state is missing", file: #filePath, line: #line)
        }
        try await require(try new.answer(as: String.self) == "yes", "the answer reads under the new type")
        upgraded.messages.append(.init(text: "refunded", language: "en"))
        upgraded.mood = "happy"
        try await new.save(upgraded)
        let reader = try CheckpointThread<EvolvingStateV3>(
            checkpointer: checkpointer, id: id, sealing: CheckpointerConformance.sealing, versions: evolution)
        try await require(try await reader.latest() == upgraded, "the first save after an upgrade stores the new shape")
        // The old checkpoints were not rewritten: the v1 façade still reads them.
        try await require(try await old.state(at: first) == EvolvingStateV1(
            messages: [.init(text: "hello")], name: "Ada", count: "41",
            profile: .init(first: "Ada", last: "Lovelace"), a: 1, b: 2), "old checkpoints are never rewritten")
        // Later saves store only what changed again.
        let before = try await checkpointer.storageStatistics(thread: id).payloadByteCount
        upgraded.messages.append(.init(text: sampleText(300, seed: 3), language: "en"))
        try await reader.save(upgraded)
        let growth = try await checkpointer.storageStatistics(thread: id).payloadByteCount - before
        if declares(.deltaStorage) {
            try await require(growth < 700, "after the upgrade, an append stores only the new element (\(growth) bytes)")
        }
        // A façade of an older version refuses a newer checkpoint instead of misreading it.
        let error = try await requireError(.decodingFailed) { try await old.latest() }
        try await require(error.message.contains("newer"), "the error says a newer version wrote it: \(error.message)")
        // Without an upgrade, the error says what to do.
        let unversioned = try checkpointer.facade(id, as: EvolvingStateV3.self)
        let missing = try await requireError(.decodingFailed) { try await unversioned.state(at: first) }
        try await require(missing.message.contains("StateVersions"), "a missing property points at StateVersions")
    }
}

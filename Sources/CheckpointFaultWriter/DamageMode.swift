// `damage DIR FILES SEED [FIRST]`: random byte damage of a SQLite file.
//
// Builds DIR/reference.db once (kept for later runs with the same DIR): four threads of an
// agent's conversation through the public façade (messages appended over 12 to 30 turns,
// a plan and a scratchpad rewritten now and then, a tool-call table, metadata of every kind,
// a pause answered and the conversation going on, a sub-agent's namespace, a fork from turn
// 10, two pauses still waiting in the inbox). What every read of it returns is recorded
// through the public API: each checkpoint by id (channels' bytes, metadata, pause, answer,
// parent, step, time), each head, each history page of 10, three inbox queries.
//
// Then, for each file number K from FIRST to FILES - 1, a copy of the reference whose bytes
// are changed at 4 to 50 random offsets (never in the first 100 bytes, the header, so that
// the file stays a database most of the time; the offsets and new bytes come from SEED and
// K alone, so one file is reproduced by `damage DIR K+1 SEED K` on the same reference) is
// opened and read as above, and each read classified:
//   exact    the same value as from the reference
//   error    a CheckpointError (counted by code)
//   missing  nil where the checkpoint exists, or a page that omits entries of the reference
//   wrong    any other value, returned without an error: the damage went unnoticed
// (Opening the file counts as a read too; a file that does not open has no other reads.)
//
// Prints "start K" before a file and "file K reads R exact E missing M wrong W errors
// CODE=N,... wrong-kinds WHAT=N,..." after it (so that a crash names its file), "wrong K ..." with the offsets for
// each wrong read (the first 20), and exits with status 3 ("hang K") when one file takes
// more than a minute.

import CheckpointSQLite
import Checkpointing
import Dispatch
import Foundation
import Synchronization

// MARK: The reference

struct DamageMessage: Codable, Sendable, Equatable {
    var role: String
    var text: String
    var tokens: Int
}

struct DamageState: Codable, Sendable, Equatable {
    var messages: [DamageMessage] = []
    var turn = 0
    var plan: [String] = []
    var scratchpad = ""
    var toolCalls: [String: Int] = [:]
}

struct RefundPrompt: Codable, Sendable {
    var amount: Int
    var currency: String
    var reason: String
}

struct ReviewerDecision: Codable, Sendable {
    var approved: Bool
    var note: String
}

private let words = [
    "refund", "order", "#4711", "shipping", "the", "a", "invoice", "café", "naïve", "Zürich", "日本語のテキスト",
    "emoji 🚀✨", "\"quoted\"", "back\\slash", "tab\there", "line\nbreak", "tracking", "déjà vu", "policy", "agent",
    "tool:search", "{\"json\": [1, 2]}", "42.50 EUR", "customer", "warehouse", "approve?", "Ω≈ç√", "<b>html</b>",
]

private func sentence(_ rng: inout SplitMix64, words count: Int) -> String {
    (0..<count).map { _ in words[Int.random(in: 0..<words.count, using: &rng)] }.joined(separator: " ")
}

/// One conversation: `turns` turns saved through the façade, optionally pausing at `pauseAt`
/// (answered, and going on, when `answered`; else it is the last turn and stays waiting).
private func converse(
    _ store: any Checkpointer, _ id: String, namespace: String = "", turns: ClosedRange<Int>, from start: DamageState,
    pauseAt: Int? = nil, reason: String = "refund-approval", answered: Bool = true, branch: String = "main",
    rng: inout SplitMix64, thread existing: CheckpointThread<DamageState>? = nil
) async throws -> (CheckpointThread<DamageState>, DamageState) {
    let thread = try existing ?? store.thread(ThreadID(id), namespace: namespace, as: DamageState.self)
    var state = start
    for turn in turns {
        let role = turn % 2 == 1 ? "user" : "assistant"
        state.turn = turn
        state.messages.append(
            DamageMessage(
                role: role, text: sentence(&rng, words: Int.random(in: 8...60, using: &rng)),
                tokens: Int.random(in: 10...900, using: &rng)))
        if turn % 5 == 0 { state.plan = (0..<Int.random(in: 1...4, using: &rng)).map { _ in sentence(&rng, words: 5) } }
        if turn % 3 == 0 { state.scratchpad = sentence(&rng, words: Int.random(in: 3...30, using: &rng)) }
        if turn % 4 == 0 { state.toolCalls["search", default: 0] += 1 }
        if turn % 7 == 0 { state.toolCalls["calculator", default: 0] += 1 }
        let metadata: Metadata = [
            "turn": .int(turn), "role": .string(role), "score": .double(Double(turn) / 7 + 0.25),
            "final": .bool(turn == turns.upperBound), "source": turn % 6 == 0 ? .null : .string("agent"),
            "branch": .string(branch),
        ]
        if turn == pauseAt {
            let pause = try await thread.pause(
                state, reason: reason,
                prompt: RefundPrompt(amount: 42 + turn, currency: "EUR", reason: sentence(&rng, words: 6)),
                expiresAt: answered ? nil : Date().addingTimeInterval(30 * 86_400), metadata: metadata)
            guard answered else { continue }
            try await thread.resume(pause.id, with: ReviewerDecision(approved: true, note: sentence(&rng, words: 4)))
            guard try await thread.latest() == state, case .answered = thread.pauseStatus() else {
                fail("the reference's answered pause does not read back")
            }
        } else {
            try await thread.save(state, metadata: metadata)
        }
    }
    guard try await thread.latest() == state else { fail("the reference's thread \(id) does not read back as written") }
    return (thread, state)
}

private func buildReference(path: String) async throws {
    var rng = SplitMix64(seed: 20_261_202)
    let store = try await SQLiteCheckpointer(configuration: .init(path: path))
    // A support conversation: a refund approved by a person at turn 12, then on to turn 30.
    _ = try await converse(store, "acme:support", turns: 1...30, from: DamageState(), pauseAt: 12, rng: &rng)
    // A research agent and its planner sub-agent; the agent waits for a person at turn 26.
    _ = try await converse(
        store, "acme:research", turns: 1...26, from: DamageState(), pauseAt: 26, reason: "source-check", answered: false,
        rng: &rng)
    _ = try await converse(store, "acme:research", namespace: "planner", turns: 1...18, from: DamageState(), rng: &rng)
    // A sales conversation of 24 turns, rewound to turn 10 and forked for 8 turns.
    let (sales, _) = try await converse(store, "globex:sales", turns: 1...24, from: DamageState(), rng: &rng)
    guard let turn10 = try await sales.history(limit: 1, where: ["turn": 10]).first else {
        fail("the reference's turn 10 is missing")
    }
    let rewound = try await sales.rewind(to: turn10.id)
    _ = try await converse(store, "globex:sales", turns: 11...18, from: rewound, branch: "fork", rng: &rng, thread: sales)
    // An operations agent that waits for a deploy approval after 12 turns.
    _ = try await converse(
        store, "initech:ops", turns: 1...12, from: DamageState(), pauseAt: 12, reason: "deploy-approval", answered: false,
        rng: &rng)
    try await store.close()
}

/// The threads and namespaces of the reference.
private let places: [(thread: String, namespace: String)] = [
    ("acme:support", ""), ("acme:research", ""), ("acme:research", "planner"), ("globex:sales", ""), ("initech:ops", ""),
]

// MARK: Reads and their classification

enum DamageRead: Sendable {
    case head(ThreadID, String)
    case checkpoint(ThreadID, String, CheckpointID)
    case history(ThreadID, String, before: CheckpointID?)
    case inbox(InboxQuery)

    var label: String {
        switch self {
        case .head(let thread, let namespace): "head of \(thread)/\(namespace)"
        case .checkpoint(let thread, let namespace, let id): "checkpoint \(id) of \(thread)/\(namespace)"
        case .history(let thread, let namespace, let before):
            "history page of \(thread)/\(namespace) before \(before.map { "\($0)" } ?? "the head")"
        case .inbox(let query): "inbox (reason \(query.reason ?? "any"), tenant \(query.tenant ?? "any"))"
        }
    }
}

enum DamageAnswer: Sendable {
    case checkpoint(Checkpoint?)
    case page([CheckpointSummary])
    case inbox(InboxPage)
}

private func perform(_ read: DamageRead, on store: any Checkpointer) async throws -> DamageAnswer {
    switch read {
    case .head(let thread, let namespace):
        .checkpoint(try await store.checkpoint(thread: thread, namespace: namespace, id: nil))
    case .checkpoint(let thread, let namespace, let id):
        .checkpoint(try await store.checkpoint(thread: thread, namespace: namespace, id: id))
    case .history(let thread, let namespace, let before):
        .page(try await store.history(thread: thread, namespace: namespace, before: before, limit: 10, where: [:]))
    case .inbox(let query):
        .inbox(try await store.pausedThreads(query))
    }
}

/// What differs between two checkpoints (the first thing found), or `nil` when nothing does.
private func difference(_ got: Checkpoint, _ expected: Checkpoint) -> Outcome? {
    func wrong(_ kind: String, _ detail: String? = nil) -> Outcome { .wrong(kind: kind, detail: detail ?? kind) }
    if got.id != expected.id { return wrong("checkpoint id") }
    if got.thread != expected.thread || got.namespace != expected.namespace { return wrong("thread or namespace") }
    if got.parentID != expected.parentID { return wrong("parent") }
    if got.step != expected.step { return wrong("step") }
    if got.createdAt != expected.createdAt { return wrong("creation time") }
    if got.metadata != expected.metadata { return wrong("metadata") }
    if got.pause != expected.pause { return wrong("pause") }
    if got.answer != expected.answer { return wrong("answer") }
    if Set(got.channels.keys) != Set(expected.channels.keys) { return wrong("channel names") }
    for (name, value) in expected.channels.sorted(by: { $0.key < $1.key }) where got.channels[name] != value {
        switch (got.channels[name], value) {
        case (.list(let a)?, .list(let b)):
            if a.count != b.count {
                return wrong("channel \(name) length", "channel \(name): \(a.count) elements, not \(b.count)")
            }
            let index = a.indices.first { a[$0] != b[$0] } ?? 0
            return wrong("channel \(name) element", "channel \(name): element \(index) differs")
        default: return wrong("channel \(name) value", "channel \(name) differs")
        }
    }
    return nil
}

enum Outcome {
    /// `kind` names what differed (`metadata`, `channel messages element`, `history page`...).
    case exact, missing, wrong(kind: String, detail: String), error(String)
    /// A state that was written, but not the one asked for: an older head, a checkpoint before
    /// its answer, a pause already answered listed as waiting. That is a row lost whole or a
    /// deleted one come back (damage to SQLite's b-tree, not to a row's content); it is a wrong
    /// read unless SQLite's integrity_check flags the file.
    case stale(kind: String)
}

/// Every checkpoint written, by thread and namespace, for telling a stale read from a wrong one.
struct Written: Sendable {
    var checkpoints: [String: [Checkpoint]] = [:]

    static func place(_ thread: ThreadID, _ namespace: String) -> String { "\(thread.rawValue)/\(namespace)" }

    init(_ expected: [(DamageRead, DamageAnswer)]) {
        for (read, answer) in expected {
            if case .checkpoint(let thread, let namespace, _) = read, case .checkpoint(let checkpoint?) = answer {
                checkpoints[Self.place(thread, namespace), default: []].append(checkpoint)
            }
        }
    }

    /// Whether `checkpoint` is one that was written (exactly), or was before its answer.
    func wasWritten(_ checkpoint: Checkpoint) -> Bool {
        (checkpoints[Self.place(checkpoint.thread, checkpoint.namespace)] ?? []).contains { written in
            var unanswered = written
            unanswered.answer = nil
            return difference(checkpoint, written) == nil || difference(checkpoint, unanswered) == nil
        }
    }

    /// Whether an inbox item names a checkpoint written with that pause.
    func wasWaiting(_ item: PausedThread) -> Bool {
        (checkpoints[Self.place(item.thread, item.namespace)] ?? []).contains {
            $0.id == item.checkpointID && $0.pause == item.pause
        }
    }
}

/// Whether `got` is `expected` with some entries left out (in order, none added or changed).
private func omits<T: Equatable>(_ got: [T], _ expected: [T]) -> Bool {
    guard got.count < expected.count else { return false }
    var rest = expected[...]
    for item in got {
        guard let found = rest.firstIndex(of: item) else { return false }
        rest = rest[(found + 1)...]
    }
    return true
}

private func classify(_ got: DamageAnswer, _ expected: DamageAnswer, written: Written) -> Outcome {
    switch (got, expected) {
    case (.checkpoint(let got), .checkpoint(let expected)):
        switch (got, expected) {
        case (nil, nil): return .exact
        case (nil, _?): return .missing
        case (_?, nil): return .wrong(kind: "checkpoint that does not exist", detail: "a checkpoint where there is none")
        case (let got?, let expected?):
            guard let difference = difference(got, expected) else { return .exact }
            if written.wasWritten(got) { return .stale(kind: got.id == expected.id ? "answer lost" : "older head") }
            return difference
        }
    case (.page(let got), .page(let tail)):
        let expected = Array(tail.prefix(10))
        if got == expected { return .exact }
        if omits(got, tail) { return .missing }
        return .wrong(
            kind: "history page", detail: "a history page of \(got.count) entries that differ from the \(expected.count) written")
    case (.inbox(let got), .inbox(let expected)):
        if got == expected { return .exact }
        if got.next == expected.next || got.next == nil, omits(got.items, expected.items) { return .missing }
        if got.items.allSatisfy(written.wasWaiting) { return .stale(kind: "answered pause listed") }
        return .wrong(
            kind: "inbox page",
            detail: "an inbox page of \(got.items.count) items that differ from the \(expected.items.count) written")
    default:
        return .wrong(kind: "answer of another kind", detail: "an answer of another kind")
    }
}

struct Tally {
    var reads = 0
    var exact = 0
    var missing = 0
    var wrong = 0
    var stale = 0
    var errors: [String: Int] = [:]
    /// Wrong reads by what differed.
    var wrongKinds: [String: Int] = [:]
    /// One description per error code other than corruptData.
    var unusual: [String: String] = [:]

    mutating func count(_ outcome: Outcome) {
        reads += 1
        switch outcome {
        case .exact: exact += 1
        case .missing: missing += 1
        case .wrong(let kind, _):
            wrong += 1
            wrongKinds[kind, default: 0] += 1
        case .error(let code): errors[code, default: 0] += 1
        case .stale(let kind):
            stale += 1
            wrongKinds["stale " + kind, default: 0] += 1
        }
    }

    var errorList: String { Self.list(errors) }
    var wrongList: String { Self.list(wrongKinds) }

    /// `key=count,...` (spaces in keys become `_`), or `-` for none.
    static func list(_ counts: [String: Int]) -> String {
        counts.isEmpty
            ? "-"
            : counts.sorted { $0.key < $1.key }.map { "\($0.key.replacingOccurrences(of: " ", with: "_"))=\($0.value)" }
                .joined(separator: ",")
    }
}

private func errorCode(_ error: any Error) -> String {
    if let error = error as? CheckpointError { return "\(error.code)" }
    return "other:\(type(of: error))"
}

/// Every read of the reference, in the order they are made, with what the reference answers.
private func expectations(of path: String) async throws -> [(DamageRead, DamageAnswer)] {
    let store = try await SQLiteCheckpointer(configuration: .init(path: path))
    var reads: [DamageRead] = []
    for place in places {
        let thread = try ThreadID(place.thread)
        reads.append(.head(thread, place.namespace))
        var before: CheckpointID?
        while true {
            reads.append(.history(thread, place.namespace, before: before))
            let page = try await store.history(thread: thread, namespace: place.namespace, before: before, limit: 10)
            reads += page.map { .checkpoint(thread, place.namespace, $0.id) }
            guard page.count == 10, let last = page.last else { break }
            before = last.id
        }
    }
    reads.append(.inbox(InboxQuery(limit: 100)))
    reads.append(.inbox(InboxQuery(reason: "deploy-approval", limit: 100)))
    reads.append(.inbox(InboxQuery(tenant: "acme", limit: 1)))
    var answers: [(DamageRead, DamageAnswer)] = []
    for read in reads {
        // A history page is compared with the whole written history before it: a page that
        // lists only written entries, in order, but skips some (rows lost from the file's
        // b-tree, which no checksum of a row can vouch for) is missing data, not wrong data.
        if case .history(let thread, let namespace, let before) = read {
            let tail = try await store.history(thread: thread, namespace: namespace, before: before, limit: 10_000)
            answers.append((read, .page(tail)))
        } else {
            answers.append((read, try await perform(read, on: store)))
        }
    }
    try await store.close()
    let checkpoints = answers.filter { if case .checkpoint(_, _, _) = $0.0 { true } else { false } }.count
    guard checkpoints == 118 else { fail("the reference holds \(checkpoints) checkpoints, not 118") }
    return answers
}

// MARK: The run

/// Ends the process (status 3) when one file takes longer than `limit`: a hang is a failure too.
final class Watchdog: @unchecked Sendable {
    // The semaphore is signalled once per file; the watchdog's thread waits on it with a deadline.
    private let progress = DispatchSemaphore(value: 0)
    private let current = Atomic<Int>(-1)

    init(limit: DispatchTimeInterval) {
        Thread.detachNewThread { [self] in
            while true {
                if progress.wait(timeout: .now() + limit) == .timedOut {
                    emit("hang \(current.load(ordering: .relaxed))")
                    exit(3)
                }
            }
        }
    }

    func starting(_ file: Int) {
        current.store(file, ordering: .relaxed)
        progress.signal()
    }
}

/// Changes 4 to 50 bytes of `bytes` at distinct random offsets past the first 100.
func damage(_ bytes: inout [UInt8], seed: UInt64, file: Int) -> [(offset: Int, from: UInt8, to: UInt8)] {
    var rng = SplitMix64(seed: seed ^ (UInt64(file) &* 0xD1B5_4A32_D192_ED03))
    let count = Int.random(in: 4...50, using: &rng)
    var offsets: Set<Int> = []
    while offsets.count < count { offsets.insert(Int.random(in: 100..<bytes.count, using: &rng)) }
    return offsets.sorted().map { offset in
        let from = bytes[offset]
        bytes[offset] ^= UInt8.random(in: 1...255, using: &rng)
        return (offset, from, bytes[offset])
    }
}

private func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

func runDamage(directory: String, files: Int, seed: UInt64, first: Int) async throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let reference = directory + "/reference.db"
    if !FileManager.default.fileExists(atPath: reference) {
        try await buildReference(path: reference + ".building")
        for suffix in ["-wal", "-journal"] where FileManager.default.fileExists(atPath: reference + ".building" + suffix) {
            fail("the reference was closed with a \(suffix) file left: it would not be one file")
        }
        try FileManager.default.moveItem(atPath: reference + ".building", toPath: reference)
        try? FileManager.default.removeItem(atPath: reference + ".building-shm")
    }
    let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: reference)))
    let copy = directory + "/damaged.db"

    // What the reference answers, read from a copy of it; then the same reads of another
    // undamaged copy must all be exact (the classification's own check).
    removeDatabase(copy)
    try Data(original).write(to: URL(fileURLWithPath: copy))
    let expected = try await expectations(of: copy)
    let written = Written(expected)
    removeDatabase(copy)
    try Data(original).write(to: URL(fileURLWithPath: copy))
    let control = await readAll(copy, expected, written: written, file: -1, damaged: [])
    removeDatabase(copy)
    guard control.exact == control.reads else {
        fail("an undamaged copy of the reference does not read back exactly: \(control)")
    }
    emit("reference bytes \(original.count) reads \(control.reads) per file")

    let watchdog = Watchdog(limit: .seconds(60))
    for file in first..<files {
        watchdog.starting(file)
        emit("start \(file)")
        var bytes = original
        let changes = damage(&bytes, seed: seed, file: file)
        removeDatabase(copy)
        try Data(bytes).write(to: URL(fileURLWithPath: copy))
        let tally = await readAll(copy, expected, written: written, file: file, damaged: changes)
        removeDatabase(copy)
        emit(
            "file \(file) changed \(changes.count) reads \(tally.reads) exact \(tally.exact) missing \(tally.missing) wrong \(tally.wrong) errors \(tally.errorList) wrong-kinds \(tally.wrongList) stale \(tally.stale)"
        )
    }
}

/// Wrong reads told so far (the first 20 are printed), and errors of another code than
/// corruptData (the first 20 kinds, one per file).
private let wrongTold = Atomic<Int>(0)
private let unusualTold = Atomic<Int>(0)

private func readAll(
    _ path: String, _ expected: [(DamageRead, DamageAnswer)], written: Written, file: Int,
    damaged: [(offset: Int, from: UInt8, to: UInt8)]
) async -> Tally {
    var tally = Tally()
    let store: SQLiteCheckpointer
    do {
        store = try await SQLiteCheckpointer(configuration: .init(path: path))
        tally.count(.exact)
    } catch {
        tally.count(.error("open:" + errorCode(error)))
        if (error as? CheckpointError)?.code != .corruptData, unusualTold.add(1, ordering: .relaxed).newValue <= 20 {
            emit("error \(file) open:\(errorCode(error)): \(error)")
        }
        return tally
    }
    for (read, answer) in expected {
        let outcome: Outcome
        do {
            outcome = classify(try await perform(read, on: store), answer, written: written)
        } catch {
            outcome = .error(errorCode(error))
            if let error = error as? CheckpointError, error.code == .corruptData {
            } else if tally.unusual[errorCode(error)] == nil {
                tally.unusual[errorCode(error)] = "\(read.label): \(error)"
            }
        }
        tally.count(outcome)
        if case .wrong(_, let what) = outcome, wrongTold.add(1, ordering: .relaxed).newValue <= 20 {
            let offsets = damaged.map { "\($0.offset):\(String($0.from, radix: 16))>\(String($0.to, radix: 16))" }
            emit("wrong \(file) \(read.label): \(what); bytes changed at \(offsets.joined(separator: " "))")
        }
    }
    // A stale read is tolerated only in a file SQLite's own check flags as damaged.
    if tally.stale > 0 {
        let integrity = (try? await store.pragma("integrity_check")) ?? "unreadable"
        if integrity == "ok" {
            tally.wrong += tally.stale
            tally.wrongKinds["stale in a file integrity_check passes", default: 0] += tally.stale
            tally.stale = 0
            emit("wrong \(file) stale reads in a file integrity_check passes")
        }
    }
    for (code, description) in tally.unusual where unusualTold.add(1, ordering: .relaxed).newValue <= 20 {
        emit("error \(file) \(code): \(description)")
    }
    do { try await store.close() } catch { tally.errors["close:" + errorCode(error), default: 0] += 1 }
    return tally
}

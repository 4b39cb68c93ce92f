import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A whole-state storage in a dictionary, written as a third party would (public API only),
/// with the inbox as an option: the conformance suite runs it with and without.
actor DictionaryStorage: CheckpointStorage {
    private struct Space {
        var checkpoints: [CheckpointID: Checkpoint] = [:]
        var head: CheckpointID?
    }

    private struct Key: Hashable {
        var thread: ThreadID
        var namespace: [UInt8]
    }

    private var spaces: [Key: Space] = [:]
    private let offersInbox: Bool
    /// When set, a read returns this checkpoint instead of the one stored (a damaged index).
    private var misdirected: Checkpoint?

    init(inbox: Bool) { offersInbox = inbox }

    func misdirectReads(to checkpoint: Checkpoint?) { misdirected = checkpoint }

    /// When set, counting throws an error of Foundation's, as a storage's file calls might.
    private var failsWithForeignError = false

    func failWithForeignError() { failsWithForeignError = true }

    private func key(_ thread: ThreadID, _ namespace: String) -> Key { Key(thread: thread, namespace: Array(namespace.utf8)) }

    func append(_ checkpoint: Checkpoint, checking rules: AppendRules) throws {
        let key = key(checkpoint.thread, checkpoint.namespace)
        let space = spaces[key]
        try rules.check(head: space?.head) { space?.checkpoints[$0] != nil }
        spaces[key, default: Space()].checkpoints[checkpoint.id] = checkpoint
        spaces[key]?.head = checkpoint.id
    }

    func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) -> Checkpoint? {
        if let misdirected { return misdirected }
        guard let space = spaces[key(thread, namespace)], let id = id ?? space.head else { return nil }
        return space.checkpoints[id]
    }

    func records(thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int) -> [CheckpointRecord] {
        let all = Array(spaces[key(thread, namespace)]?.checkpoints.values ?? [:].values)
        return all.filter { checkpoint in before.map { checkpoint.id < $0 } ?? true }.sorted { $0.id > $1.id }
            .prefix(limit).map { CheckpointRecord(summary: $0.summary, pause: $0.pause, answer: $0.answer) }
    }

    func recordAnswer(_ answer: PauseAnswer, thread: ThreadID, namespace: String, checking rules: AnswerRules) throws {
        let key = key(thread, namespace)
        let space = spaces[key]
        let head = space?.head.flatMap { space?.checkpoints[$0] }
        let target = try rules.check(head: head?.id, pause: head?.pause) {
            space?.checkpoints.values.contains { $0.answer?.pauseID == rules.pauseID } == true
        }
        spaces[key]?.checkpoints[target]?.answer = answer
    }

    func delete(_ ids: [CheckpointID], thread: ThreadID, namespace: String) {
        for id in ids { spaces[key(thread, namespace)]?.checkpoints[id] = nil }
    }

    func deleteThread(_ thread: ThreadID) {
        spaces = spaces.filter { $0.key.thread != thread }
    }

    func storageStatistics(thread: ThreadID) throws -> StorageStatistics {
        if failsWithForeignError { throw CocoaError(.fileReadNoSuchFile) }
        var statistics = StorageStatistics(checkpointCount: 0, payloadCount: 0, payloadByteCount: 0)
        for (key, space) in spaces where key.thread == thread {
            for checkpoint in space.checkpoints.values {
                statistics.checkpointCount += 1
                for value in checkpoint.channels.values {
                    statistics.payloadCount += 1
                    switch value {
                    case .value(let data): statistics.payloadByteCount += data.count
                    case .list(let elements): statistics.payloadByteCount += elements.reduce(0) { $0 + $1.count }
                    }
                }
            }
        }
        return statistics
    }

    func threads(_ query: ThreadQuery) -> [ThreadSummary] {
        spaces.values.compactMap { space in
            guard let head = space.head.flatMap({ space.checkpoints[$0] }) else { return nil }
            let times = space.checkpoints.values.flatMap { [$0.createdAt] + ($0.answer.map { [$0.answeredAt] } ?? []) }
            return ThreadSummary(
                thread: head.thread, namespace: head.namespace, headID: head.id, lastActivity: times.max() ?? head.createdAt,
                checkpointCount: space.checkpoints.count, waitingPause: head.answer == nil ? head.pause : nil)
        }
    }

    func waitingPauses(_ query: InboxQuery) throws -> [PausedThread] {
        guard offersInbox else { throw CheckpointError(.unsupported, "no inbox here") }
        return spaces.values.compactMap { space in
            guard let head = space.head.flatMap({ space.checkpoints[$0] }), let pause = head.pause, head.answer == nil
            else { return nil }
            return PausedThread(thread: head.thread, namespace: head.namespace, checkpointID: head.id, pause: pause)
        }
    }
}

@Suite("StorageCheckpointer: a whole-state storage passes what it declares")
struct StorageCheckpointerTests {
    @Test(arguments: CheckpointerConformance.checks(for: [.inbox]))
    func conformsWithTheInbox(_ check: ConformanceCheck) async throws {
        let checkpointer = StorageCheckpointer(DictionaryStorage(inbox: true))
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    @Test(arguments: CheckpointerConformance.checks(for: []))
    func conformsWithoutTheInbox(_ check: ConformanceCheck) async throws {
        let checkpointer = StorageCheckpointer(DictionaryStorage(inbox: false))
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    @Test("the suite leaves out only what a backend does not declare")
    func capabilitiesSelectChecks() {
        let everything = Set(CheckpointerConformance.checks.map(\.name))
        let whole = Set(CheckpointerConformance.checks(for: [.inbox]).map(\.name))
        let bare = Set(CheckpointerConformance.checks(for: []).map(\.name))
        #expect(Set(CheckpointerConformance.checks(for: .all).map(\.name)) == everything)
        #expect(everything.subtracting(whole) == [
            "an unchanged channel is not stored again", "an appended list stores only new elements",
            "an appended list stores only new elements (id-only ==, not Equatable, Equatable)",
        ])
        #expect(whole.subtracting(bare) == [
            "the inbox filters by reason and tenant, oldest first", "inbox pages list each thread once while pauses arrive",
        ])
        #expect(bare.subtracting(whole) == ["a backend without the inbox says unsupported"])
    }

    @Test("a storage that returns another checkpoint than the one asked for gives corruptData")
    func misdirectedReadIsCorruptData() async throws {
        let storage = DictionaryStorage(inbox: true)
        let checkpointer = StorageCheckpointer(storage)
        let thread = try ThreadID("t1")
        let other = try ThreadID("t2")
        let first = CheckpointWrite(thread: thread, parentID: nil, step: 0, channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(first)
        let foreign = CheckpointWrite(thread: other, parentID: nil, step: 0, channels: ["v": .value(Data("2".utf8))])
        try await checkpointer.put(foreign)
        let stray = try #require(try await checkpointer.head(thread: other))
        await storage.misdirectReads(to: stray)
        await #expect(throws: CheckpointError.self) { try await checkpointer.head(thread: thread) }
        do {
            _ = try await checkpointer.checkpoint(thread: other, namespace: "", id: first.id)
            Issue.record("a read of another id was accepted")
        } catch let error as CheckpointError {
            #expect(error.code == .corruptData)
        }
        // A put that needs its parent's channels does not build on the wrong parent either.
        let next = CheckpointWrite(thread: thread, parentID: first.id, step: 1, channels: ["v": .unchanged])
        await #expect(throws: CheckpointError.self) { try await checkpointer.put(next) }
        await storage.misdirectReads(to: nil)
        #expect(try await checkpointer.head(thread: thread)?.id == first.id, "nothing was written")
    }

    @Test("an error of a storage's that is not a CheckpointError becomes backendFailure, naming the primitive")
    func foreignErrorsAreTyped() async throws {
        let storage = DictionaryStorage(inbox: true)
        let checkpointer = StorageCheckpointer(storage)
        await storage.failWithForeignError()
        do {
            _ = try await checkpointer.storageStatistics(thread: ThreadID("t"))
            Issue.record("the failure was not reported")
        } catch let error as CheckpointError {
            #expect(error.code == .backendFailure && !error.isRetryable)
            #expect(error.message.contains("storageStatistics") && error.underlying is CocoaError)
        }
    }

    @Test("closing twice is not an error; later calls fail with closed")
    func closeOnce() async throws {
        let checkpointer = StorageCheckpointer(DictionaryStorage(inbox: true))
        try await checkpointer.close()
        try await checkpointer.close()
        do {
            _ = try await checkpointer.history(thread: ThreadID("t"), limit: 1)
            Issue.record("a call after close succeeded")
        } catch let error as CheckpointError {
            #expect(error.code == .closed)
        }
    }
}

import Checkpointing
import CheckpointEncryption
import CheckpointingTestKit
import CheckpointPostgres
import CheckpointSQLite
import Foundation
import Testing

@Suite("Moving from SQLite to Postgres")
struct CopyToPostgresTests {
    /// An agent that outgrew one machine: 1,000 threads on SQLite (some paused, some answered,
    /// some sealed) are copied to Postgres; the copy is interrupted once and goes on; the
    /// listing and the inbox are the same in both, and the agents go on on Postgres.
    @Test func aThousandThreadsMoveWithTheirPausesAndSealedState() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let keys = try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])
        let sealing = Sealing.wholeState(SodiumSealer(keys: keys))
        let source = try await SQLiteCheckpointer(configuration: .init(path: folder.appendingPathComponent("agent.db").path))
        let tenant = "move"
        func facade(_ on: any Checkpointer, _ index: Int) throws -> CheckpointThread<TestAgentState> {
            try on.thread("\(tenant):\(index)", as: TestAgentState.self, sealing: index % 7 == 0 ? sealing : nil)
        }
        var expected: [Int: TestAgentState] = [:]
        for index in 0..<1000 {
            let agent = try facade(source, index)
            var state = TestAgentState(document: index % 7 == 0 ? "secret \(index)" : "")
            for turn in 0..<3 {
                state.messages.append(sampleMessage(index + turn))
                state.turn = turn
                try await agent.save(state)
            }
            if index % 10 == 0 {
                let pause = try await agent.pause(state, reason: "approve", prompt: "refund \(index)?")
                if index % 20 == 0 { try await agent.resume(pause.id, with: "yes") }
            }
            expected[index] = state
        }
        let target = try await TestServer.checkpointer()

        // Interrupted after 300 threads (the process stopped), then run again.
        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await source.copy(to: target, tenant: tenant) { summary in
                if summary.namespaceCount == 300 { throw Stop() }
            }
        }
        let copied = try await source.copy(to: target, tenant: tenant)
        #expect(copied.namespaceCount == 1000)
        #expect(copied.skippedCount >= 300 * 3)
        #expect(copied.checkpointCount + copied.skippedCount == 1000 * 3 + 100)
        func listing(_ on: any Checkpointer) async throws -> [ThreadSummary] {
            var query = ThreadQuery(tenant: tenant, limit: 300)
            var items: [ThreadSummary] = []
            while true {
                let page = try await on.threads(query)
                items += page.items
                guard let next = page.next else { return items }
                query.after = next
            }
        }
        let (copiedList, originalList) = (try await listing(target), try await listing(source))
        #expect(originalList.count == 1000)
        #expect(sameListing(copiedList, originalList), "the listings differ")
        let sourceInbox = try await source.pausedThreads(InboxQuery(tenant: tenant, limit: 1000)).items
        let targetInbox = try await target.pausedThreads(InboxQuery(tenant: tenant, limit: 1000)).items
        #expect(sourceInbox.count == 50)
        #expect(targetInbox.count == sourceInbox.count)
        for (copied, original) in zip(targetInbox, sourceInbox) {
            #expect(copied.thread == original.thread && copied.checkpointID == original.checkpointID)
            #expect(samePause(copied.pause, original.pause), "the pause of \(copied.thread) is the same")
        }

        // The agents go on on Postgres: a waiting one gets its answer, a sealed one reads.
        let waiting = try facade(target, 10)
        #expect(waiting.isAwaitingAnswer == false)  // not read yet
        #expect(try await waiting.latest() == expected[10])
        #expect(waiting.isAwaitingAnswer)
        guard let pause = targetInbox.first(where: { $0.thread.rawValue == "\(tenant):10" })?.pause else {
            Issue.record("thread 10 is not in the inbox")
            return
        }
        try await waiting.resume(pause.id, with: "no")
        #expect(try await waiting.latest() == expected[10])
        #expect(try waiting.answer(as: String.self) == "no")
        var next = try #require(expected[10])
        next.messages.append(sampleMessage(42))
        try await waiting.save(next)
        #expect(try await waiting.latest() == next)
        let sealed = try facade(target, 14)
        #expect(try await sealed.latest() == expected[14])
        let rows = try await target.diagnosticQuery(
            "SELECT count(*) FROM checkpoint_rows WHERE position($1::bytea IN payload) > 0", ["secret 14"])
        #expect(rows == [["0"]], "sealed state stays sealed in the copy")
        try await source.close()
        try await target.close()
    }
}

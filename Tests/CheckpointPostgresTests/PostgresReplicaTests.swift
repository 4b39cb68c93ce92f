import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A checkpointer on a primary whose streaming standby is its read replica.
private func replicated() async throws -> (ReplicatedServers, PostgresCheckpointer) {
    let servers = try ReplicatedServers()
    let checkpointer = try await PostgresCheckpointer(
        url: servers.primary.url + "?pool_max=2&replicas=127.0.0.1:\(servers.standbyPort)")
    return (servers, checkpointer)
}

/// A thread's first checkpoint, saved, once the replica has it.
private func firstReplicatedCheckpoint(_ checkpointer: PostgresCheckpointer, _ id: ThreadID) async throws -> (
    agent: CheckpointThread<TestAgentState>, state: TestAgentState, first: CheckpointID
) {
    let agent = try checkpointer.thread(id, as: TestAgentState.self)
    var state = TestAgentState()
    state.messages.append(sampleMessage(0))
    let first = try await agent.save(state)
    try await waitUntil("the replica has the first checkpoint") {
        try await checkpointer.history(thread: id).map(\.id) == [first]
    }
    return (agent, state, first)
}

extension ReplicatedServers {
    /// Stops the standby's replay (it still receives and flushes what the primary sends).
    func pauseReplay() async throws {
        try standbySQL("SELECT pg_wal_replay_pause()")
        try await waitUntil("the standby's replay is paused") {
            try standbySQL("SELECT pg_get_wal_replay_pause_state()") == "paused"
        }
    }
}

/// Read replicas: the calls that may read slightly old data go to the standby, everything an
/// agent's own next step depends on stays on the primary. The standby's replay is paused to
/// tell the two apart: what the primary has and the replica does not shows where a call ran.
@Suite("Postgres read replicas")
struct PostgresReplicaTests {
    @Test func staleTolerantCallsReadTheReplicaAndHeadsAndWritesThePrimary() async throws {
        let (servers, checkpointer) = try await replicated()
        let id = try ThreadID("acme:replica")
        var (agent, state, first) = try await firstReplicatedCheckpoint(checkpointer, id)

        // The replica stops replaying; the primary goes on (the standby still flushes what it
        // receives, so synchronous commits are acknowledged).
        try await servers.pauseReplay()
        state.messages.append(sampleMessage(1))
        let pause = try await agent.pause(state, reason: "approve", prompt: "go on?")

        // Head reads and what a write depends on: the primary.
        let paused = try #require(try await checkpointer.head(thread: id)?.id)
        #expect(paused != first)
        #expect(try await checkpointer.head(thread: id)?.pause?.id == pause.id)
        #expect(try await agent.latest() == state)
        // Stale-tolerant reads: the replica, a checkpoint behind.
        #expect(try await checkpointer.history(thread: id).map(\.id) == [first])
        #expect(try await checkpointer.threads(ThreadQuery(tenant: "acme")).items.map(\.headID) == [first])
        #expect(try await checkpointer.storageStatistics(thread: id).checkpointCount == 1)
        #expect(try await checkpointer.pausedThreads(InboxQuery(tenant: "acme")).items.isEmpty)
        // ...unless the listing must be the latest (as an erasure's is).
        let latest = try await checkpointer.threads(ThreadQuery(tenant: "acme", readsLatest: true)).items
        #expect(latest.map(\.headID) == [paused])
        // The answer and the next step run on the primary, which has the pause.
        try await agent.resume(pause.id, with: "yes")
        state.messages.append(sampleMessage(2))
        let third = try await agent.save(state)
        #expect(try await checkpointer.head(thread: id)?.id == third)

        let report = await checkpointer.health()
        #expect(report.status == .healthy, "\(report)")
        #expect(report.parts.map(\.component) == ["postgres-replicas"])

        // Replay goes on: the replica catches up.
        try servers.standbySQL("SELECT pg_wal_replay_resume()")
        try await waitUntil("the replica has every checkpoint") {
            try await checkpointer.history(thread: id).map(\.id) == [third, paused, first]
        }

        // No replica answers: those calls read the primary, and health says degraded.
        try servers.killStandby()
        state.messages.append(sampleMessage(3))
        let fourth = try await agent.save(state)
        #expect(try await checkpointer.history(thread: id).first?.id == fourth)
        #expect(try await checkpointer.threads(ThreadQuery(tenant: "acme")).items.map(\.headID) == [fourth])
        let degraded = await checkpointer.health()
        #expect(degraded.status == .degraded, "\(degraded)")
        #expect(degraded.parts.first?.status == .unavailable)
        try await checkpointer.close()
    }

    @Test func anErasureListsThePrimaryNotALaggingReplica() async throws {
        let (servers, checkpointer) = try await replicated()
        try await servers.pauseReplay()
        // Threads the replica has not seen yet: an erasure must delete them all the same.
        for index in 0..<3 {
            _ = try await checkpointer.thread(ThreadID("gone:\(index)"), as: TestAgentState.self).save(TestAgentState())
        }
        #expect(try await checkpointer.threads(ThreadQuery(tenant: "gone")).items.isEmpty, "the replica lags")
        let erasure = try await checkpointer.deleteTenant("gone")
        #expect(erasure.threadCount == 3)
        #expect(try await checkpointer.threads(ThreadQuery(tenant: "gone", readsLatest: true)).items.isEmpty)
        try servers.standbySQL("SELECT pg_wal_replay_resume()")
        try await checkpointer.close()
    }

    /// An export or a copy to another store (a migration) must miss nothing: it reads the
    /// primary, whatever the replica has replayed.
    @Test func exportsAndCopiesReadThePrimaryNotALaggingReplica() async throws {
        let (servers, checkpointer) = try await replicated()
        let id = try ThreadID("acme:moving")
        var (agent, state, first) = try await firstReplicatedCheckpoint(checkpointer, id)
        try await servers.pauseReplay()
        state.messages.append(sampleMessage(1))
        let second = try await agent.save(state)
        let added = try ThreadID("acme:added")
        _ = try await checkpointer.thread(added, as: TestAgentState.self).save(TestAgentState())
        #expect(try await checkpointer.history(thread: id).map(\.id) == [first], "the replica lags")

        let exported = try await checkpointer.export(thread: id)
        let target = InMemoryCheckpointer()
        #expect(try await target.importThread(exported).checkpointCount == 2, "the export holds both checkpoints")
        let other = InMemoryCheckpointer()
        let copied = try await checkpointer.copy(to: other)
        #expect(copied.namespaceCount == 2, "the copy has the thread the replica has not seen")
        #expect(try await other.head(thread: id)?.id == second)
        #expect(try await other.head(thread: added) != nil)
        try servers.standbySQL("SELECT pg_wal_replay_resume()")
        try await checkpointer.close()
    }
}

import CheckpointService
import Checkpointing
import CheckpointingTestKit
import Foundation
import MetricsTestKit
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// A clock that moves only when a test advances it, and tells the test each time something
/// starts to wait on it.
final class ManualClock: Clock, Sendable {
    typealias Duration = Swift.Duration
    struct Instant: InstantProtocol {
        var offset: Swift.Duration
        func advanced(by duration: Swift.Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Swift.Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [(deadline: Instant, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())
    /// One element each time something starts to sleep.
    let sleeps: AsyncStream<Void>
    private let sleepStarted: AsyncStream<Void>.Continuation

    init() { (sleeps, sleepStarted) = AsyncStream.makeStream() }

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Swift.Duration { .nanoseconds(1) }

    func sleep(until deadline: Instant, tolerance: Swift.Duration?) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let due = state.withLock { state -> Bool in
                    if deadline <= state.now { return true }
                    state.sleepers.append((deadline, continuation))
                    return false
                }
                if due { continuation.resume() } else { sleepStarted.yield() }
            }
        } onCancel: {
            let cancelled = state.withLock { state in
                defer { state.sleepers.removeAll() }
                return state.sleepers.map(\.continuation)
            }
            for continuation in cancelled { continuation.resume(throwing: CancellationError()) }
        }
    }

    func advance(by duration: Swift.Duration) {
        let due = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let due = state.sleepers.filter { $0.deadline <= state.now }
            state.sleepers.removeAll { $0.deadline <= state.now }
            return due.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }
}

@Suite("The idle sweep as a service")
struct IdleSweepServiceTests {
    @Test(.timeLimit(.minutes(1)))
    func sweepsEveryIntervalCountsWhatItRemovedAndStopsAtShutdown() async throws {
        let base = Date(timeIntervalSince1970: 1_000_300_000)
        let store = InMemoryCheckpointer()
        func idle(_ name: String) async throws {
            let write = CheckpointWrite(
                thread: try ThreadID("svc:\(name)"), parentID: nil, step: 0, createdAt: base,
                channels: ["v": .value(Data(repeating: 1, count: 100))])
            try await store.put(write)
        }
        for index in 0..<3 { try await idle("first-\(index)") }
        let metrics = TestMetrics()
        let clock = ManualClock()
        let service = IdleSweepService(
            checkpointer: store, policy: IdleThreadPolicy(idleFor: .seconds(1000)), every: .seconds(60),
            backend: "memory", metricsFactory: metrics, clock: clock, now: { base + 5000 })
        let deleted = [("backend", "memory"), ("action", "deleted")]
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                var sleeps = clock.sleeps.makeAsyncIterator()
                _ = await sleeps.next()  // the first sweep is done; the service waits
                #expect(try metrics.expectCounter("checkpoint_sweep_namespaces", deleted).totalValue == 3)
                #expect(try metrics.expectCounter("checkpoint_sweep_bytes_removed", [("backend", "memory")]).totalValue == 300)
                #expect(try metrics.expectTimer("checkpoint_sweep_duration", [("backend", "memory")]).values.count == 1)

                for index in 0..<2 { try await idle("second-\(index)") }
                clock.advance(by: .seconds(59))
                clock.advance(by: .seconds(1))
                _ = await sleeps.next()  // the second sweep is done
                #expect(try metrics.expectCounter("checkpoint_sweep_namespaces", deleted).totalValue == 5)
                #expect(try await store.threads(ThreadQuery(tenant: "svc")).items.isEmpty)

                trigger.triggerGracefulShutdown()
                try await group.waitForAll()  // the service ends
            }
        }
    }

    @Test func aFailedSweepIsCountedAndTheServiceGoesOn() async throws {
        let store = InMemoryCheckpointer()
        try await store.close()  // every sweep now fails
        let metrics = TestMetrics()
        let service = IdleSweepService(
            checkpointer: store, policy: IdleThreadPolicy(idleFor: .seconds(1)), every: .seconds(1), metricsFactory: metrics)
        guard case .failure(let error as CheckpointError) = await service.sweepOnce() else {
            Issue.record("a sweep of a closed store did not fail")
            return
        }
        #expect(error.code == .closed)
        #expect(try metrics.expectCounter("checkpoint_sweep_failures", [("backend", "checkpointer")]).totalValue == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func aCheckpointerServiceClosesTheCheckpointerAtShutdown() async throws {
        let store = InMemoryCheckpointer()
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await CheckpointerService(store).run() }
                #expect(await store.health().status == .healthy)
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(await store.health().status == .unavailable)
    }
}

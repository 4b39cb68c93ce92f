import Checkpointing
import CheckpointingTestKit
import Foundation
import MetricsTestKit
import Testing

@Suite("Metrics")
struct MetricsTests {
    @Test func putsRecordLatencyBytesAndConflicts() async throws {
        let metrics = TestMetrics()
        let checkpointer = InMemoryCheckpointer(metricsFactory: metrics)
        let thread = try uniqueThread("metrics")
        let first = CheckpointWrite(thread: thread, parentID: nil, step: 0, channels: ["v": .value(Data(count: 100))])
        try await checkpointer.put(first)
        let second = CheckpointWrite(thread: thread, parentID: first.id, step: 1, channels: ["v": .unchanged])
        try await checkpointer.put(second)
        let stale = CheckpointWrite(thread: thread, parentID: first.id, step: 1, channels: ["v": .unchanged])
        await #expect(throws: CheckpointError.self) { try await checkpointer.put(stale) }

        let timer = try metrics.expectTimer("checkpoint_put_duration", [("backend", "memory")])
        #expect(timer.values.count == 2)
        #expect(timer.values.allSatisfy { $0 > 0 })
        let bytes = try metrics.expectRecorder("checkpoint_put_bytes", [("backend", "memory")])
        #expect(bytes.values == [100, 0])
        let conflicts = try metrics.expectCounter("checkpoint_put_conflicts", [("backend", "memory")])
        #expect(conflicts.totalValue == 1)
    }
}

import Checkpointing
import CheckpointingTestKit
import Testing

@Suite("InMemoryCheckpointer conformance")
struct InMemoryConformanceTests {
    @Test(arguments: CheckpointerConformance.checks)
    func conforms(_ check: ConformanceCheck) async throws {
        let checkpointer = InMemoryCheckpointer()
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }
}

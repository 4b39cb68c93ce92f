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

@Suite("Health reports")
struct HealthReportTests {
    @Test func theInMemoryStoreReportsItselfAsMemory() async throws {
        let checkpointer = InMemoryCheckpointer()
        let report = await checkpointer.health()
        #expect(report.component == "memory" && report.status == .healthy, "\(report)")
        try await checkpointer.close()
        #expect(await checkpointer.health().status == .unavailable)
    }

    @Test func aReportPrintsOneIndentedLinePerPart() {
        let report = HealthReport(
            component: "redis-cache", status: .degraded, latency: .microseconds(250), details: ["breaker": "open"],
            problem: "Redis: down", parts: [HealthReport(component: "sqlite", status: .healthy, schema: "2026-12-02-x")])
        #expect(report.description == "redis-cache: degraded, 0.25 ms, breaker open (Redis: down)\n  sqlite: healthy, schema 2026-12-02-x")
        #expect(HealthReport.Status.healthy < .degraded && HealthReport.Status.degraded < .unavailable)
    }
}

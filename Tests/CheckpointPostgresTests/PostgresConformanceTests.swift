import CheckpointEncryption
import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

@Suite("PostgresCheckpointer conformance")
struct PostgresConformanceTests {
    @Test(arguments: CheckpointerConformance.checks)
    func conforms(_ check: ConformanceCheck) async throws {
        let checkpointer = try await TestServer.checkpointer()
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    /// The same behaviour when the caller's code runs on a connection's thread and every call
    /// runs inline.
    @Test(arguments: CheckpointerConformance.checks)
    func conformsOnAConnectionExecutor(_ check: ConformanceCheck) async throws {
        let checkpointer = try await TestServer.checkpointer()
        try await withTaskExecutorPreference(checkpointer.connectionExecutor(0)) {
            try await check.run(against: checkpointer)
        }
        try await checkpointer.close()
    }

    /// Without the content cache, one connection, and opened by configuration: every read
    /// goes to the server and every call waits for the one connection.
    @Test(arguments: CheckpointerConformance.checks)
    func conformsUncachedOnOneConnection(_ check: ConformanceCheck) async throws {
        let checkpointer = try await CheckpointerConfiguration(
            url: TestServer.isolatedURL("pool_max=1&content_cache_bytes=0&idle_spin_us=0")
        ).makeCheckpointer(backends: [PostgresCheckpointer.backend])
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    @Test(arguments: CheckpointerConformance.checks)
    func conformsSealed(_ check: ConformanceCheck) async throws {
        let keys = try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])
        let checkpointer = try await TestServer.checkpointer()
        try await CheckpointerConformance.$sealing.withValue(.wholeState(SodiumSealer(keys: keys))) {
            try await check.run(against: checkpointer)
        }
        try await checkpointer.close()
    }
}

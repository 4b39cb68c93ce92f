import CheckpointPostgres
import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

@Suite("RedisCachedCheckpointer conformance")
struct RedisConformanceTests {
    @Test(arguments: CheckpointerConformance.checks)
    func overSQLite(_ check: ConformanceCheck) async throws {
        let folder = try TemporaryFolder()
        let checkpointer = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)))
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    @Test(arguments: CheckpointerConformance.checks)
    func overPostgres(_ check: ConformanceCheck) async throws {
        let checkpointer = try await cached(PostgresCheckpointer(url: TestServers.isolatedPostgresURL()))
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    /// Opened by configuration, with every read refreshing its entry's time to live.
    @Test(arguments: CheckpointerConformance.checks)
    func overPostgresByConfiguration(_ check: ConformanceCheck) async throws {
        let configuration = try CheckpointerConfiguration(
            url: TestServers.isolatedPostgresURL(),
            cacheURL: TestServers.redisURL() + "?prefix=\(TestServers.uniquePrefix())&refresh_on_read=true&ttl=60")
        let checkpointer = try await configuration.makeCheckpointer(
            backends: [PostgresCheckpointer.backend], caches: [RedisCachedCheckpointer.cacheLayer])
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }
}

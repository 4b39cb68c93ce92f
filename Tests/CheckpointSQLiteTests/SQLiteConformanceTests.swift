import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A database file in a fresh temporary folder, removed when the test ends.
struct TemporaryDatabase: ~Copyable {
    let directory: URL
    var path: String { directory.appendingPathComponent("checkpoints.db").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        if ProcessInfo.processInfo.environment["KEEP_TEST_DB"] == nil { try? FileManager.default.removeItem(at: directory) }
    }
}

@Suite("SQLiteCheckpointer conformance")
struct SQLiteConformanceTests {
    @Test(arguments: CheckpointerConformance.checks)
    func conforms(_ check: ConformanceCheck) async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }

    @Test(arguments: CheckpointerConformance.checks)
    func conformsOnTheWriterExecutor(_ check: ConformanceCheck) async throws {
        // The same behaviour when the caller's code runs on the writer's thread and every call
        // runs inline.
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await withTaskExecutorPreference(checkpointer.writerExecutor) {
            try await check.run(against: checkpointer)
        }
        try await checkpointer.close()
    }

    /// With the list cache off and no idle spinning, so that every read goes to the file.
    @Test(arguments: CheckpointerConformance.checks)
    func conformsWithSynchronousFull(_ check: ConformanceCheck) async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await CheckpointerConfiguration(url: "sqlite://\(database.path)?synchronous=full&readers=1&content_cache_bytes=0&idle_spin_us=0")
            .makeCheckpointer(backends: [SQLiteCheckpointer.backend])
        try await check.run(against: checkpointer)
        try await checkpointer.close()
    }
}

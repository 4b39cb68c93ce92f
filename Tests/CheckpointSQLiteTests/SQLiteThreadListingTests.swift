import Checkpointing
import CheckpointingTestKit
@testable import CheckpointSQLite
import Foundation
import Testing

@Suite("SQLite thread listing")
struct SQLiteThreadListingTests {
    /// Threads with answers, pauses and pruned history, listed before and after a file loses
    /// the listing columns (as a release before them wrote it) and is opened again.
    @Test func aFileWrittenBeforeTheListingGetsItOnOpen() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let tenant = "before-listing"
        try await makeListingFixture(on: checkpointer, tenant: tenant)
        let before = try await checkpointer.threads(ThreadQuery(tenant: tenant))
        #expect(before.items.count == 4)
        try await checkpointer.close()

        let raw = try RawDatabase(database.path)
        try raw.query("DROP INDEX threads_by_activity")
        try raw.query("DROP INDEX threads_by_tenant")
        for column in ["tenant", "head_id", "last_activity", "checkpoint_count"] {
            try raw.query("ALTER TABLE threads DROP COLUMN \(column)")
        }
        try raw.query("DELETE FROM checkpoint_migrations WHERE name = '2026-12-03-thread-activity'")

        let reopened = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let after = try await reopened.threads(ThreadQuery(tenant: tenant))
        #expect(sameListing(after.items, before.items), "\(after.items) vs \(before.items)")
        try await reopened.close()
    }

    /// A person who opens the file sees every checkpoint's creation time, also when it is the
    /// id's own millisecond.
    @Test func everyRowHoldsItsCreationTime() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let thread = try uniqueThread("created-at")
        let id = CheckpointID.make()
        try await checkpointer.put(
            CheckpointWrite(id: id, thread: thread, parentID: nil, step: 0, createdAt: id.timestamp, channels: [:]))
        try await makeListingFixture(on: checkpointer, tenant: "created")
        try await checkpointer.close()
        let raw = try RawDatabase(database.path)
        #expect(try raw.query("SELECT count(*) FROM checkpoints WHERE created_at IS NULL") == ["0"])
        #expect(try raw.query("SELECT count(*) FROM checkpoints") != ["0"])
    }

    /// A page is a range of an index of threads: SQLite's plan reads no checkpoint but the
    /// waiting heads', and sorts nothing.
    @Test func aPageIsARangeOfAnIndex() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await checkpointer.close()
        let raw = try RawDatabase(database.path)
        for query in [
            ThreadQuery(limit: 10), ThreadQuery(tenant: "t", order: .oldestActivityFirst, limit: 10),
            ThreadQuery(
                activeBefore: Date(), order: .oldestActivityFirst,
                after: ThreadCursor(activityMicroseconds: 5, thread: "a", namespace: ""), limit: 10),
        ] {
            let plan = try raw.explainThreadListing(query)
            #expect(plan.contains { $0.contains("USING INDEX threads_by") }, "\(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
            #expect(!plan.contains { $0.contains("SCAN c") }, "\(plan)")
        }
    }
}

extension RawDatabase {
    /// SQLite's plan of a listing's statement, one line per step.
    func explainThreadListing(_ query: ThreadQuery) throws -> [String] {
        try self.query("EXPLAIN QUERY PLAN " + ThreadListingSQL(query).sql, column: 3)
    }
}

@Suite("SQLite idle sweep")
struct SQLiteSweepTests {
    /// Two processes' checkpointers sweep one file while a writer saves to some idle threads.
    @Test func twoSweepersAndAWriterLoseNothingAndCountNothingTwice() async throws {
        let database = try TemporaryDatabase()
        let first = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let second = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await checkSweepersAndWriterRace(first: first, second: second)
        try await first.close()
        try await second.close()
    }
}

import Checkpointing
import CheckpointingTestKit
import CheckpointPostgres
import Foundation
import Testing

@Suite("Postgres thread listing")
struct PostgresThreadListingTests {
    /// Threads with answers, pauses and pruned history, listed before and after the schema
    /// loses the listing columns (as a release before them left it) and is opened again.
    @Test func aSchemaWrittenBeforeTheListingGetsItOnOpen() async throws {
        let url = try TestServer.isolatedURL()
        let checkpointer = try await PostgresCheckpointer(url: url)
        let tenant = "before-listing"
        try await makeListingFixture(on: checkpointer, tenant: tenant)
        let before = try await checkpointer.threads(ThreadQuery(tenant: tenant))
        #expect(before.items.count == 4)
        _ = try await checkpointer.diagnosticQuery(
            "ALTER TABLE checkpoint_threads DROP COLUMN last_activity, DROP COLUMN checkpoint_count")
        _ = try await checkpointer.diagnosticQuery(
            "DELETE FROM checkpoint_migrations WHERE name = $1", ["2026-12-03-thread-activity"])
        try await checkpointer.close()

        let reopened = try await PostgresCheckpointer(url: url)
        let after = try await reopened.threads(ThreadQuery(tenant: tenant))
        #expect(sameListing(after.items, before.items), "\(after.items) vs \(before.items)")
        try await reopened.close()
    }
}

@Suite("Postgres idle sweep")
struct PostgresSweepTests {
    /// Two app instances sweep one database while a writer saves to some of the idle threads.
    @Test func twoSweepersAndAWriterLoseNothingAndCountNothingTwice() async throws {
        let url = try TestServer.isolatedURL()
        let first = try await PostgresCheckpointer(url: url)
        let second = try await PostgresCheckpointer(url: url)
        try await checkSweepersAndWriterRace(first: first, second: second)
        try await first.close()
        try await second.close()
    }
}

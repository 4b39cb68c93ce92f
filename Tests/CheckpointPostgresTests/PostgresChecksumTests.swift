@testable import CheckpointPostgres
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A changed value in any stored column is `corruptData` on every read that uses it, never
/// other state (a cluster without data checksums would not notice a flipped bit either).
@Suite("Postgres row checksums")
struct PostgresChecksumTests {
    /// One way to damage the stored thread: SQL with `$ROW` for the condition that picks the
    /// head's parent, `$HEAD` for the head, `$KEY` for the thread's key.
    static let damages: [(name: String, sql: String)] = [
        ("a byte of the head's manifest", "UPDATE checkpoint_rows SET manifest = set_byte(manifest, 3, get_byte(manifest, 3) # 255) WHERE $HEAD"),
        ("a byte of a message (list segment)", "UPDATE checkpoint_rows SET segments = set_byte(segments, 40, get_byte(segments, 40) # 255) WHERE thread_key = $KEY AND id = (SELECT id FROM checkpoint_rows WHERE thread_key = $KEY ORDER BY id LIMIT 1)"),
        ("a byte of a stored value (payload)", "UPDATE checkpoint_rows SET payload = set_byte(payload, 20, get_byte(payload, 20) # 255) WHERE thread_key = $KEY AND payload IS NOT NULL"),
        ("the metadata", "UPDATE checkpoint_rows SET metadata = jsonb_set(metadata, '{source}', '\"flan\"') WHERE $ROW"),
        ("the step", "UPDATE checkpoint_rows SET step = step + 1 WHERE $ROW"),
        ("the creation time", "UPDATE checkpoint_rows SET created_at = 12345 WHERE $ROW"),
        ("the parent id", "UPDATE checkpoint_rows SET parent_id = set_byte(parent_id, 15, get_byte(parent_id, 15) # 255) WHERE $ROW"),
        ("the pause", "UPDATE checkpoint_rows SET pause = set_byte(pause, 30, get_byte(pause, 30) # 255) WHERE thread_key = $KEY AND pause IS NOT NULL"),
        ("the answer", "UPDATE checkpoint_answers SET answered_at = answered_at + 1 WHERE thread_key = $KEY"),
        ("a missing checksum", "UPDATE checkpoint_rows SET checksum = NULL WHERE $HEAD"),
        ("a row moved to another thread", "UPDATE checkpoint_rows SET thread_key = (SELECT max(key) FROM checkpoint_threads) WHERE $ROW"),
    ]

    @Test(arguments: damages.map(\.name))
    func damagedValuesAreCorruptDataNeverOtherState(_ name: String) async throws {
        let url = try TestServer.isolatedURL()
        let probe = try StoredContentProbe(label: "damaged")
        let thread = probe.thread
        do {
            let checkpointer = try await PostgresCheckpointer(url: url)
            try await probe.write(to: checkpointer)
            try await checkpointer.close()
        }
        /// Every read, from a fresh process's view (no content in memory).
        func readEverything() async throws {
            let checkpointer = try await PostgresCheckpointer(url: url)
            do {
                try await probe.readEverything(from: checkpointer)
                try await checkpointer.close()
            } catch {
                try await checkpointer.close()
                throw error
            }
        }
        try await readEverything()  // positive control: the undamaged store reads without an error

        let admin = try await PostgresCheckpointer(url: url)
        let key = try #require(
            try await admin.diagnosticQuery("SELECT key FROM checkpoint_threads WHERE thread = $1", [thread.rawValue]).first?[0] ?? nil)
        let head = "thread_key = \(key) AND id = (SELECT head_id FROM checkpoint_threads WHERE key = \(key))"
        let parent = "thread_key = \(key) AND id = (SELECT parent_id FROM checkpoint_rows WHERE \(head))"
        let sql = try #require(Self.damages.first { $0.name == name }?.sql)
        _ = try await admin.diagnosticQuery(
            sql.replacingOccurrences(of: "$ROW", with: parent).replacingOccurrences(of: "$HEAD", with: head)
                .replacingOccurrences(of: "$KEY", with: key))
        try await admin.close()

        do {
            try await readEverything()
            Issue.record("a read of damaged values returned state with no error")
        } catch let error as CheckpointError {
            #expect(error.code == .corruptData, "\(error)")
            #expect(!error.isRetryable)
            #expect(!error.message.contains(StoredContentProbe.secret))
        }
    }

    @Test func aSchemaWrittenBeforeChecksumsGetsThemOnOpen() async throws {
        let url = try TestServer.isolatedURL()
        let thread = try uniqueThread("before-checksums")
        let checkpointer = try await PostgresCheckpointer(url: url)
        let agent = try checkpointer.thread(thread, as: TestAgentState.self)
        var state = TestAgentState(document: sampleText(200, seed: 2))
        for turn in 1...3 {
            state.messages.append(sampleMessage(turn))
            try await agent.save(state, metadata: ["turn": .int(turn), "score": .double(0.25)])
        }
        let pause = try await agent.pause(state, reason: "approve", prompt: "go on?")
        try await agent.resume(pause.id, with: "yes")
        // The schema as the release before checksums left it.
        _ = try await checkpointer.diagnosticQuery("ALTER TABLE checkpoint_rows DROP COLUMN checksum")
        _ = try await checkpointer.diagnosticQuery("ALTER TABLE checkpoint_answers DROP COLUMN checksum")
        _ = try await checkpointer.diagnosticQuery(
            "DELETE FROM checkpoint_migrations WHERE name = $1", ["2026-12-02-row-checksums"])
        try await checkpointer.close()

        let reopened = try await PostgresCheckpointer(url: url)
        #expect(
            try await reopened.diagnosticQuery("SELECT count(*) FROM checkpoint_rows WHERE checksum IS NULL") == [["0"]])
        #expect(
            try await reopened.diagnosticQuery("SELECT count(*) FROM checkpoint_answers WHERE checksum IS NULL") == [["0"]])
        #expect(try await reopened.thread(thread, as: TestAgentState.self).latest() == state)
        #expect(try await reopened.history(thread: thread, limit: 10).count == 4)
        try await reopened.close()
    }
}

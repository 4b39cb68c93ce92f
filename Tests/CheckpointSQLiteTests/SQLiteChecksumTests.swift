@testable import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A damaged byte in any stored column is `corruptData` on every read that uses it, never
/// other state: SQLite itself has no checksums of its content.
@Suite("SQLite row checksums")
struct SQLiteChecksumTests {
    /// One way to damage a stored thread, and the read that must notice it.
    struct Damage: CustomTestStringConvertible, Sendable {
        var name: String
        /// SQL run on the raw file; `$ROW` is replaced by the condition that picks the row.
        var change: @Sendable (RawDatabase, String) throws -> Void
        var testDescription: String { name }
    }

    static let damages: [Damage] = [
        Damage(name: "a byte of the head's manifest") { raw, row in
            try raw.flipByte(column: "manifest", where: row, offset: 3)
        },
        Damage(name: "a byte of a message (list segment)") { raw, row in
            try raw.flipByte(column: "segments", where: "id = (SELECT min(id) FROM checkpoints)", offset: 40)
        },
        Damage(name: "a byte of a stored value (payload)") { raw, row in
            try raw.flipByte(column: "payload", where: "payload IS NOT NULL", offset: 20)
        },
        Damage(name: "the metadata text") { raw, row in
            try raw.query("UPDATE checkpoints SET metadata = replace(metadata, 'plan', 'flan') WHERE \(row)")
        },
        Damage(name: "the step") { raw, row in
            try raw.query("UPDATE checkpoints SET step = step + 1 WHERE \(row)")
        },
        Damage(name: "the creation time") { raw, row in
            try raw.query("UPDATE checkpoints SET created_at = 12345 WHERE \(row)")
        },
        Damage(name: "the parent id") { raw, row in
            try raw.flipByte(column: "parent_id", where: row, offset: 15)
        },
        Damage(name: "the checkpoint id") { raw, row in
            try raw.flipByte(column: "id", where: row, offset: 15)
        },
        Damage(name: "the pause") { raw, row in
            try raw.flipByte(column: "pause", where: "pause IS NOT NULL", offset: 30)
        },
        Damage(name: "the answer") { raw, row in
            try raw.query("UPDATE answers SET answered_at = answered_at + 1")
        },
        Damage(name: "a missing checksum") { raw, row in
            try raw.query("UPDATE checkpoints SET checksum = NULL WHERE \(row)")
        },
        Damage(name: "a row moved to another thread") { raw, row in
            try raw.query("UPDATE checkpoints SET thread_key = (SELECT max(key) FROM threads) WHERE \(row)")
        },
    ]

    @Test(arguments: damages)
    func damagedBytesAreCorruptDataNeverOtherState(_ damage: Damage) async throws {
        let database = try TemporaryDatabase()
        let probe = try StoredContentProbe(label: "damaged")
        let thread = probe.thread
        do {
            let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
            try await probe.write(to: checkpointer)
            try await checkpointer.close()
        }
        /// Every read, from a fresh process's view (no content in memory).
        func readEverything() async throws {
            let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
            do {
                try await probe.readEverything(from: checkpointer)
                try await checkpointer.close()
            } catch {
                try await checkpointer.close()
                throw error
            }
        }
        try await readEverything()  // positive control: the undamaged store reads without an error

        let raw = try RawDatabase(database.path)
        let threadKey = try raw.query("SELECT key FROM threads WHERE thread = '\(thread.rawValue)'")[0]
        let headRow = "thread_key = \(threadKey) AND id = (SELECT max(id) FROM checkpoints WHERE thread_key = \(threadKey))"
        // The pause is on the head; the step/metadata rows are the head's parent.
        let parentRow = """
            thread_key = \(threadKey) AND id = (SELECT parent_id FROM checkpoints WHERE thread_key = \(threadKey) \
            ORDER BY id DESC LIMIT 1)
            """
        try damage.change(raw, damage.name.contains("manifest") || damage.name.contains("checksum") ? headRow : parentRow)

        do {
            try await readEverything()
            Issue.record("a read of damaged bytes returned state with no error")
        } catch let error as CheckpointError {
            #expect(error.code == .corruptData, "\(error)")
            #expect(!error.isRetryable)
            #expect(!error.message.contains(StoredContentProbe.secret))
        }
    }

    @Test func aFileWrittenBeforeChecksumsGetsThemOnOpen() async throws {
        let database = try TemporaryDatabase()
        let thread = try uniqueThread("before-checksums")
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let agent = try checkpointer.thread(thread, as: TestAgentState.self)
        var state = TestAgentState(document: sampleText(200, seed: 2))
        for turn in 1...3 {
            state.messages.append(sampleMessage(turn))
            try await agent.save(state, metadata: ["turn": .int(turn)])
        }
        let pause = try await agent.pause(state, reason: "approve", prompt: "go on?")
        try await agent.resume(pause.id, with: "yes")
        try await checkpointer.close()

        // The file as the release before checksums left it.
        let raw = try RawDatabase(database.path)
        try raw.query("ALTER TABLE checkpoints DROP COLUMN checksum")
        try raw.query("ALTER TABLE answers DROP COLUMN checksum")
        try raw.query("DELETE FROM checkpoint_migrations WHERE name = '2026-12-02-row-checksums'")

        let reopened = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        #expect(try raw.query("SELECT count(*) FROM checkpoints WHERE checksum IS NULL") == ["0"])
        #expect(try raw.query("SELECT count(*) FROM answers WHERE checksum IS NULL") == ["0"])
        let loaded = try await reopened.thread(thread, as: TestAgentState.self).latest()
        #expect(loaded == state)
        #expect(try await reopened.history(thread: thread, limit: 10).count == 4)
        try await reopened.close()
    }
}

extension RawDatabase {
    /// Inverts the bits of one byte of a blob column (offset counted from the end when the
    /// blob is shorter), as bit rot would.
    func flipByte(column: String, where condition: String, offset: Int) throws {
        let rows = try query("SELECT hex(\(column)) FROM checkpoints WHERE \(condition) LIMIT 1")
        guard var bytes = rows.first.map({ Array($0.utf8) }), bytes.count >= 2 else {
            throw CheckpointError(.notFound, "no \(column) to damage")
        }
        let index = min(offset, bytes.count / 2 - 1) * 2
        let value = UInt8(String(decoding: bytes[index..<index + 2], as: UTF8.self), radix: 16) ?? 0
        bytes.replaceSubrange(index..<index + 2, with: Array(String(format: "%02X", value ^ 0xFF).utf8))
        let cast = column == "metadata" ? "CAST(x'\(String(decoding: bytes, as: UTF8.self))' AS TEXT)" : "x'\(String(decoding: bytes, as: UTF8.self))'"
        try query("UPDATE checkpoints SET \(column) = \(cast) WHERE \(condition)")
    }
}

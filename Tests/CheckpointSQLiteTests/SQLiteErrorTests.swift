import CCheckpointSQLite
@testable import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// Every row of the SQLite error table that can be produced for real, each on a real file;
/// the table itself is checked code by code at the end.
@Suite("SQLite errors")
struct SQLiteErrorTests {
    /// A database written by SQLite itself, with a table of some pages, in rollback mode.
    private func makeDatabase(at path: String) throws {
        let raw = try RawDatabase(path, create: true)
        try raw.query("CREATE TABLE filler (x BLOB)")
        try raw.query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO filler SELECT randomblob(400) FROM n")
    }

    private func openError(_ path: String) async -> CheckpointError? {
        do {
            let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: path))
            try? await checkpointer.close()
            return nil
        } catch let error as CheckpointError {
            return error
        } catch {
            Issue.record("expected a CheckpointError, got \(type(of: error)): \(error)")
            return nil
        }
    }

    @Test func aDamagedFileIsCorruptDataAndNotRetryable() async throws {
        let database = try TemporaryDatabase()
        try makeDatabase(at: database.path)
        // Page 1's b-tree header and the next pages: the schema can no longer be read.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: database.path))
        try handle.seek(toOffset: 100)
        try handle.write(contentsOf: Data(repeating: 0x5a, count: 3 * 4096))
        try handle.close()
        let error = try #require(await openError(database.path))
        #expect(error.code == .corruptData, "\(error)")
        #expect(error.nativeCode == "\(SQLITE_CORRUPT)")
        #expect(!error.isRetryable)
    }

    @Test func aDamagedHeaderIsCorruptDataAndNotRetryable() async throws {
        let database = try TemporaryDatabase()
        try makeDatabase(at: database.path)
        // The header still says "SQLite format 3", but its page size is impossible.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: database.path))
        try handle.seek(toOffset: 16)
        try handle.write(contentsOf: Data([0x03, 0x01]))
        try handle.close()
        let error = try #require(await openError(database.path))
        #expect(error.code == .corruptData, "\(error)")
        #expect(error.nativeCode == "\(SQLITE_NOTADB)")
        #expect(!error.isRetryable)
    }

    @Test func aTextFileIsNotADatabase() async throws {
        let database = try TemporaryDatabase()
        try Data(String(repeating: "these are notes, not a database\n", count: 300).utf8)
            .write(to: URL(fileURLWithPath: database.path))
        let error = try #require(await openError(database.path))
        #expect(error.code == .invalidConfiguration, "\(error)")
        #expect(error.nativeCode == "\(SQLITE_NOTADB)")
        #expect(!error.isRetryable)
        #expect(error.message.contains(database.path) && error.message.contains("not an SQLite database"), "\(error)")
    }

    @Test func aDirectoryIsNotADatabase() async throws {
        let database = try TemporaryDatabase()
        try FileManager.default.createDirectory(atPath: database.path, withIntermediateDirectories: false)
        let error = try #require(await openError(database.path))
        #expect(error.code == .invalidConfiguration, "\(error)")
        #expect(error.nativeCode == "\(SQLITE_CANTOPEN)")
        #expect(!error.isRetryable)
        #expect(error.message.contains(database.path) && error.message.contains("is a directory"), "\(error)")
    }

    @Test func aMissingDirectoryIsInvalidConfiguration() async throws {
        let database = try TemporaryDatabase()
        let path = database.directory.appendingPathComponent("missing/checkpoints.db").path
        let error = try #require(await openError(path))
        #expect(error.code == .invalidConfiguration, "\(error)")
        #expect(error.nativeCode == "\(SQLITE_CANTOPEN)")
        #expect(!error.isRetryable)
        #expect(error.message.contains(path) && error.message.contains("does not exist"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: database.directory.appendingPathComponent("missing").path))
    }

    @Test func aReadOnlyFileIsInvalidConfiguration() async throws {
        let database = try TemporaryDatabase()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await checkpointer.thread(uniqueThread("read-only"), as: TestAgentState.self).save(TestAgentState(turn: 1))
        try await checkpointer.close()
        let path = database.path
        let error = try await ReadOnlyFile.while(path) { await openError(path) }
        // The file is writable again (so that the folder can be removed), and opens.
        try await SQLiteCheckpointer(configuration: .init(path: database.path)).close()
        let readOnly = try #require(error)
        #expect(readOnly.code == .invalidConfiguration, "\(readOnly)")
        #expect(readOnly.nativeCode == "\(SQLITE_READONLY)")
        #expect(!readOnly.isRetryable)
        #expect(readOnly.message.contains(path) && readOnly.message.contains("read-only"), "\(readOnly)")
    }

    /// One row of the table: a result code and what it becomes in each phase.
    struct Row: Sendable, CustomTestStringConvertible {
        var resultCode: Int32
        var call: CheckpointError.Code
        var retryable: Bool
        /// While opening the file, when it differs from ``call`` (the path says what it is).
        var opening: CheckpointError.Code?
        /// While migrating, when it differs from ``opening``.
        var migrating: CheckpointError.Code?

        init(
            _ resultCode: Int32, _ call: CheckpointError.Code, retryable: Bool = false,
            opening: CheckpointError.Code? = nil, migrating: CheckpointError.Code? = nil
        ) {
            self.resultCode = resultCode
            self.call = call
            self.retryable = retryable
            self.opening = opening
            self.migrating = migrating
        }

        var testDescription: String { "\(String(cString: sqlite3_errstr(resultCode))) (\(resultCode))" }
    }

    /// The table, row by row: SQLite's primary result codes (with extended codes where they
    /// matter), on an open connection, while opening and while migrating.
    @Test(arguments: [
        Row(SQLITE_BUSY, .busy, retryable: true),
        Row(SQLITE_BUSY | (2 << 8), .busy, retryable: true),  // SQLITE_BUSY_SNAPSHOT
        Row(SQLITE_LOCKED, .busy, retryable: true),
        Row(SQLITE_PROTOCOL, .busy, retryable: true),
        Row(SQLITE_CORRUPT, .corruptData),
        // The file at the test's path does not exist, so while opening it is not a database.
        Row(SQLITE_NOTADB, .corruptData, opening: .invalidConfiguration),
        Row(SQLITE_CANTOPEN, .backendFailure, opening: .invalidConfiguration),
        Row(SQLITE_PERM, .invalidConfiguration),
        Row(SQLITE_READONLY, .invalidConfiguration),
        Row(SQLITE_READONLY | (4 << 8), .invalidConfiguration),  // SQLITE_READONLY_DBMOVED
        Row(SQLITE_AUTH, .permissionDenied),
        Row(SQLITE_FULL, .backendFailure, retryable: true),
        Row(SQLITE_NOMEM, .backendFailure, retryable: true),
        Row(SQLITE_IOERR, .backendFailure),
        Row(SQLITE_IOERR | (10 << 8), .backendFailure),  // SQLITE_IOERR_DELETE
        Row(SQLITE_INTERRUPT, .cancelled),
        Row(SQLITE_CONSTRAINT, .invalidArgument),
        Row(SQLITE_CONSTRAINT | (6 << 8), .invalidArgument),  // SQLITE_CONSTRAINT_PRIMARYKEY
        Row(SQLITE_TOOBIG, .invalidArgument),
        Row(SQLITE_SCHEMA, .backendFailure, retryable: true),
        Row(SQLITE_ERROR, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_INTERNAL, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_ABORT, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_MISMATCH, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_MISUSE, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_RANGE, .backendFailure, migrating: .migrationFailed),
        Row(SQLITE_NOLFS, .backendFailure, migrating: .migrationFailed),
    ])
    func everyResultCodeMapsDeliberately(_ row: Row) {
        let path = "/nonexistent-\(UUID().uuidString)/checkpoints.db"
        let expected: [(SQLitePhase, CheckpointError.Code)] = [
            (.call, row.call), (.opening, row.opening ?? row.call), (.migrating, row.migrating ?? row.opening ?? row.call),
        ]
        for (phase, code) in expected {
            let error = CheckpointError(sqlite: SQLiteError(resultCode: row.resultCode, message: "m"), path: path, phase: phase)
            #expect(error.code == code, "\(phase): \(error)")
            #expect(error.isRetryable == (code == row.call && row.retryable), "\(phase): \(error)")
            #expect(error.nativeCode == "\(row.resultCode)")
            #expect(error.underlying is SQLiteError)
            if code == .invalidConfiguration { #expect(error.message.contains(path), "\(phase): \(error)") }
        }
    }

    @Test func aTableMissingFromAMigratedFileIsCorruptData() async throws {
        let database = try TemporaryDatabase()
        let first = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        try await first.thread("acme:schema", as: TestAgentState.self).save(TestAgentState(turn: 1))
        try await first.close()
        try RawDatabase(database.path).query("ALTER TABLE answers RENAME TO answers_elsewhere")
        let reopened = try await SQLiteCheckpointer(configuration: .init(path: database.path))
        let error = try await requireError(.corruptData) { try await reopened.head(thread: ThreadID("acme:schema")) }
        #expect(!error.isRetryable)
        #expect(error.message.contains("schema"), "\(error)")
        try await reopened.close()
    }

    @Test func aClosedConnectionIsClosed() {
        let error = CheckpointError(
            sqlite: SQLiteError(resultCode: SQLITE_MISUSE, message: SQLiteConnection.closedMessage), path: "a.db",
            phase: .call)
        #expect(error.code == .closed)
    }
}

/// Makes a file read-only for the test's process while `body` runs, even as root: an
/// unprivileged process loses write permission (mode 0444); root, which ignores modes, gets
/// the immutable attribute (`chattr +i`). Both are undone before it returns.
enum ReadOnlyFile {
    static func `while`<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        let root = getuid() == 0
        if root {
            try runCommand(["chattr", "+i", path])
        } else {
            try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: path)
        }
        defer {
            if root {
                _ = try? runCommand(["chattr", "-i", path])
            } else {
                try? FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            }
        }
        return try await body()
    }
}

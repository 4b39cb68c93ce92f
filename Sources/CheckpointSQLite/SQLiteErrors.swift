import CCheckpointSQLite
import Checkpointing
import Foundation

/// SQLite's own failure: the result code and the message of the call that failed.
///
/// Kept as the ``CheckpointError/underlying`` error; its description holds no SQL values.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code (`SQLITE_BUSY` is 5, `SQLITE_CORRUPT` 11, ...).
    public var resultCode: Int32
    /// SQLite's message for the failure.
    public var message: String

    /// The primary result code (the low byte of ``resultCode``).
    public var primaryResultCode: Int32 { resultCode & 0xff }

    /// The result code's name and number, and SQLite's message.
    public var description: String {
        "\(String(cString: sqlite3_errstr(resultCode))) (\(resultCode)): \(message)"
    }
}

/// When an SQLite call failed, which decides what some result codes mean.
enum SQLitePhase: Sendable {
    /// Opening the file and configuring a connection: a failure says what the path names
    /// (a directory, a file that is not a database, a missing directory).
    case opening
    /// Bringing the schema up to date, while opening.
    case migrating
    /// A call on an open connection.
    case call
}

extension CheckpointError {
    /// The one mapping of SQLite's result codes to ``CheckpointError``, documented as a table
    /// in the CheckpointSQLite article ("Errors"). Every failure of an SQLite call goes
    /// through it; the extended result code is kept in ``nativeCode`` and the SQLite error in
    /// ``underlying``. Messages name the database's path (configuration), never state or SQL
    /// values.
    init(sqlite error: SQLiteError, path: String, phase: SQLitePhase) {
        let file = "the SQLite database at '\(path)'"
        let code: Code
        let message: String
        var retryable: Bool?
        switch error.primaryResultCode {
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL:
            code = .busy
            message =
                phase == .migrating
                ? "the SQLite schema at '\(path)' needs migrating and another connection holds the write lock past the busy timeout"
                : "\(file) is locked by another connection past the busy timeout; nothing was written"
        case SQLITE_CORRUPT:
            code = .corruptData
            message = "\(file) is damaged (malformed pages); restore it from a backup"
        case SQLITE_NOTADB where phase != .call && !Self.hasSQLiteHeader(path):
            code = .invalidConfiguration
            message = "'\(path)' is not an SQLite database: configure the path of a database file, or of one to create"
        case SQLITE_NOTADB:
            code = .corruptData
            message = "\(file) has a damaged header; restore it from a backup"
        case SQLITE_CANTOPEN where phase != .call:
            code = .invalidConfiguration
            message = Self.cannotOpen(path)
        case SQLITE_CANTOPEN:
            code = .backendFailure
            message = "SQLite cannot open a file it needs beside \(file) (its WAL, shared memory or a temporary file)"
        case SQLITE_PERM, SQLITE_READONLY:
            code = .invalidConfiguration
            message =
                "\(file) is read-only, or was moved or deleted while open: the process needs to write the file and its directory"
        case SQLITE_AUTH:
            code = .permissionDenied
            message = "SQLite's authorizer refused a statement on \(file)"
        case SQLITE_FULL:
            code = .backendFailure
            message = "the disk that holds \(file) is full; nothing was written, and the same call may succeed once space frees"
            retryable = true
        case SQLITE_NOMEM:
            code = .backendFailure
            message = "SQLite ran out of memory; nothing was written"
            retryable = true
        case SQLITE_IOERR:
            code = .backendFailure
            message =
                "the operating system failed to read or write \(file) or its WAL (a failing disk, or a file removed or truncated under the process)"
        case SQLITE_INTERRUPT:
            code = .cancelled
            message = "an SQLite call on \(file) was interrupted; nothing was written"
        case SQLITE_CONSTRAINT:
            code = .invalidArgument
            message = "a write broke a rule of the schema (such as an id stored already); nothing was written"
        case SQLITE_TOOBIG:
            code = .invalidArgument
            message = "a value is larger than SQLite accepts (SQLITE_MAX_LENGTH); nothing was written"
        case SQLITE_SCHEMA:
            code = .backendFailure
            message = "another connection changed the schema of \(file) during a call; nothing was written"
            retryable = true
        case SQLITE_ERROR where phase == .call && Self.isMissingSchema(error.message):
            // The migrations recorded in the file made these objects: they are gone because the
            // file was damaged (or changed by hand), not because of the call.
            code = .corruptData
            message = "the schema of \(file) no longer holds what its recorded migrations made: the file is damaged"
        case SQLITE_MISUSE where error.message == SQLiteConnection.closedMessage:
            code = .closed
            message = "the SQLite connection was closed"
        default:
            code = phase == .migrating ? .migrationFailed : .backendFailure
            message = phase == .migrating ? "cannot migrate the SQLite schema of \(file)" : "an SQLite call on \(file) failed"
        }
        self.init(code, message, nativeCode: "\(error.resultCode)", underlying: error)
        if let retryable { isRetryable = retryable }
    }

    /// Whether an `SQLITE_ERROR` message says a table, column or index of the schema is missing.
    private static func isMissingSchema(_ message: String) -> Bool {
        ["no such table", "no such column", "no such index", "malformed"].contains { message.hasPrefix($0) }
    }

    /// Whether the file at `path` begins with SQLite's header string (`SQLite format 3\0`):
    /// a file that does is a database with a damaged header, one that does not is some other
    /// file.
    private static func hasSQLiteHeader(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        return header == Data("SQLite format 3\0".utf8)
    }

    /// Why the file at `path` cannot be opened or created, as far as the file system tells.
    private static func cannotOpen(_ path: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            return isDirectory.boolValue
                ? "'\(path)' is a directory, not an SQLite database file"
                : "cannot open the SQLite database at '\(path)': check the permissions of the file and its directory"
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            return "cannot create the SQLite database at '\(path)': its directory '\(directory)' does not exist"
        }
        if !directory.isEmpty, !isDirectory.boolValue {
            return "cannot create the SQLite database at '\(path)': '\(directory)' is not a directory"
        }
        return "cannot create the SQLite database at '\(path)': check the permissions of its directory"
    }
}

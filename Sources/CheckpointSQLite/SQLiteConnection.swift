import CCheckpointSQLite
import Checkpointing
import CheckpointRuntime
import Foundation
import Synchronization

// SQLITE_TRANSIENT tells SQLite to copy a bound value; it is a macro Swift cannot import.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// Owns one `sqlite3*` handle and its prepared statements.
///
/// Not `Sendable`: only ``SerializedConnection`` touches it, always on its own thread.
final class SQLiteConnection {
    private(set) var handle: OpaquePointer?
    private var statements: [String: SQLiteStatement] = [:]
    private var fixedStatements: [SQLiteStatement?] = []
    static let closedMessage = "connection closed"

    /// Keeps the WAL hook's context alive as long as the handle.
    var walMonitor: AnyObject?
    /// The busy handler's settings, the context it is installed with.
    private let busyWait = BusyWait()

    /// The database file, for the messages of errors (configuration, never state).
    let path: String

    /// Opens the file. A connection asked to write (`SQLITE_OPEN_READWRITE`) that SQLite could
    /// only open for reading (the file or its directory is write-protected) fails with
    /// `SQLITE_READONLY` here, not at its first write.
    init(path: String, flags: Int32) throws(SQLiteError) {
        self.path = path
        // SQLite (built with SQLITE_USE_URI, as Debian's is) reads a filename that starts with
        // `file:` as a URI with options of its own (`?mode=memory`, `?vfs=`): a configured path
        // is always a file's path, so such a relative path is given as `./file:...`.
        let filename = path.hasPrefix("file:") ? "./" + path : path
        var handle: OpaquePointer?
        let result = sqlite3_open_v2(filename, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard result == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(resultCode: result, message: message)
        }
        if flags & SQLITE_OPEN_READWRITE != 0, sqlite3_db_readonly(handle, "main") == 1 {
            sqlite3_close_v2(handle)
            throw SQLiteError(resultCode: SQLITE_READONLY, message: "the file could be opened for reading only")
        }
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_handler(handle, BusyWait.handler, Unmanaged.passUnretained(busyWait).toOpaque())
        self.handle = handle
    }

    deinit {
        close()
    }

    /// Finalizes every statement and closes the handle. Safe to call twice.
    func close() {
        statements.removeAll()
        fixedStatements.removeAll()
        if let handle {
            sqlite3_close_v2(handle)
            self.handle = nil
        }
    }

    func error(_ result: Int32) -> SQLiteError {
        let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? Self.closedMessage
        return SQLiteError(resultCode: result, message: message)
    }

    /// Runs SQL text with no parameters and no results (pragmas, DDL, transaction control).
    func execute(_ sql: String) throws(SQLiteError) {
        guard let handle else { throw SQLiteError(resultCode: SQLITE_MISUSE, message: Self.closedMessage) }
        let result = sqlite3_exec(handle, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw error(result) }
    }

    /// A prepared statement for `sql`, kept for reuse; reset and cleared of bindings.
    func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let statement = statements[sql] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql)
        statements[sql] = statement
        return statement
    }

    /// A prepared statement for a fixed statement of the schema, kept for reuse.
    func statement(_ sql: SQL) throws(SQLiteError) -> SQLiteStatement {
        if sql.key < fixedStatements.count, let statement = fixedStatements[sql.key] {
            statement.reset()
            return statement
        }
        let statement = try prepare(sql.text)
        while fixedStatements.count <= sql.key { fixedStatements.append(nil) }
        fixedStatements[sql.key] = statement
        return statement
    }

    private func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        guard let handle else { throw SQLiteError(resultCode: SQLITE_MISUSE, message: Self.closedMessage) }
        var pointer: OpaquePointer?
        let result = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, nil)
        guard result == SQLITE_OK, let pointer else { throw error(result) }
        return SQLiteStatement(pointer, connection: self)
    }

    /// Runs `body` in a transaction: `BEGIN IMMEDIATE` takes the write lock at once (waiting up
    /// to the busy timeout), a deferred `BEGIN` gives reads one consistent snapshot.
    /// Rolls back when `body` throws.
    func transaction<T>(immediate: Bool, _ body: () throws -> T) throws -> T {
        try statement(immediate ? Schema.beginImmediate : Schema.begin).run()
        do {
            let result = try body()
            try statement(Schema.commit).run()
            return result
        } catch {
            if let handle, sqlite3_get_autocommit(handle) == 0 {
                try? statement(Schema.rollback).run()
            }
            throw error
        }
    }

    /// Sets how long a statement waits for another connection's lock before it fails with
    /// `SQLITE_BUSY` (see ``BusyWait``); 0 fails at once.
    func setBusyTimeout(milliseconds: Int32) {
        busyWait.timeoutNanoseconds = UInt64(max(0, milliseconds)) * 1_000_000
    }

    /// Whether no transaction is open.
    var isInAutocommit: Bool { handle.map { sqlite3_get_autocommit($0) != 0 } ?? true }

    /// Rows changed by every statement since the connection opened (committed or not).
    var totalChanges: Int64 { handle.map { sqlite3_total_changes64($0) } ?? 0 }

    /// The rowid of the last inserted row.
    var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    /// Rows changed by the last statement.
    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }
}

/// Owns one prepared statement. Values are bound as parameters, never spliced into SQL.
final class SQLiteStatement {
    private let pointer: OpaquePointer
    private unowned let connection: SQLiteConnection

    init(_ pointer: OpaquePointer, connection: SQLiteConnection) {
        self.pointer = pointer
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(pointer)
    }

    func reset() {
        sqlite3_reset(pointer)
        sqlite3_clear_bindings(pointer)
    }

    private func check(_ result: Int32) throws(SQLiteError) {
        guard result == SQLITE_OK else { throw connection.error(result) }
    }

    func bind(_ index: Int32, _ value: Int64) throws(SQLiteError) {
        try check(sqlite3_bind_int64(pointer, index, value))
    }

    func bind(_ index: Int32, _ value: String) throws(SQLiteError) {
        try check(sqlite3_bind_text(pointer, index, value, -1, sqliteTransient))
    }

    func bind(_ index: Int32, _ value: Double) throws(SQLiteError) {
        try check(sqlite3_bind_double(pointer, index, value))
    }

    func bind(_ index: Int32, _ value: Data) throws(SQLiteError) {
        let result = value.withUnsafeBytes { buffer in
            sqlite3_bind_blob(pointer, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buffer.count), sqliteTransient)
        }
        try check(result)
    }

    func bind(_ index: Int32, _ id: CheckpointID) throws(SQLiteError) {
        var big = (id.high.bigEndian, id.low.bigEndian)
        let result = withUnsafeBytes(of: &big) { buffer in
            sqlite3_bind_blob(pointer, index, buffer.baseAddress, 16, sqliteTransient)
        }
        try check(result)
    }

    func bindNull(_ index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_null(pointer, index))
    }

    /// Steps once: `true` when a row is available, `false` when done.
    func step() throws(SQLiteError) -> Bool {
        let result = sqlite3_step(pointer)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(result)
        }
    }

    /// Steps to completion, ignoring rows.
    func run() throws(SQLiteError) {
        while try step() {}
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(pointer, column) == SQLITE_NULL }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(pointer, column) }

    func double(_ column: Int32) -> Double { sqlite3_column_double(pointer, column) }

    /// Steps a statement that returns at most one integer (such as `RETURNING key`) to completion.
    func singleInt64() throws(SQLiteError) -> Int64? {
        guard try step() else { return nil }
        let value = int64(0)
        while try step() {}
        return value
    }

    func data(_ column: Int32) -> Data {
        let count = Int(sqlite3_column_bytes(pointer, column))
        guard count > 0, let bytes = sqlite3_column_blob(pointer, column) else { return Data() }
        return Data(bytes: bytes, count: count)
    }

    /// The column's bytes without a copy, valid until the statement steps or resets; `nil`
    /// for NULL, an empty buffer for an empty blob or text.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer? {
        guard !isNull(column) else { return nil }
        // `sqlite3_column_blob` first, then `sqlite3_column_bytes`, as SQLite asks.
        let bytes = sqlite3_column_blob(pointer, column)
        let count = Int(sqlite3_column_bytes(pointer, column))
        guard count > 0, let bytes else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: bytes, count: count)
    }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(pointer, column) else { return "" }
        return String(cString: bytes)
    }

    func checkpointID(_ column: Int32) throws(CheckpointError) -> CheckpointID {
        let count = Int(sqlite3_column_bytes(pointer, column))
        guard count == 16, let bytes = sqlite3_column_blob(pointer, column) else {
            throw CheckpointError(.corruptData, "a stored checkpoint id has \(count) bytes instead of 16")
        }
        return CheckpointID(UnsafeRawBufferPointer(start: bytes, count: 16))
    }

    func optionalCheckpointID(_ column: Int32) throws(CheckpointError) -> CheckpointID? {
        isNull(column) ? nil : try checkpointID(column)
    }
}

/// One connection, the thread that runs its calls, and a lock that makes each call the
/// connection's only user.
///
/// A call runs on the connection's thread, or inline on the caller's thread when the
/// connection allows it (``InlineCalls``) and is free at that moment: a thread hand-off costs
/// tens of microseconds on a small virtual machine, more than an SQLite write, so a caller on
/// Swift's shared pool otherwise pays it twice per call. An inline call never waits for
/// another process's lock on the shared pool: it runs with no busy timeout, and when it meets
/// `SQLITE_BUSY` before changing anything it goes to the connection's thread, which waits the
/// configured timeout. A connection whose commits flush to disk (`synchronous=full`) is not
/// inline, so no `fsync` blocks a shared thread.
///
/// `@unchecked Sendable` is safe because `connection` is touched only under `owner`, by one
/// call at a time, on the connection's thread or on the thread of an inline caller.
final class SerializedConnection: @unchecked Sendable {
    /// How a connection runs calls on its caller's thread.
    struct InlineCalls {
        /// The busy timeout to restore after an inline call, which runs with none.
        var busyTimeoutMilliseconds: Int32
    }

    private let thread: JobThread
    private let connection: SQLiteConnection
    /// Held by the one call using the connection.
    private let owner = NSLock()
    private let inline: InlineCalls?
    /// Calls queued for the connection's thread: while there are any, ``runIfFree(_:)`` leaves
    /// the connection to them (an optional inline user must never starve a queued one).
    private let queued = Atomic<Int>(0)

    /// Whether calls wait for the connection's thread right now.
    var hasWaitingCalls: Bool { queued.load(ordering: .relaxed) > 0 }
    /// The connection's database file, for error messages.
    private let path: String

    init(label: String, connection: SQLiteConnection, idleSpin: Duration = .zero, inline: InlineCalls? = nil) {
        self.thread = JobThread(name: label, idleSpin: idleSpin)
        self.connection = connection
        self.inline = inline
        self.path = connection.path
    }

    deinit {
        thread.stop()
    }

    /// The connection's thread, as an executor tasks can prefer.
    var executor: any TaskExecutor { thread }

    /// Whether the caller runs on the connection's thread.
    var isCurrent: Bool { thread.isCurrent }

    /// Runs `body` with the connection and returns its result: on the caller's thread when it
    /// is the connection's, or when the connection takes inline calls, is free and no call
    /// waits for it; otherwise
    /// by queueing it on the connection's thread and suspending until it is done.
    ///
    /// A task cancelled before its work started gets ``CheckpointError/Code/cancelled`` and
    /// nothing runs; work that started runs to its end (a write is never left half done) and
    /// reports its own outcome.
    func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        // The same hand-off as `JobThread.perform`, written here because a generic async
        // function of another module is not specialized: calling `perform` cost 7% on the
        // shared pool's head read (benchmark, three interleaved runs).
        try throwIfCancelled()
        if thread.isCurrent {
            return try locked(body)
        }
        // Inline only when no call waits for the connection's thread: an inline call that
        // overtook queued ones could keep them waiting for as long as it kept calling (a
        // sweep's batches held a put back 20 ms at the 99th percentile).
        if let inline, queued.load(ordering: .relaxed) == 0, let result = try runInline(body, inline) {
            await InlineCallYield.afterCall()
            return result.value
        }
        let cancelled = Atomic<Bool>(false)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                queued.add(1, ordering: .relaxed)
                thread.submit {
                    defer { self.queued.subtract(1, ordering: .relaxed) }
                    if cancelled.load(ordering: .acquiring) {
                        continuation.resume(throwing: CheckpointError.cancellation)
                        return
                    }
                    continuation.resume(with: Result { try self.locked(body) })
                }
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
    }

    private struct Outcome<T> { var value: T }

    /// Runs `body` on the caller's thread if the connection takes inline calls, is free right
    /// now and no call waits for it; `nil` (nothing ran, or what ran changed nothing and was
    /// rolled back) otherwise.
    func runIfFree<T>(_ body: (SQLiteConnection) throws -> T) throws -> T? {
        guard let inline, !thread.isCurrent, queued.load(ordering: .relaxed) == 0 else { return nil }
        try throwIfCancelled()
        return try runInline(body, inline)?.value
    }

    /// Runs `body` holding the connection.
    private func locked<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        owner.lock()
        defer { owner.unlock() }
        return try mapErrors { try body(connection) }
    }

    /// Runs `body` on the caller's thread if the connection is free, with no busy timeout.
    ///
    /// - Returns: `nil` when the call must go to the connection's thread instead: the
    ///   connection is in use, or the call met another connection's lock before it changed
    ///   anything (it then left nothing behind: the failed statement's transaction was rolled
    ///   back).
    private func runInline<T>(_ body: (SQLiteConnection) throws -> T, _ inline: InlineCalls) throws -> Outcome<T>? {
        guard owner.try() else { return nil }
        defer { owner.unlock() }
        connection.setBusyTimeout(milliseconds: 0)
        defer { connection.setBusyTimeout(milliseconds: inline.busyTimeoutMilliseconds) }
        let changes = connection.totalChanges
        do {
            return Outcome(value: try body(connection))
        } catch let error as SQLiteError
            where [SQLITE_BUSY, SQLITE_LOCKED].contains(error.primaryResultCode)
            && connection.totalChanges == changes && connection.isInAutocommit
        {
            return nil
        } catch let error as SQLiteError {
            throw CheckpointError(sqlite: error, path: path, phase: .call)
        }
    }

    /// Runs `body` on the connection's thread whether or not the caller's task is cancelled
    /// (for closing).
    func runRegardlessOfCancellation(_ body: @escaping @Sendable (SQLiteConnection) -> Void) async {
        await thread.performRegardlessOfCancellation {
            self.owner.lock()
            defer { self.owner.unlock() }
            body(self.connection)
        }
    }

    /// Turns SQLite's errors into ``CheckpointError`` with the one mapping,
    /// ``CheckpointError/init(sqlite:path:phase:)``.
    private func mapErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SQLiteError {
            throw CheckpointError(sqlite: error, path: path, phase: .call)
        }
    }

    /// Schedules `body` on the connection's thread without waiting.
    func runDetached(_ body: @escaping @Sendable (SQLiteConnection) -> Void) {
        thread.submit {
            self.owner.lock()
            defer { self.owner.unlock() }
            body(self.connection)
        }
    }
}

/// A busy handler that polls finely: SQLite's own (`sqlite3_busy_timeout`) sleeps 1, 2, 5,
/// 10 ms and more between tries, so a write that meets a lock held for 100 µs (this process's
/// WAL checkpoint finishing, another process's commit) waited a millisecond or more, and 8 ms
/// after three tries. This one sleeps 20 µs, then twice as long each try, up to 1 ms, until
/// the timeout.
///
/// Only the connection's one user at a time touches it (on its thread, or an inline caller's
/// under the connection's lock), as SQLite calls the handler from the statement it runs.
final class BusyWait {
    /// How long a statement may wait for a lock in all; 0 fails at once.
    var timeoutNanoseconds: UInt64 = 0
    /// When the current wait began (the handler's first call for it).
    private var startedAt: UInt64 = 0

    static let handler: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32 = { context, tries in
        guard let context else { return 0 }
        return Unmanaged<BusyWait>.fromOpaque(context).takeUnretainedValue().shouldRetry(after: tries)
    }

    private func shouldRetry(after tries: Int32) -> Int32 {
        let now = DispatchTime.now().uptimeNanoseconds
        if tries == 0 { startedAt = now }
        let waited = now - startedAt
        guard waited < timeoutNanoseconds else { return 0 }
        let pause = min(UInt64(20_000) << UInt64(min(tries, 6)), 1_000_000, timeoutNanoseconds - waited)
        var request = timespec(tv_sec: 0, tv_nsec: Int(pause))
        nanosleep(&request, nil)
        return 1
    }
}

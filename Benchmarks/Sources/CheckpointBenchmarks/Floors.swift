import CHiredisFloor
import CPostgresFloor
import CSQLiteFloor
import Checkpointing
import Foundation

// MARK: The floor: raw sqlite3, one prepared statement

/// A raw driver doing the same work as a put (one INSERT of the whole state) and a head read
/// (one single-row SELECT).
protocol Floor {
    func write(thread: String, data: Data)
    func read(thread: String) -> Data
}

final class RawSQLite: Floor {
    private var db: OpaquePointer?
    private var insert: OpaquePointer?
    private var select: OpaquePointer?

    init(path: String, synchronous: String) {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK else {
            fatalError("raw open failed")
        }
        for sql in [
            "PRAGMA journal_mode = WAL", "PRAGMA synchronous = \(synchronous)",
            "CREATE TABLE IF NOT EXISTS states (id INTEGER PRIMARY KEY, thread TEXT NOT NULL, data BLOB NOT NULL)",
            "CREATE INDEX IF NOT EXISTS states_thread ON states (thread, id)",
        ] {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { fatalError(String(cString: sqlite3_errmsg(db))) }
        }
        sqlite3_prepare_v3(db, "INSERT INTO states (thread, data) VALUES (?1, ?2)", -1, 1, &insert, nil)
        sqlite3_prepare_v3(
            db, "SELECT data FROM states WHERE thread = ?1 ORDER BY id DESC LIMIT 1", -1, 1, &select, nil)
    }

    deinit {
        sqlite3_finalize(insert)
        sqlite3_finalize(select)
        sqlite3_close_v2(db)
    }

    /// One INSERT in its own (autocommit) transaction.
    func write(thread: String, data: Data) {
        sqlite3_bind_text(insert, 1, thread, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        data.withUnsafeBytes { buffer in
            _ = sqlite3_bind_blob(insert, 2, buffer.baseAddress, Int32(buffer.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
        guard sqlite3_step(insert) == SQLITE_DONE else { fatalError(String(cString: sqlite3_errmsg(db))) }
        sqlite3_reset(insert)
    }

    /// One single-row SELECT, copying the bytes out.
    func read(thread: String) -> Data {
        sqlite3_bind_text(select, 1, thread, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        defer { sqlite3_reset(select) }
        guard sqlite3_step(select) == SQLITE_ROW, let bytes = sqlite3_column_blob(select, 0) else { return Data() }
        return Data(bytes: bytes, count: Int(sqlite3_column_bytes(select, 0)))
    }
}

// MARK: The Postgres floor: raw libpq, one prepared statement, autocommit

final class RawPostgres: Floor, @unchecked Sendable {  // each instance is used by one thread at a time
    private let connection: OpaquePointer
    private let table: String

    init(url: String) throws {
        guard let connection = PQconnectdb(url), PQstatus(connection) == CONNECTION_OK else {
            throw CheckpointError(.connectionFailed, "the floor cannot connect to \(url)")
        }
        self.connection = connection
        table = "floor_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        for sql in [
            "CREATE TABLE \(table) (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, thread text NOT NULL, data bytea NOT NULL)",
            "CREATE INDEX ON \(table) (thread, id)",
        ] {
            PQclear(PQexec(connection, sql))
        }
        let types: [Oid] = [25, 17]
        PQclear(PQprepare(connection, "floor_insert", "INSERT INTO \(table) (thread, data) VALUES ($1, $2)", 2, types))
        PQclear(PQprepare(connection, "floor_select", "SELECT data FROM \(table) WHERE thread = $1 ORDER BY id DESC LIMIT 1", 1, types))
    }

    deinit {
        PQclear(PQexec(connection, "DROP TABLE \(table)"))
        PQfinish(connection)
    }

    private func execute(_ name: String, _ values: [[UInt8]]) -> OpaquePointer? {
        let buffers = values.map { value -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, value.count))
            value.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: value.count) }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        let pointers: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
        let lengths = values.map { Int32($0.count) }
        let formats = [Int32](repeating: 1, count: values.count)
        return PQexecPrepared(connection, name, Int32(values.count), pointers, lengths, formats, 1)
    }

    /// One INSERT, autocommit: one round trip.
    func write(thread: String, data: Data) {
        let result = execute("floor_insert", [Array(thread.utf8), [UInt8](data)])
        guard PQresultStatus(result) == PGRES_COMMAND_OK else { fatalError(String(cString: PQerrorMessage(connection))) }
        PQclear(result)
    }

    /// Prepares an arbitrary one-text-parameter query (profiling experiments).
    func prepareExperiment(_ sql: String) {
        let types: [Oid] = [25]
        PQclear(PQprepare(connection, "experiment", sql, 1, types))
    }

    func runExperiment(thread: String) -> Int {
        let result = execute("experiment", [Array(thread.utf8)])
        defer { PQclear(result) }
        return Int(PQntuples(result))
    }

    /// One single-row SELECT, copying the bytes out.
    func read(thread: String) -> Data {
        let result = execute("floor_select", [Array(thread.utf8)])
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK, PQntuples(result) == 1, let value = PQgetvalue(result, 0, 0) else {
            return Data()
        }
        return Data(bytes: value, count: Int(PQgetlength(result, 0, 0)))
    }
}

// MARK: The Redis floor: raw hiredis GET of the same bytes

final class RawRedis: @unchecked Sendable {  // used by one thread at a time
    private let context: UnsafeMutablePointer<redisContext>

    init(host: String, port: Int) throws {
        guard let context = redisConnect(host, Int32(port)), context.pointee.err == 0 else {
            throw CheckpointError(.connectionFailed, "the floor cannot connect to Redis at \(host):\(port)")
        }
        self.context = context
    }

    deinit { redisFree(context) }

    /// One GET, copying the bytes out.
    func get(_ key: Data) -> Data {
        var argv: [UnsafePointer<CChar>?] = []
        let words = [Data("GET".utf8), key]
        let buffers = words.map { word -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, word.count))
            word.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: word.count) }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        argv = buffers.map { UnsafePointer($0) }
        let lengths = words.map(\.count)
        guard let reply = argv.withUnsafeMutableBufferPointer({ redisCommandArgv(context, 2, $0.baseAddress, lengths) }) else {
            fatalError("raw GET failed")
        }
        defer { freeReplyObject(reply) }
        let value = reply.assumingMemoryBound(to: redisReply.self).pointee
        guard value.type == REDIS_REPLY_STRING, let bytes = value.str else { return Data() }
        return Data(bytes: bytes, count: value.len)
    }
}

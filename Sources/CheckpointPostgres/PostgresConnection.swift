import CCheckpointPostgres
import Checkpointing
import CheckpointRuntime
import Foundation

/// PostgreSQL's own failure: the SQLSTATE (when the server sent one) and libpq's message.
///
/// Kept as the ``CheckpointError/underlying`` error. The message is the server's or libpq's
/// text, which names objects and conditions but never the values of bound parameters.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The five-character SQLSTATE, such as `23505`, when the server reported one.
    public var sqlState: String?
    /// The server's or libpq's message.
    public var message: String
    /// Whether the connection is unusable after this failure (the server went away).
    public var connectionLost: Bool

    /// The SQLSTATE and the message.
    public var description: String {
        "\(sqlState.map { "SQLSTATE \($0): " } ?? "")\(message.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}

/// A bound parameter, sent in PostgreSQL's binary format.
enum PostgresValue {
    case null
    case bytes(Data)
    case text(String)
    case int8(Int64)
    case float8(Double)
    case bool(Bool)
    /// A `jsonb` value from JSON text.
    case jsonb(Data)

    static func id(_ id: CheckpointID) -> PostgresValue { .bytes(id.bigEndianBytes) }
    static func id(_ id: CheckpointID?) -> PostgresValue { id.map { .bytes($0.bigEndianBytes) } ?? .null }
    static func optional(_ data: Data?) -> PostgresValue { data.map { .bytes($0) } ?? .null }
    static func optional(_ text: String?) -> PostgresValue { text.map { .text($0) } ?? .null }

    /// The value's binary wire form, or `nil` for SQL NULL.
    var wire: [UInt8]? {
        switch self {
        case .null: nil
        case .bytes(let data): [UInt8](data)
        case .text(let text): Array(text.utf8)
        case .int8(let value): withUnsafeBytes(of: value.bigEndian, Array.init)
        case .float8(let value): withUnsafeBytes(of: value.bitPattern.bigEndian, Array.init)
        case .bool(let value): [value ? 1 : 0]
        case .jsonb(let json): [1] + [UInt8](json)
        }
    }
}

extension CheckpointID {
    /// The id's 16 bytes, most significant first, so that byte order is time order.
    var bigEndianBytes: Data {
        var big = (high.bigEndian, low.bigEndian)
        return withUnsafeBytes(of: &big) { Data($0) }
    }
}

/// A parameter's PostgreSQL type, by its OID.
enum PostgresType: UInt32, Sendable {
    case bool = 16
    case bytea = 17
    case int8 = 20
    case text = 25
    case float8 = 701
    case jsonb = 3802
}

extension PostgresValue {
    /// The type a value of this case is sent as; `nil` (let the server infer it) for NULL.
    var type: PostgresType? {
        switch self {
        case .null: nil
        case .bytes: .bytea
        case .text: .text
        case .int8: .int8
        case .float8: .float8
        case .bool: .bool
        case .jsonb: .jsonb
        }
    }
}

/// A fixed statement of the schema: prepared once per connection under a name made from its
/// key, with its parameters' types declared (the binary format needs them exact).
struct PostgresSQL: Sendable {
    let key: Int
    let text: String
    let types: [PostgresType]
    /// The prepared statement's name: the key and a hash of the text, so that a server
    /// connection another version of this library prepared statements on (a session pooler
    /// hands server connections from client to client) never runs another text under the name.
    let name: String

    init(_ key: Int, _ types: [PostgresType], _ text: String) {
        self.key = key
        self.types = types
        self.text = text
        let hash = Array(text.utf8).withUnsafeBytes { XXHash64.hash($0) }
        self.name = "checkpointing_\(key)_\(String(hash, radix: 36))"
    }
}

/// Owns one `PGconn*` and knows which statements it prepared.
///
/// Not `Sendable`: only the pool's worker thread that owns it touches it.
final class PostgresConnection: RequestReplyConnection {
    private var handle: OpaquePointer?
    /// Whether statements are prepared once under a name and executed by it; `false` through
    /// a transaction pooler, where a name prepared in one transaction may not exist in the
    /// next (another server connection): then every statement is sent whole, unnamed, with its
    /// parameters (`PQexecParams`), the same one round trip.
    private(set) var namedStatements: Bool
    /// Whether a named statement that failed as missing or as prepared already (a transaction
    /// pooler that was not declared) may turn this connection to unnamed statements and run
    /// again; not in tenant mode, whose session setting the pooler would not keep either.
    let fallsBackToUnnamed: Bool
    private var prepared: Set<Int> = []
    /// Prepared dynamic statements (history filters, inbox shapes), by text.
    private var preparedText: [String: String] = [:]
    /// When the connection was opened, for diagnostics.
    let openedAt = ContinuousClock.now

    /// Connects with libpq keyword/value parameters (never a concatenated string, so a
    /// password with any character is passed as is).
    init(parameters: [(String, String)], namedStatements: Bool = true, fallsBackToUnnamed: Bool = false) throws(PostgresError) {
        self.namedStatements = namedStatements
        self.fallsBackToUnnamed = fallsBackToUnnamed
        let keywords = parameters.map { strdup($0.0) } + [nil]
        let values = parameters.map { strdup($0.1) } + [nil]
        defer {
            for pointer in keywords { free(pointer) }
            for pointer in values { free(pointer) }
        }
        let connection: OpaquePointer? = keywords.withUnsafeBufferPointer { keywordBuffer in
            values.withUnsafeBufferPointer { valueBuffer in
                keywordBuffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { keywords in
                    valueBuffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                        PQconnectdbParams(keywords.baseAddress, values.baseAddress, 0)
                    }
                }
            }
        }
        guard let connection else {
            throw PostgresError(sqlState: nil, message: "out of memory", connectionLost: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(sqlState: Self.sqlState(inConnectMessage: message), message: message, connectionLost: true)
        }
        // libpq prints the server's notices to stderr unless told otherwise; a library must not.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
    }

    deinit {
        close()
    }

    /// Closes the connection. Safe to call twice.
    func close() {
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
        prepared.removeAll()
        preparedText.removeAll()
    }

    var isOpen: Bool { handle != nil }

    /// Whether an idle connection is still usable: open, in a good state, and with nothing
    /// to read. An idle connection has nothing to read unless the server closed it (a
    /// restart, an administrator's kill, an idle timeout) and sent its goodbye and EOF.
    var isHealthy: Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK, PQtransactionStatus(handle) == PQTRANS_IDLE else {
            return false
        }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready == 0
    }

    /// Whether a pooler answered this connection: the process id the connection was given at
    /// its start (a pooler makes up its own) is not the server process's.
    func isAnsweredByAPooler() throws(PostgresError) -> Bool {
        let rows = try textQuery("SELECT pg_backend_pid()", [])
        guard let text = rows.first?.first ?? nil, let serverPID = Int32(text) else { return false }
        return serverPID != backendPID
    }

    /// The server process's id, for diagnostics and tests.
    var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    private static func sqlState(inConnectMessage message: String) -> String? {
        if message.contains("password authentication failed") { return "28P01" }
        if message.contains("does not exist") && message.contains("database") { return "3D000" }
        if message.contains("too many clients") || message.contains("remaining connection slots") { return "53300" }
        return nil
    }

    private func lostConnectionError() -> PostgresError {
        let message = handle.map { String(cString: PQerrorMessage($0)) } ?? "connection closed"
        return PostgresError(sqlState: nil, message: message, connectionLost: true)
    }

    /// Runs SQL text with no parameters (DDL, transaction control, several statements at once).
    func execute(_ sql: String) throws(PostgresError) {
        guard let handle else { throw lostConnectionError() }
        _ = try check(PQexec(handle, sql))
    }

    /// Runs a fixed statement, preparing it on first use on this connection (unless
    /// ``namedStatements`` is off).
    func query(_ sql: PostgresSQL, _ parameters: [PostgresValue]) throws(PostgresError) -> PostgresResult {
        guard namedStatements else { return try executeUnnamed(sql.text, sql.types.map(\.rawValue), parameters) }
        do {
            if !prepared.contains(sql.key) {
                try prepare(name: sql.name, text: sql.text, types: sql.types.map(\.rawValue))
                prepared.insert(sql.key)
            }
            return try executePrepared(name: sql.name, parameters)
        } catch let error where fallsBackToUnnamed && Self.isPoolerSymptom(error) {
            // The statement did not run: the server refused its name before executing it.
            turnToUnnamedStatements()
            return try executeUnnamed(sql.text, sql.types.map(\.rawValue), parameters)
        }
    }

    /// Whether an error is what a transaction pooler makes of named statements: the name is
    /// missing on the server connection the pooler picked (26000), or another client
    /// prepared it there already (42P05).
    static func isPoolerSymptom(_ error: PostgresError) -> Bool {
        error.sqlState == "26000" || error.sqlState == "42P05"
    }

    /// Stops using named statements on this connection (a transaction pooler was found).
    func turnToUnnamedStatements() {
        namedStatements = false
        prepared.removeAll()
        preparedText.removeAll()
    }

    /// Sends a statement whole, unnamed: parsed, bound and executed in one round trip.
    private func executeUnnamed(
        _ text: String, _ types: [UInt32], _ parameters: [PostgresValue]
    ) throws(PostgresError) -> PostgresResult {
        guard let handle else { throw lostConnectionError() }
        let result = Self.withWire(parameters) { count, values, lengths, formats in
            PQexecParams(handle, text, count, types.isEmpty ? nil : types, values, lengths, formats, 1)
        }
        return try check(result)
    }

    /// Runs a statement made at run time (its shape, never its values), prepared and kept
    /// per distinct text (unless ``namedStatements`` is off).
    func query(text: String, _ parameters: [PostgresValue]) throws(PostgresError) -> PostgresResult {
        // A dynamic statement's values are never NULL, so their cases give the types.
        let types = parameters.map { $0.type?.rawValue ?? 0 }
        guard namedStatements else { return try executeUnnamed(text, types, parameters) }
        let name: String
        if let existing = preparedText[text] {
            name = existing
        } else {
            let hash = Array(text.utf8).withUnsafeBytes { XXHash64.hash($0) }
            name = "checkpointing_dynamic_\(String(hash, radix: 36))"
            do {
                try prepare(name: name, text: text, types: types)
            } catch let error where fallsBackToUnnamed && Self.isPoolerSymptom(error) {
                turnToUnnamedStatements()
                return try executeUnnamed(text, types, parameters)
            }
            preparedText[text] = name
        }
        do {
            return try executePrepared(name: name, parameters)
        } catch let error where fallsBackToUnnamed && Self.isPoolerSymptom(error) {
            turnToUnnamedStatements()
            return try executeUnnamed(text, types, parameters)
        }
    }

    private func prepare(name: String, text: String, types: [UInt32]) throws(PostgresError) {
        guard let handle else { throw lostConnectionError() }
        _ = try check(PQprepare(handle, name, text, Int32(types.count), types))
    }

    private func executePrepared(name: String, _ parameters: [PostgresValue]) throws(PostgresError) -> PostgresResult {
        guard let handle else { throw lostConnectionError() }
        let result = Self.withWire(parameters) { count, values, lengths, formats in
            PQexecPrepared(handle, name, count, values, lengths, formats, 1)
        }
        return try check(result)
    }

    /// Calls `body` with the parameters as libpq takes them (binary format).
    private static func withWire<R>(
        _ parameters: [PostgresValue],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, [Int32], [Int32]) -> R
    ) -> R {
        let wires = parameters.map(\.wire)
        var lengths = [Int32](repeating: 0, count: wires.count)
        let formats = [Int32](repeating: 1, count: wires.count)
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: wires.count)
        for (index, wire) in wires.enumerated() {
            guard let wire else { continue }
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(wire.count, 1))
            wire.withUnsafeBufferPointer { source in
                if let base = source.baseAddress {
                    UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: wire.count)
                }
            }
            pointers[index] = buffer
            lengths[index] = Int32(wire.count)
        }
        defer { for pointer in pointers { pointer?.deallocate() } }
        return pointers.withUnsafeBufferPointer { values in
            values.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                body(Int32(wires.count), values.baseAddress, lengths, formats)
            }
        }
    }

    /// Sends the execution of a fixed statement without waiting for its reply (see
    /// ``receive()``).
    ///
    /// - Returns: `false` when the statement is not prepared on this connection yet: nothing
    ///   was sent (``query(_:_:)`` prepares it). With unnamed statements it is always sent.
    func send(_ sql: PostgresSQL, _ parameters: [PostgresValue]) throws(PostgresError) -> Bool {
        guard let handle else { throw lostConnectionError() }
        let sent: Int32
        if namedStatements {
            guard prepared.contains(sql.key) else { return false }
            sent = Self.withWire(parameters) { count, values, lengths, formats in
                PQsendQueryPrepared(handle, sql.name, count, values, lengths, formats, 1)
            }
        } else {
            let types = sql.types.map(\.rawValue)
            sent = Self.withWire(parameters) { count, values, lengths, formats in
                PQsendQueryParams(handle, sql.text, count, types.isEmpty ? nil : types, values, lengths, formats, 1)
            }
        }
        guard sent == 1 else { throw lostConnectionError() }
        return true
    }

    /// Whether the reply to what ``send(_:_:)`` sent has arrived, waiting up to `wait`.
    func replyArrives(within wait: Duration) throws -> Bool {
        guard let handle else { throw lostConnectionError() }
        let deadline = ContinuousClock.now + wait
        while true {
            guard PQconsumeInput(handle) == 1 else { throw lostConnectionError() }
            if PQisBusy(handle) == 0 { return true }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            do {
                _ = try waitUntilReadable(PQsocket(handle), within: left)
            } catch {
                throw PostgresError(sqlState: nil, message: "\(error)", connectionLost: true)
            }
        }
    }

    /// The reply to what ``send(_:_:)`` sent, waiting for it when it has not arrived.
    func receive() throws(PostgresError) -> PostgresResult {
        guard let handle else { throw lostConnectionError() }
        let first = PQgetResult(handle)
        // A statement has one result; libpq then returns NULL, after which the connection
        // takes the next request.
        while let extra = PQgetResult(handle) { PQclear(extra) }
        return try check(first)
    }

    /// Runs SQL with text parameters and returns every value as text (diagnostics only).
    func textQuery(_ sql: String, _ parameters: [String]) throws(PostgresError) -> [[String?]] {
        guard let handle else { throw lostConnectionError() }
        let values = parameters.map { strdup($0) }
        defer { for value in values { free(value) } }
        let raw = values.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { buffer in
                PQexecParams(handle, sql, Int32(values.count), nil, buffer.baseAddress, nil, nil, 0)
            }
        }
        let result = try check(raw)
        return result.textRows()
    }

    /// Turns a `PGresult` into a result or an error, clearing failed results.
    private func check(_ result: OpaquePointer?) throws(PostgresError) -> PostgresResult {
        guard let result else { throw lostConnectionError() }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(result)
        default:
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result))
            PQclear(result)
            let lost = handle.map { PQstatus($0) != CONNECTION_OK } ?? true
            throw PostgresError(sqlState: sqlState, message: message, connectionLost: lost)
        }
    }

    /// Runs `body` in a transaction (`BEGIN` with `mode`, such as `ISOLATION LEVEL REPEATABLE READ`),
    /// rolling back when it throws.
    func transaction<T>(_ mode: String = "", _ body: () throws -> T) throws -> T {
        try execute(mode.isEmpty ? "BEGIN" : "BEGIN \(mode)")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if let handle, PQstatus(handle) == CONNECTION_OK, PQtransactionStatus(handle) != PQTRANS_IDLE {
                try? execute("ROLLBACK")
            }
            throw error
        }
    }
}

/// Owns one `PGresult`; columns are read in binary format.
final class PostgresResult {
    private let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        PQclear(pointer)
    }

    var rowCount: Int { Int(PQntuples(pointer)) }

    /// Every value as text, for a result in text format.
    func textRows() -> [[String?]] {
        let columns = Int(PQnfields(pointer))
        return (0..<rowCount).map { row in
            (0..<columns).map { column in isNull(row, column) ? nil : text(row, column) }
        }
    }

    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(pointer, Int32(row), Int32(column)) != 0 }

    func bytes(_ row: Int, _ column: Int) -> UnsafeRawBufferPointer {
        let count = Int(PQgetlength(pointer, Int32(row), Int32(column)))
        guard let value = PQgetvalue(pointer, Int32(row), Int32(column)) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: value, count: count)
    }

    func data(_ row: Int, _ column: Int) -> Data { Data(bytes(row, column)) }

    func text(_ row: Int, _ column: Int) -> String { String(decoding: bytes(row, column), as: UTF8.self) }

    func int64(_ row: Int, _ column: Int) throws(CheckpointError) -> Int64 {
        let buffer = bytes(row, column)
        guard buffer.count == 8 else { throw CheckpointError(.corruptData, "a stored integer has \(buffer.count) bytes") }
        return Int64(bigEndian: buffer.loadUnaligned(as: Int64.self))
    }

    func double(_ row: Int, _ column: Int) throws(CheckpointError) -> Double {
        let buffer = bytes(row, column)
        guard buffer.count == 8 else { throw CheckpointError(.corruptData, "a stored number has \(buffer.count) bytes") }
        return Double(bitPattern: UInt64(bigEndian: buffer.loadUnaligned(as: UInt64.self)))
    }

    func bool(_ row: Int, _ column: Int) -> Bool {
        let buffer = bytes(row, column)
        return buffer.count == 1 && buffer[0] != 0
    }

    /// A `jsonb` column's JSON text (binary jsonb is a version byte, then the text).
    func jsonb(_ row: Int, _ column: Int) throws(CheckpointError) -> Data {
        let buffer = bytes(row, column)
        guard buffer.count >= 1, buffer[0] == 1 else { throw CheckpointError(.corruptData, "a stored jsonb value has an unknown format") }
        return Data(buffer.dropFirst())
    }

    func checkpointID(_ row: Int, _ column: Int) throws(CheckpointError) -> CheckpointID {
        let buffer = bytes(row, column)
        guard buffer.count == 16 else {
            throw CheckpointError(.corruptData, "a stored checkpoint id has \(buffer.count) bytes instead of 16")
        }
        return CheckpointID(buffer)
    }

    func optionalCheckpointID(_ row: Int, _ column: Int) throws(CheckpointError) -> CheckpointID? {
        isNull(row, column) ? nil : try checkpointID(row, column)
    }
}

import CCheckpointHiredis
import Checkpointing
import CheckpointRuntime
import Foundation

/// Redis's own failure, or hiredis's (connection refused, timeout, EOF).
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// The message; never holds cached values.
    public var message: String
    /// Whether the connection is unusable after this failure.
    public var connectionLost: Bool

    /// The message.
    public var description: String { message }
}

/// A reply, copied out of hiredis's reply object.
enum RedisReply: Equatable {
    case string(Data)
    case integer(Int64)
    case null
    case status(String)
    case array([RedisReply])
    case error(String)
}

/// Owns one `redisContext*`. Commands go through the argv form (`redisCommandArgv`), so every
/// argument is binary-safe and nothing is formatted into a command string.
///
/// Not `Sendable`: only the pool's worker thread that owns it touches it.
final class RedisConnection: RequestReplyConnection {
    private var context: UnsafeMutablePointer<redisContext>?
    /// The server's `run_id` (40 hex characters), new each time a Redis server starts: cache
    /// entries carry the one they were written under, so that entries a restarted server came
    /// back with (it may have lost later writes) are not trusted.
    private(set) var runID = Data(repeating: UInt8(ascii: "0"), count: RedisConnection.runIDLength)
    static let runIDLength = 40

    init(host: String, port: Int, password: String?, database: Int, timeout: Duration) throws(RedisError) {
        let microseconds = max(1000, timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000)
        let interval = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
        guard let context = redisConnectWithTimeout(host, Int32(port), interval) else {
            throw RedisError(message: "out of memory", connectionLost: true)
        }
        guard context.pointee.err == 0 else {
            let message = Self.errorString(context)
            redisFree(context)
            throw RedisError(message: "cannot connect to Redis at \(host):\(port): \(message)", connectionLost: true)
        }
        // Every command, not only the connect, fails after the timeout: a slow Redis is a
        // missing Redis.
        redisSetTimeout(context, interval)
        self.context = context
        if let password {
            if case .error(let message) = try command([Data("AUTH".utf8), Data(password.utf8)]) {
                close()
                throw RedisError(message: "Redis refused the password: \(message.prefix(80))", connectionLost: true)
            }
        }
        if database != 0 {
            if case .error(let message) = try command([Data("SELECT".utf8), Data(String(database).utf8)]) {
                close()
                throw RedisError(message: "Redis refused database \(database): \(message.prefix(80))", connectionLost: true)
            }
        }
        runID = try Self.runID(of: self)
    }

    /// Reads `run_id` from `INFO server`.
    private static func runID(of connection: RedisConnection) throws(RedisError) -> Data {
        guard case .string(let info) = try connection.command([Data("INFO".utf8), Data("server".utf8)]),
            let text = String(data: info, encoding: .utf8),
            let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("run_id:") })
        else {
            connection.close()
            throw RedisError(message: "Redis did not report its run_id (INFO server)", connectionLost: true)
        }
        let id = Data(line.dropFirst("run_id:".count).utf8)
        guard id.count == runIDLength else {
            connection.close()
            throw RedisError(message: "Redis reported a malformed run_id", connectionLost: true)
        }
        return id
    }

    deinit {
        close()
    }

    func close() {
        if let arrived {
            freeReplyObject(arrived)
            self.arrived = nil
        }
        if let context {
            redisFree(context)
            self.context = nil
        }
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { buffer in
            let bytes = buffer.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }

    /// Open, without an error, and with nothing unexpected to read (a server that went away
    /// leaves EOF to read).
    var isHealthy: Bool {
        guard let context, context.pointee.err == 0 else { return false }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    /// Sends one command and reads its reply. A Redis error reply (`-ERR ...`) is returned as
    /// `.error`, not thrown; a broken connection or a timeout throws.
    func command(_ arguments: [Data]) throws(RedisError) -> RedisReply {
        guard let context else { throw RedisError(message: "the Redis connection is closed", connectionLost: true) }
        let raw = Self.withArgv(arguments) { count, argv, lengths in redisCommandArgv(context, count, argv, lengths) }
        guard let raw else {
            let message = Self.errorString(context)
            throw RedisError(message: "Redis call failed: \(message)", connectionLost: true)
        }
        defer { freeReplyObject(raw) }
        return Self.copy(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Calls `body` with the arguments as hiredis's argv form takes them.
    private static func withArgv<R>(
        _ arguments: [Data], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?, [Int]) -> R
    ) -> R {
        let lengths = arguments.map { $0.count }
        let buffers = arguments.map { argument -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, argument.count))
            argument.withUnsafeBytes { source in
                if let base = source.baseAddress {
                    UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: argument.count)
                }
            }
            return buffer
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        var argv: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
        return argv.withUnsafeMutableBufferPointer { argv in body(Int32(arguments.count), argv.baseAddress, lengths) }
    }

    /// A reply read by ``replyArrives(within:)`` and not yet taken by ``receive()``.
    private var arrived: UnsafeMutableRawPointer?

    /// Sends one command without waiting for its reply (see ``receive()``).
    func send(_ arguments: [Data]) throws(RedisError) {
        guard let context, arrived == nil else {
            throw RedisError(message: "the Redis connection is closed", connectionLost: true)
        }
        let appended = Self.withArgv(arguments) { count, argv, lengths in
            redisAppendCommandArgv(context, count, argv, lengths)
        }
        var done: Int32 = 0
        guard appended == REDIS_OK else { throw failure(context) }
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw failure(context) }
        }
    }

    /// Whether the reply to what ``send(_:)`` sent has arrived, waiting up to `wait`.
    func replyArrives(within wait: Duration) throws -> Bool {
        guard let context else { throw RedisError(message: "the Redis connection is closed", connectionLost: true) }
        if arrived != nil { return true }
        let deadline = ContinuousClock.now + wait
        while true {
            var reply: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &reply) == REDIS_OK else { throw failure(context) }
            if let reply {
                arrived = reply
                return true
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            do {
                guard try waitUntilReadable(context.pointee.fd, within: left) else { continue }
            } catch {
                throw RedisError(message: "Redis call failed: \(error)", connectionLost: true)
            }
            guard redisBufferRead(context) == REDIS_OK else { throw failure(context) }
        }
    }

    /// The reply to what ``send(_:)`` sent, waiting for it (up to the timeout) when it has not
    /// arrived.
    func receive() throws(RedisError) -> RedisReply {
        guard let context else { throw RedisError(message: "the Redis connection is closed", connectionLost: true) }
        var raw = arrived
        arrived = nil
        if raw == nil {
            guard redisGetReply(context, &raw) == REDIS_OK else { throw failure(context) }
        }
        guard let raw else { throw failure(context) }
        defer { freeReplyObject(raw) }
        return Self.copy(raw.assumingMemoryBound(to: redisReply.self))
    }

    private func failure(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        RedisError(message: "Redis call failed: \(Self.errorString(context))", connectionLost: true)
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .string(value.str.map { Data(bytes: $0, count: value.len) } ?? Data())
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_STATUS:
            return .status(value.str.map { String(decoding: Data(bytes: $0, count: value.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(value.str.map { String(decoding: Data(bytes: $0, count: value.len), as: UTF8.self) } ?? "")
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(copy(element)) }
            }
            return .array(elements)
        default:
            return .error("unknown reply type \(value.type)")
        }
    }
}

import Foundation

/// A question an agent asks a person: saved with a checkpoint, it makes the thread wait.
///
/// The thread shows in the inbox (``Checkpointer/pausedThreads(_:)``) while the paused
/// checkpoint is its head and unanswered. ``reason`` stays plain text so that the inbox can
/// filter on it; the ``prompt`` is the encoded question.
public struct Pause: Sendable, Hashable, Identifiable {
    /// The longest reason accepted, in bytes of UTF-8.
    public static let maximumReasonByteCount = 128

    /// The pause's id, which an answer names.
    public var id: UUID
    /// A short machine-readable reason, such as `"refund-approval"` (1 to 128 bytes).
    public var reason: String
    /// What the person is asked, encoded (JSON when made by ``CheckpointThread``).
    public var prompt: Data
    /// When the agent paused.
    public var createdAt: Date
    /// When the question stops accepting answers, if ever.
    public var expiresAt: Date?

    /// Creates a pause.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for an empty or too long reason, or an
    ///   expiry that is not after `createdAt`.
    public init(
        id: UUID = UUID(), reason: String, prompt: Data, createdAt: Date = Date(), expiresAt: Date? = nil
    ) throws(CheckpointError) {
        guard !reason.isEmpty, reason.utf8.count <= Self.maximumReasonByteCount, !reason.utf8.contains(0) else {
            throw CheckpointError(
                .invalidArgument, "a pause reason must be 1 to \(Self.maximumReasonByteCount) bytes without NUL")
        }
        if let expiresAt, expiresAt <= createdAt {
            throw CheckpointError(.invalidArgument, "a pause must expire after it is made")
        }
        self.id = id
        self.reason = reason
        self.prompt = prompt
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    /// Whether the pause has expired at `now`.
    public func isExpired(at now: Date) -> Bool {
        expiresAt.map { $0 <= now } ?? false
    }
}

/// A person's answer to a ``Pause``, recorded exactly once.
public struct PauseAnswer: Sendable, Hashable {
    /// The pause answered.
    public var pauseID: UUID
    /// The answer, encoded (JSON when made by ``CheckpointThread``).
    public var response: Data
    /// When the answer was recorded.
    public var answeredAt: Date

    /// Creates an answer.
    public init(pauseID: UUID, response: Data, answeredAt: Date) {
        self.pauseID = pauseID
        self.response = response
        self.answeredAt = answeredAt
    }
}

/// Where a page of the inbox ended; pass it to the next query to continue.
///
/// The inbox is ordered by pause time, then thread and namespace (by their UTF-8 bytes, as
/// the stores order them), so a thread that pauses after a page was read shows on a later
/// page, and no thread shows twice.
public struct InboxCursor: Sendable, Hashable, Codable {
    /// The pause time of the last thread of the page.
    public var createdAt: Date
    /// Its thread.
    public var thread: String
    /// Its namespace.
    public var namespace: String

    /// Creates a cursor.
    public init(createdAt: Date, thread: String, namespace: String) {
        self.createdAt = createdAt
        self.thread = thread
        self.namespace = namespace
    }

    /// Whether a paused thread comes after this cursor in inbox order.
    package func precedes(_ item: PausedThread) -> Bool {
        (createdAt, BytewiseString(thread), BytewiseString(namespace)) < item.inboxOrder
    }
}

/// What to list from the inbox.
public struct InboxQuery: Sendable, Hashable {
    /// Only pauses with this reason (the same UTF-8 bytes); `nil` for all.
    public var reason: String?
    /// Only threads with this tenant (the thread id's part before `:`, the same UTF-8 bytes);
    /// `nil` for all.
    public var tenant: String?
    /// Only pauses that expired at or before this time; `nil` lists every waiting pause.
    public var expiredAsOf: Date?
    /// Continue after this cursor; `nil` for the first page.
    public var after: InboxCursor?
    /// The most threads in one page. Default: 100.
    public var limit: Int

    /// Creates a query.
    public init(
        reason: String? = nil, tenant: String? = nil, expiredAsOf: Date? = nil, after: InboxCursor? = nil,
        limit: Int = 100
    ) {
        self.reason = reason
        self.tenant = tenant
        self.expiredAsOf = expiredAsOf
        self.after = after
        self.limit = limit
    }
}

extension PausedThread {
    /// The inbox order: pause time, then thread and namespace by their UTF-8 bytes.
    package var inboxOrder: (Date, BytewiseString, BytewiseString) {
        (pause.createdAt, BytewiseString(thread.rawValue), BytewiseString(namespace))
    }
}

/// A thread waiting for a person: its head is paused and unanswered.
public struct PausedThread: Sendable, Hashable {
    /// The thread.
    public var thread: ThreadID
    /// Its namespace.
    public var namespace: String
    /// The paused checkpoint (the thread's head).
    public var checkpointID: CheckpointID
    /// The pause, with its prompt.
    public var pause: Pause

    /// Creates an inbox entry.
    public init(thread: ThreadID, namespace: String, checkpointID: CheckpointID, pause: Pause) {
        self.thread = thread
        self.namespace = namespace
        self.checkpointID = checkpointID
        self.pause = pause
    }

    /// Decodes the prompt (encoded as JSON by ``CheckpointThread/pause(_:reason:prompt:expiresAt:metadata:)``).
    ///
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when it is not a `Prompt`.
    public func prompt<Prompt: Decodable>(as type: Prompt.Type) throws(CheckpointError) -> Prompt {
        do {
            return try JSONDecoder().decode(Prompt.self, from: pause.prompt)
        } catch {
            throw CheckpointError(.decodingFailed, "the prompt of pause \(pause.id) is not a \(Prompt.self)")
        }
    }
}

/// One page of the inbox.
public struct InboxPage: Sendable, Hashable {
    /// The threads, oldest pause first.
    public var items: [PausedThread]
    /// The cursor for the next page, or `nil` when this page was the last.
    public var next: InboxCursor?

    /// Creates a page.
    public init(items: [PausedThread], next: InboxCursor?) {
        self.items = items
        self.next = next
    }
}

extension InboxQuery {
    /// Checks the limit and filters, shared by every backend.
    package func validate() throws(CheckpointError) {
        guard limit >= 1 else { throw CheckpointError(.invalidArgument, "an inbox limit must be at least 1") }
    }

    /// Whether a paused thread matches the filters (not the cursor). Reasons and tenants
    /// match by their UTF-8 bytes, as the stores compare them.
    package func matches(_ item: PausedThread) -> Bool {
        if let reason, !BytewiseString.equal(item.pause.reason, reason) { return false }
        if let tenant, !(item.thread.tenant.map { BytewiseString.equal(String($0), tenant) } ?? false) { return false }
        if let expiredAsOf, !item.pause.isExpired(at: expiredAsOf) { return false }
        return true
    }

    /// The page of waiting pauses listed in any order, some of which may not match: filters
    /// them, keeps those after the cursor, orders them and pages.
    package func page(unordered candidates: [PausedThread]) -> InboxPage {
        let items = candidates.filter { item in matches(item) && (after.map { $0.precedes(item) } ?? true) }
        return page(items.sorted { $0.inboxOrder < $1.inboxOrder })
    }

    /// The page for items already in inbox order and matching.
    package func page(_ items: [PausedThread]) -> InboxPage {
        let items = Array(items.prefix(limit))
        let next = items.count == limit ? items.last.map {
            InboxCursor(createdAt: $0.pause.createdAt, thread: $0.thread.rawValue, namespace: $0.namespace)
        } : nil
        return InboxPage(items: items, next: next)
    }
}

// MARK: - Binary form, shared by the backends

extension Pause {
    /// The pause's binary form, as stored beside its checkpoint.
    package func encoded() -> Data {
        var writer = ByteWriter()
        writer.writeByte(1)
        withUnsafeBytes(of: id.uuid) { writer.bytes.append(contentsOf: $0) }
        writer.writeBytes(Data(reason.utf8))
        writer.writeBytes(prompt)
        // Dates keep their own representation, so that they read back exactly.
        writer.writeVarint(createdAt.timeIntervalSinceReferenceDate.bitPattern)
        if let expiresAt {
            writer.writeByte(1)
            writer.writeVarint(expiresAt.timeIntervalSinceReferenceDate.bitPattern)
        } else {
            writer.writeByte(0)
        }
        return writer.data
    }

    /// Reads the binary form.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when the bytes are not a pause.
    package init(decoding data: Data) throws(CheckpointError) {
        var reader = ByteReader(data)
        guard try reader.readByte() == 1 else {
            throw CheckpointError(.corruptData, "a stored pause has an unknown format")
        }
        var bytes: [UInt8] = []
        for _ in 0..<16 { bytes.append(try reader.readByte()) }
        let uuid = UUID(uuid: (
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
            bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        guard let reason = String(data: try reader.readBytes(), encoding: .utf8) else {
            throw CheckpointError(.corruptData, "a stored pause reason is not UTF-8")
        }
        let prompt = Data(try reader.readBytes())
        let createdAt = Date(timeIntervalSinceReferenceDate: Double(bitPattern: try reader.readVarint()))
        var expiresAt: Date?
        if try reader.readByte() == 1 {
            expiresAt = Date(timeIntervalSinceReferenceDate: Double(bitPattern: try reader.readVarint()))
        }
        guard reader.isAtEnd else { throw CheckpointError(.corruptData, "a stored pause has trailing bytes") }
        self.id = uuid
        self.reason = reason
        self.prompt = prompt
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

extension UUID {
    /// The 16 bytes of the UUID.
    package var bytes: Data { withUnsafeBytes(of: uuid) { Data($0) } }

    /// A UUID from 16 bytes.
    package init(bytes data: Data) throws(CheckpointError) {
        guard data.count == 16 else { throw CheckpointError(.corruptData, "a stored UUID has \(data.count) bytes") }
        let b = Array(data)
        self.init(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}

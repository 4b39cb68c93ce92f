import Foundation

/// One saved version of a thread's state, as read back from a ``Checkpointer``.
public struct Checkpoint: Sendable, Identifiable {
    /// The time-ordered id of this checkpoint.
    public var id: CheckpointID
    /// The thread the checkpoint belongs to.
    public var thread: ThreadID
    /// The namespace within the thread (`""` by default), for sub-agents.
    public var namespace: String
    /// The checkpoint this one was written after, or `nil` for a thread's first checkpoint.
    public var parentID: CheckpointID?
    /// The number of checkpoints between this one and the thread's first (0 for the first).
    public var step: Int
    /// When the checkpoint was written.
    public var createdAt: Date
    /// Plain-text, queryable metadata.
    public var metadata: Metadata
    /// The state, split into named channels of bytes.
    public var channels: [String: ChannelValue]
    /// The question this checkpoint asks a person, if it pauses the thread.
    public var pause: Pause?
    /// The person's answer to ``pause``, once recorded.
    public var answer: PauseAnswer?
    /// Where the store read each list channel from, when it knows (a façade that decoded an
    /// earlier version of a list then decodes only what was appended). Code that changes a
    /// list's elements in a checkpoint it read must remove that list's entry.
    package var listOrigins: [String: ListOrigin] = [:]

    /// Creates a checkpoint value.
    public init(
        id: CheckpointID, thread: ThreadID, namespace: String, parentID: CheckpointID?, step: Int,
        createdAt: Date, metadata: Metadata, channels: [String: ChannelValue], pause: Pause? = nil,
        answer: PauseAnswer? = nil
    ) {
        self.pause = pause
        self.answer = answer
        self.id = id
        self.thread = thread
        self.namespace = namespace
        self.parentID = parentID
        self.step = step
        self.createdAt = createdAt
        self.metadata = metadata
        self.channels = channels
    }
}

/// The content of one channel of a stored checkpoint.
public enum ChannelValue: Sendable, Hashable {
    /// A single encoded value.
    case value(Data)
    /// An ordered list of encoded elements; stored so that appending costs only the new elements.
    case list([Data])
}

/// A checkpoint's description without its channel contents, as listed by
/// ``Checkpointer/history(thread:namespace:before:limit:where:)``.
public struct CheckpointSummary: Sendable, Hashable, Identifiable {
    /// The checkpoint's id.
    public var id: CheckpointID
    /// The thread it belongs to.
    public var thread: ThreadID
    /// Its namespace.
    public var namespace: String
    /// The checkpoint it was written after.
    public var parentID: CheckpointID?
    /// Its distance from the thread's first checkpoint.
    public var step: Int
    /// When it was written.
    public var createdAt: Date
    /// Its metadata.
    public var metadata: Metadata

    /// Creates a summary.
    public init(
        id: CheckpointID, thread: ThreadID, namespace: String, parentID: CheckpointID?, step: Int,
        createdAt: Date, metadata: Metadata
    ) {
        self.id = id
        self.thread = thread
        self.namespace = namespace
        self.parentID = parentID
        self.step = step
        self.createdAt = createdAt
        self.metadata = metadata
    }
}

extension Checkpoint {
    /// A checkpoint from its summary and contents.
    public init(
        summary: CheckpointSummary, channels: [String: ChannelValue], pause: Pause? = nil, answer: PauseAnswer? = nil
    ) {
        self.init(
            id: summary.id, thread: summary.thread, namespace: summary.namespace, parentID: summary.parentID,
            step: summary.step, createdAt: summary.createdAt, metadata: summary.metadata, channels: channels,
            pause: pause, answer: answer)
    }

    /// This checkpoint without its channel contents.
    public var summary: CheckpointSummary {
        CheckpointSummary(
            id: id, thread: thread, namespace: namespace, parentID: parentID, step: step,
            createdAt: createdAt, metadata: metadata)
    }
}

/// How one channel changes in a new checkpoint, relative to its parent.
///
/// A channel the parent has and the write does not name is removed from the new checkpoint.
public enum ChannelWrite: Sendable, Hashable {
    /// Same content as in the parent: only a reference is stored.
    case unchanged
    /// A new single value.
    case value(Data)
    /// A new list, replacing whatever the parent held.
    case list([Data])
    /// The parent's list followed by these elements: only the elements are stored.
    case append([Data])
}

/// A new checkpoint to append to a thread with ``Checkpointer/put(_:expecting:)``.
public struct CheckpointWrite: Sendable {
    /// The new checkpoint's id; make one with ``CheckpointID/make(now:)``.
    public var id: CheckpointID
    /// The thread to append to.
    public var thread: ThreadID
    /// The namespace within the thread.
    public var namespace: String
    /// The checkpoint this one follows, or `nil` to start a thread.
    public var parentID: CheckpointID?
    /// The distance from the thread's first checkpoint.
    public var step: Int
    /// The creation time.
    public var createdAt: Date
    /// Plain-text, queryable metadata.
    public var metadata: Metadata
    /// Every channel of the new checkpoint, as a change relative to the parent.
    public var channels: [String: ChannelWrite]
    /// A question for a person: the thread waits in the inbox until it is answered.
    public var pause: Pause?
    /// Channels whose value stays in the manifest even though it is larger than the inline
    /// limit: sealed values whose plaintext is small (a sealed number is ~45 bytes, and storing
    /// it apart would cost a payload row on every save).
    package var inlineChannels: Set<String> = []

    /// Creates a write. `id` defaults to a new id; `createdAt` to the id's timestamp.
    public init(
        id: CheckpointID = .make(), thread: ThreadID, namespace: String = "", parentID: CheckpointID?,
        step: Int, createdAt: Date? = nil, metadata: Metadata = [:], channels: [String: ChannelWrite],
        pause: Pause? = nil
    ) {
        self.pause = pause
        self.id = id
        self.thread = thread
        self.namespace = namespace
        self.parentID = parentID
        self.step = step
        self.createdAt = createdAt ?? id.timestamp
        self.metadata = metadata
        self.channels = channels
    }

    /// The number of new payload bytes this write carries (unchanged channels count nothing).
    public var payloadByteCount: Int {
        channels.values.reduce(0) { total, write in
            switch write {
            case .unchanged: total
            case .value(let data): total + data.count
            case .list(let elements), .append(let elements): total + elements.reduce(0) { $0 + $1.count }
            }
        }
    }
}

/// What ``Checkpointer/put(_:expecting:)`` checks before it appends.
public struct PutExpectation: Hashable, Sendable {
    private enum Value: Hashable, Sendable { case parentIsHead, anyParent }
    private let value: Value

    /// The write's parent must be the thread's current head (or the thread must not exist
    /// when the parent is `nil`); otherwise the put fails with ``CheckpointError/Code/conflict``.
    public static let parentIsHead = PutExpectation(value: .parentIsHead)
    /// The parent may be any checkpoint of the thread: a deliberate fork (time travel).
    /// The new checkpoint becomes the head.
    public static let anyParent = PutExpectation(value: .anyParent)

    /// Whether the head must equal the parent.
    public var requiresParentIsHead: Bool { value == .parentIsHead }
}

/// How much a thread occupies in a store, for diagnostics and tests.
public struct StorageStatistics: Sendable, Hashable {
    /// Checkpoints stored for the thread, in every namespace.
    public var checkpointCount: Int
    /// Stored channel payloads (single values and list segments).
    public var payloadCount: Int
    /// Bytes of channel payload stored, without indexes or per-row overhead.
    public var payloadByteCount: Int

    /// Creates statistics.
    public init(checkpointCount: Int, payloadCount: Int, payloadByteCount: Int) {
        self.checkpointCount = checkpointCount
        self.payloadCount = payloadCount
        self.payloadByteCount = payloadByteCount
    }
}

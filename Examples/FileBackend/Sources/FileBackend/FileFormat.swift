import Checkpointing
import Foundation

// The JSON form of a bucket file. Dates are stored as the bits of their
// `timeIntervalSinceReferenceDate`, so that they read back exactly; thread ids and namespaces
// are matched by their UTF-8 bytes (two spellings of "café" are two threads).

/// The threads of one bucket file.
struct Bucket: Codable {
    static let currentFormat = 1
    var format = Bucket.currentFormat
    var threads: [ThreadRecord] = []

    /// A namespace of a thread, if stored.
    func space(_ thread: ThreadID, _ namespace: String) -> SpaceRecord? {
        threads.first { $0.id.sameBytes(as: thread.rawValue) }?.namespaces.first { $0.name.sameBytes(as: namespace) }
    }

    /// Changes a namespace of a thread, creating both when missing; a namespace left with no
    /// checkpoint, and a thread left with no namespace, are removed.
    mutating func modify(_ thread: ThreadID, _ namespace: String, _ body: (inout SpaceRecord) throws -> Void) throws {
        let threadIndex =
            threads.firstIndex { $0.id.sameBytes(as: thread.rawValue) }
            ?? { threads.append(ThreadRecord(id: thread.rawValue)); return threads.count - 1 }()
        let spaceIndex =
            threads[threadIndex].namespaces.firstIndex { $0.name.sameBytes(as: namespace) }
            ?? { threads[threadIndex].namespaces.append(SpaceRecord(name: namespace)); return threads[threadIndex].namespaces.count - 1 }()
        try body(&threads[threadIndex].namespaces[spaceIndex])
        if threads[threadIndex].namespaces[spaceIndex].checkpoints.isEmpty {
            threads[threadIndex].namespaces.remove(at: spaceIndex)
        }
        if threads[threadIndex].namespaces.isEmpty { threads.remove(at: threadIndex) }
    }
}

struct ThreadRecord: Codable {
    var id: String
    var namespaces: [SpaceRecord] = []
}

/// A namespace's checkpoints, oldest first: the last is the head.
struct SpaceRecord: Codable {
    var name: String
    var checkpoints: [StoredCheckpoint] = []
}

struct StoredCheckpoint: Codable {
    var id: CheckpointID
    var parentID: CheckpointID?
    var step: Int
    var createdAt: UInt64
    var metadata: Metadata
    var channels: [StoredChannel]
    var pause: StoredPause?
    var answer: StoredAnswer?

    init(_ checkpoint: Checkpoint) {
        id = checkpoint.id
        parentID = checkpoint.parentID
        step = checkpoint.step
        createdAt = checkpoint.createdAt.bits
        metadata = checkpoint.metadata
        channels = checkpoint.channels.map { StoredChannel(name: $0.key, value: $0.value) }.sorted { $0.name < $1.name }
        pause = checkpoint.pause.map(StoredPause.init)
    }

    func summary(thread: ThreadID, namespace: String) -> CheckpointSummary {
        CheckpointSummary(
            id: id, thread: thread, namespace: namespace, parentID: parentID, step: step, createdAt: Date(bits: createdAt),
            metadata: metadata)
    }

    func record(thread: ThreadID, namespace: String) throws -> CheckpointRecord {
        CheckpointRecord(summary: summary(thread: thread, namespace: namespace), pause: try pause?.pause(), answer: answer?.answer)
    }

    func checkpoint(thread: ThreadID, namespace: String) throws -> Checkpoint {
        var values: [String: ChannelValue] = [:]
        for channel in channels {
            guard values.updateValue(try channel.channelValue(), forKey: channel.name) == nil else {
                throw CheckpointError(.corruptData, "checkpoint \(id) stores channel '\(channel.name)' twice")
            }
        }
        return Checkpoint(
            summary: summary(thread: thread, namespace: namespace), channels: values, pause: try pause?.pause(),
            answer: answer?.answer)
    }
}

struct StoredChannel: Codable {
    var name: String
    var value: Data?
    var list: [Data]?

    init(name: String, value: ChannelValue) {
        self.name = name
        switch value {
        case .value(let data): self.value = data
        case .list(let elements): list = elements
        }
    }

    func channelValue() throws -> ChannelValue {
        switch (value, list) {
        case (let data?, nil): return .value(data)
        case (nil, let elements?): return .list(elements)
        default: throw CheckpointError(.corruptData, "channel '\(name)' is neither a value nor a list")
        }
    }

    var byteCount: Int { (value?.count ?? 0) + (list ?? []).reduce(0) { $0 + $1.count } }
}

struct StoredPause: Codable {
    var id: UUID
    var reason: String
    var prompt: Data
    var createdAt: UInt64
    var expiresAt: UInt64?

    init(_ pause: Pause) {
        id = pause.id
        reason = pause.reason
        prompt = pause.prompt
        createdAt = pause.createdAt.bits
        expiresAt = pause.expiresAt?.bits
    }

    func pause() throws -> Pause {
        do {
            return try Pause(
                id: id, reason: reason, prompt: prompt, createdAt: Date(bits: createdAt), expiresAt: expiresAt.map(Date.init(bits:)))
        } catch {
            throw CheckpointError(.corruptData, "a stored pause is not valid", underlying: error)
        }
    }
}

struct StoredAnswer: Codable {
    var pauseID: UUID
    var response: Data
    var answeredAt: UInt64

    init(_ answer: PauseAnswer) {
        pauseID = answer.pauseID
        response = answer.response
        answeredAt = answer.answeredAt.bits
    }

    var answer: PauseAnswer { PauseAnswer(pauseID: pauseID, response: response, answeredAt: Date(bits: answeredAt)) }
}

extension Date {
    var bits: UInt64 { timeIntervalSinceReferenceDate.bitPattern }
    init(bits: UInt64) { self.init(timeIntervalSinceReferenceDate: Double(bitPattern: bits)) }
}

extension String {
    /// Equality by UTF-8 bytes, as the stores compare keys (`==` on `String` compares canonically).
    func sameBytes(as other: String) -> Bool { utf8.elementsEqual(other.utf8) }
}

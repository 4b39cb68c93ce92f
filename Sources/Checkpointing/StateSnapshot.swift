import Foundation
import Synchronization

/// A state read from or saved to a thread, together with the checkpoint it belongs to.
///
/// A snapshot carries its checkpoint into ``CheckpointThread/save(_:metadata:)-(StateSnapshot<State>,_)``:
/// the save is checked against that checkpoint (it must still be the thread's head) and stores
/// only what changed since it, whatever other tasks did through the same façade meanwhile.
///
/// ```swift
/// guard var snapshot = try await thread.load() else { return }
/// snapshot.state.messages.append(reply)
/// snapshot = try await thread.save(snapshot)   // conflict if the head moved since load()
/// ```
public struct StateSnapshot<State: Codable & Sendable>: Sendable {
    /// The state. Change it, then save the snapshot.
    public var state: State
    /// What was read or saved, for the next save to compare with.
    let base: FacadeBase<State>

    /// The checkpoint this snapshot was read from or saved as.
    public var checkpointID: CheckpointID { base.id }
    /// The checkpoint's distance from the thread's first one.
    public var step: Int { base.step }
    /// The checkpoint's metadata.
    public var metadata: Metadata { base.metadata }
    /// The checkpoint's pause, if it pauses the thread (answered or not).
    public var pause: Pause? { base.pause }
    /// The answer to ``pause``, once recorded (as of the read).
    public var answer: PauseAnswer? { base.answer }

    /// Where the checkpoint's pause stands at `now`: none, waiting, answered or expired.
    public func pauseStatus(at now: Date = Date()) -> PauseStatus {
        PauseStatus(pause: base.pause, answer: base.answer, now: now)
    }

    /// The answer to the pause, decoded; `nil` while there is none.
    ///
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when the answer is not an `Answer`.
    public func answer<Answer: Decodable>(as type: Answer.Type) throws(CheckpointError) -> Answer? {
        try base.answer.map { answer throws(CheckpointError) in try PauseAnswer.decode(answer, as: Answer.self) }
    }

    init(_ base: FacadeBase<State>) {
        self.state = base.state
        self.base = base
    }
}

/// Where a checkpoint's pause stands.
public enum PauseStatus: Sendable, Hashable {
    /// The checkpoint does not pause the thread.
    case notPaused
    /// The pause waits for an answer and has not expired.
    case waiting(Pause)
    /// The pause was answered (before it expired): the agent goes on from the answer.
    case answered(Pause, PauseAnswer)
    /// The pause expired unanswered: no answer will be accepted; the agent decides how to go on
    /// (a save moves the thread past the pause).
    case expired(Pause)

    init(pause: Pause?, answer: PauseAnswer?, now: Date) {
        guard let pause else {
            self = .notPaused
            return
        }
        if let answer {
            self = .answered(pause, answer)
        } else if pause.isExpired(at: now) {
            self = .expired(pause)
        } else {
            self = .waiting(pause)
        }
    }
}

extension PauseAnswer {
    static func decode<Answer: Decodable>(_ answer: PauseAnswer, as type: Answer.Type) throws(CheckpointError) -> Answer {
        do {
            return try JSONDecoder().decode(Answer.self, from: answer.response)
        } catch {
            throw CheckpointError(.decodingFailed, "the answer to pause \(answer.pauseID) is not a \(Answer.self)")
        }
    }
}

/// What a read or a save of a façade leaves for the next save to follow: the checkpoint, its
/// state, and the bytes that state's channels were stored as (in the form saves compare).
///
/// Immutable, so snapshots and tasks share it freely.
final class FacadeBase<State: Sendable>: Sendable {
    let id: CheckpointID
    let step: Int
    let state: State
    /// Per value channel, the bytes a save compares with (the stored plaintext).
    let values: [String: Data]
    /// Per list channel, each element's bytes as a save compares them (the stored plaintext).
    let lists: [String: [Data]]
    /// List channels whose elements' bytes are not kept: they are values whose encoding is
    /// taken from ``state`` when a save needs it (see `AppendableChannelList`).
    let listsInState: Set<String>
    /// Stored channels that `State` has no property for (written by another type, say a newer
    /// deploy's with a property more): a save after this base keeps them as they are.
    let carried: Set<String>
    /// Whether a save after this base forks (its parent need not be the head): after a rewind.
    let forks: Bool
    let metadata: Metadata
    let pause: Pause?
    let answer: PauseAnswer?

    init(
        id: CheckpointID, step: Int, state: State, values: [String: Data], lists: [String: [Data]],
        listsInState: Set<String>, carried: Set<String> = [], forks: Bool, metadata: Metadata, pause: Pause?,
        answer: PauseAnswer?
    ) {
        self.listsInState = listsInState
        self.carried = carried
        self.id = id
        self.step = step
        self.state = state
        self.values = values
        self.lists = lists
        self.forks = forks
        self.metadata = metadata
        self.pause = pause
        self.answer = answer
    }
}

/// Which checkpoint each task that uses a façade last read or saved through it, so that a save
/// follows the checkpoint its own task's state came from, never one another task moved it to.
///
/// Tasks are told apart by `UnsafeCurrentTask`'s identity. A task address can be reused after
/// the task ends; the rules below make that at worst a `conflict`, never a silent loss: a
/// record only ever points at a checkpoint the façade read or saved, a save still checks it is
/// the head, and a rewind's fork is taken only if no save went through the façade since.
///
/// Memory stays bounded: once the façade reads or saves a newer head, a record of an older
/// checkpoint can only conflict (heads only move to newer ids), so it keeps no state.
struct FacadeBases<State: Sendable>: Sendable {
    /// The most records kept; beyond it the least recently used goes.
    static var capacity: Int { 64 }

    /// What a task's next save follows.
    enum Follows: Sendable {
        /// A checkpoint (`nil`: the task read an empty thread).
        case base(FacadeBase<State>?)
        /// The thread's head moved past what the task read: its save can only conflict.
        case movedOn(CheckpointID?)
    }

    struct Record: Sendable {
        var follows: Follows
        var used: UInt64
        /// The number of saves through the façade when the record was made.
        var saves: UInt64
    }

    /// The last checkpoint read or saved by any task.
    var latest: FacadeBase<State>?
    /// Whether ``latest`` came from a read (a task that has not used the façade follows it
    /// then) rather than from a save of some task.
    var latestFromRead = true
    var records: [Int: Record] = [:]
    var clock: UInt64 = 0
    var saves: UInt64 = 0
    /// Whether a record was ever dropped: a task without a record may then have read once.
    var dropped = false

    static func currentTask() -> Int? {
        withUnsafeCurrentTask { $0?.hashValue }
    }

    /// The base the calling task's next save follows.
    mutating func baseForSave(task: Int?) throws(CheckpointError) -> FacadeBase<State>? {
        clock &+= 1
        if let task, var record = records[task] {
            record.used = clock
            records[task] = record
            switch record.follows {
            case .movedOn(let id):
                throw CheckpointError(
                    .conflict,
                    "the thread's head moved on since this task read \(id.map { "checkpoint \($0)" } ?? "the empty thread") through this façade: read it again (latest(), load()) or use update(startingWith:_:)"
                )
            case .base(let base):
                if let base, base.forks, record.saves != saves {
                    throw CheckpointError(
                        .conflict,
                        "another save went through this façade after the rewind to \(base.id); rewind again before saving the fork"
                    )
                }
                return base
            }
        }
        if latest == nil || (latestFromRead && !dropped) { return latest }
        throw CheckpointError(
            .conflict,
            "this task has not read the thread through this façade, and another task saved through it since: read it first (latest(), load()) or use update(startingWith:_:)"
        )
    }

    /// Records what the calling task read; `head` when it read the thread's head.
    mutating func read(_ base: FacadeBase<State>?, head: Bool, task: Int?) {
        latest = base
        latestFromRead = true
        if head, let base { movedOn(to: base.id) }
        remember(.base(base), task: task)
    }

    /// Records what the calling task saved.
    mutating func saved(_ base: FacadeBase<State>, task: Int?) {
        saves &+= 1
        latest = base
        latestFromRead = false
        movedOn(to: base.id)
        remember(.base(base), task: task)
    }

    /// The base the calling task's properties describe: its own record, else the latest.
    func current(task: Int?) -> FacadeBase<State>? {
        if let task, let record = records[task], case .base(let base) = record.follows { return base }
        return latest
    }

    /// The head is now `head`: records of older checkpoints (not forks) can only conflict.
    private mutating func movedOn(to head: CheckpointID) {
        for (task, record) in records {
            guard case .base(let base) = record.follows else { continue }
            if let base {
                guard base.id < head, !base.forks else { continue }
                records[task]?.follows = .movedOn(base.id)
            } else {
                records[task]?.follows = .movedOn(nil)
            }
        }
    }

    private mutating func remember(_ follows: Follows, task: Int?) {
        guard let task else { return }
        clock &+= 1
        records[task] = Record(follows: follows, used: clock, saves: saves)
        if records.count > Self.capacity, let oldest = records.min(by: { $0.value.used < $1.value.used })?.key {
            records[oldest] = nil
            dropped = true
        }
    }
}

import Checkpointing
import Foundation
import Synchronization

/// Threads whose entries Redis may hold out of date, because Redis could not be told.
final class PendingInvalidations: Sendable {
    struct Owed: Sendable {
        /// Each owed thread with how many times it was marked, so that finishing an
        /// invalidation clears only the marks it saw: a save marked during it stays owed.
        var threads: [ThreadID: UInt64] = [:]
        var everything = false
        /// Marks of `everything`, likewise.
        var everythingMarks: UInt64 = 0
    }
    private let state = Mutex(Owed())
    private let capacity: Int
    private let count = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    func add(_ thread: ThreadID) {
        state.withLock { owed in
            if owed.threads.count >= capacity, owed.threads[thread] == nil {
                owed.everything = true
                owed.everythingMarks &+= 1
            } else {
                owed.threads[thread, default: 0] &+= 1
            }
            count.store(owed.everything ? Int.max : owed.threads.count, ordering: .relaxed)
        }
    }

    func contains(_ thread: ThreadID) -> Bool {
        guard count.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { $0.everything || $0.threads[thread] != nil }
    }

    /// What is owed now. It stays owed (readers keep bypassing the cache) until ``done(_:)``.
    func take() -> Owed {
        guard count.load(ordering: .relaxed) > 0 else { return Owed() }
        return state.withLock { $0 }
    }

    /// Marks what was owed as done.
    func done(_ finished: Owed) {
        state.withLock { owed in
            for (thread, marks) in finished.threads where owed.threads[thread] == marks {
                owed.threads[thread] = nil
            }
            if finished.everything, owed.everythingMarks == finished.everythingMarks { owed.everything = false }
            count.store(owed.everything ? Int.max : owed.threads.count, ordering: .relaxed)
        }
    }
}

/// Threads with a put under way, from its base write to the end of its cache update (which
/// runs in the background): read from the base store meanwhile. Waiting for them (deleting a
/// thread, `flush()`, `close()`) is signalled when the last one ends, not polled.
final class UpdatesInFlight: Sendable {
    private struct State {
        var counts: [ThreadID: Int] = [:]
        var threadWaiters: [ThreadID: [CheckedContinuation<Void, Never>]] = [:]
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var isClosed = false
    }
    private let state = Mutex(State())
    private let total = Atomic<Int>(0)

    /// Counts a put of `thread` as under way; `false` (and nothing counted) once ``close()``
    /// began.
    func begin(_ thread: ThreadID) -> Bool {
        state.withLock { state in
            guard !state.isClosed else { return false }
            total.add(1, ordering: .relaxed)
            state.counts[thread, default: 0] += 1
            return true
        }
    }

    func end(_ thread: ThreadID) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { state in
            var ready: [CheckedContinuation<Void, Never>] = []
            let remaining = (state.counts[thread] ?? 1) - 1
            if remaining > 0 {
                state.counts[thread] = remaining
            } else {
                state.counts[thread] = nil
                ready += state.threadWaiters.removeValue(forKey: thread) ?? []
            }
            if total.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                ready += state.drainWaiters
                state.drainWaiters = []
            }
            return ready
        }
        for waiter in ready { waiter.resume() }
    }

    func contains(_ thread: ThreadID) -> Bool {
        guard total.load(ordering: .relaxed) > 0 else { return false }
        return state.withLock { $0.counts[thread] != nil }
    }

    /// Waits until no update of `thread` runs.
    func wait(for thread: ThreadID) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waits = state.withLock { state in
                guard state.counts[thread] != nil else { return false }
                state.threadWaiters[thread, default: []].append(continuation)
                return true
            }
            if !waits { continuation.resume() }
        }
    }

    /// Refuses puts from now on (``begin(_:)`` returns `false`), then waits for those under
    /// way.
    func close() async {
        state.withLock { $0.isClosed = true }
        await drain()
    }

    /// Waits until no put or update runs (for `flush()` and `close()`).
    func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waits = state.withLock { state in
                guard total.load(ordering: .acquiring) > 0 else { return false }
                state.drainWaiters.append(continuation)
                return true
            }
            if !waits { continuation.resume() }
        }
    }
}

/// The latest head this process wrote or read per thread, to build the next put's entry, and
/// the bytes of its cache entry, so that reading those very bytes back skips checking and
/// decoding them (an entry is trusted only when it is byte for byte one this process made or
/// checked).
final class LocalHeads: Sendable {
    private struct Entry {
        var checkpoint: Checkpoint
        var bytes: Data?
    }
    private let entries: HeadCache<Entry>
    /// Per thread, the newest head id this process saved or read from the base store: a cached
    /// head older than it is never served. Kept for at least ``floorCapacity`` threads.
    private let floors: HeadCache<Void>
    static let floorCapacity = 100_000

    init(capacity: Int) {
        entries = HeadCache(capacity: capacity)
        floors = HeadCache(capacity: max(capacity, Self.floorCapacity))
    }

    /// Records a head this process saved, or read from the base store.
    func acknowledged(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) {
        floors.store(thread, namespace, id, ())
    }

    /// The newest head id of the thread this process saved or read from the base store.
    func newestKnown(_ thread: ThreadID, _ namespace: String) -> CheckpointID? {
        floors.latest(thread, namespace)?.id
    }

    /// Remembers the entry bytes of the head `id`, once written, if it is still the known head.
    func attach(_ bytes: Data, _ thread: ThreadID, _ namespace: String, _ id: CheckpointID) {
        entries.update(thread, namespace, id) { $0.bytes = bytes }
    }

    func checkpoint(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) -> Checkpoint? {
        entries.value(thread, namespace, id)?.checkpoint
    }

    /// The known checkpoint whose cache entry is exactly `bytes`, if any.
    func checkpoint(_ thread: ThreadID, _ namespace: String, matching bytes: Data) -> Checkpoint? {
        guard let entry = entries.latest(thread, namespace)?.value, entry.bytes == bytes else { return nil }
        return entry.checkpoint
    }

    func store(_ thread: ThreadID, _ namespace: String, _ checkpoint: Checkpoint?, entry bytes: Data? = nil) {
        guard let checkpoint else {
            entries.remove(thread, namespace)
            return
        }
        entries.store(thread, namespace, checkpoint.id, Entry(checkpoint: checkpoint, bytes: bytes))
    }

    func remove(_ thread: ThreadID) {
        entries.remove(thread)
        floors.remove(thread)
    }
}

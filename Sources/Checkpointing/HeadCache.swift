import Synchronization

/// A thread and namespace, by bytes, as the stores key threads: ``ThreadID`` and ``BytewiseString``.
package struct HeadKey: Hashable {
    package var thread: ThreadID
    package var namespace: BytewiseString

    @inlinable
    package init(thread: ThreadID, namespace: String) {
        self.thread = thread
        self.namespace = BytewiseString(namespace)
    }
}

/// What a checkpointer knows of the heads it last wrote or read, one value per thread and
/// namespace: the SQLite and Postgres backends keep each head's manifest (``HeadManifests``), so
/// that a put whose parent is one of them resolves its channels without reading the parent's
/// row again; the Redis cache keeps each head's checkpoint and cache entry, and the newest head
/// id it acknowledged.
///
/// A value is stored for a checkpoint id and never changes for it, so an entry is never wrong;
/// it may only be old, and then the put's head check fails as it should. An entry older than
/// the one known is not stored. Bounded: when full, it starts over (a capacity of 0 stores
/// nothing).
package final class HeadCache<Value: Sendable>: Sendable {
    /// Entries by thread, then namespace, so that forgetting a thread touches its entries only.
    @usableFromInline struct Entries {
        @usableFromInline var threads: [ThreadID: [BytewiseString: (id: CheckpointID, value: Value)]] = [:]
        @usableFromInline var count = 0

        @usableFromInline init() {}
    }

    @usableFromInline let entries = Mutex(Entries())
    @usableFromInline let capacity: Int

    package init(capacity: Int) {
        self.capacity = capacity
    }

    /// The value of checkpoint `id` when it is the head known for the thread's namespace.
    @inlinable
    @_specialize(exported: true, where Value == Manifest)
    package func value(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) -> Value? {
        entries.withLock { entries in
            guard let entry = entries.threads[thread]?[BytewiseString(namespace)], entry.id == id else { return nil }
            return entry.value
        }
    }

    /// The head known for the thread's namespace and its value.
    @inlinable
    package func latest(_ thread: ThreadID, _ namespace: String) -> (id: CheckpointID, value: Value)? {
        entries.withLock { $0.threads[thread]?[BytewiseString(namespace)] }
    }

    /// Records the head of a thread's namespace, unless a newer one is known.
    @inlinable
    @_specialize(exported: true, where Value == Manifest)
    package func store(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID, _ value: Value) {
        guard capacity > 0 else { return }
        entries.withLock { entries in
            let space = BytewiseString(namespace)
            let existing = entries.threads[thread]?[space]
            if let existing, existing.id > id { return }
            if existing == nil {
                if entries.count >= capacity {
                    entries.threads.removeAll(keepingCapacity: true)
                    entries.count = 0
                }
                entries.count += 1
            }
            entries.threads[thread, default: [:]][space] = (id, value)
        }
    }

    /// Changes the value of head `id`, if it is still the head known.
    @inlinable
    package func update(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID, _ change: (inout Value) -> Void) {
        entries.withLock { entries in
            let space = BytewiseString(namespace)
            guard var entry = entries.threads[thread]?[space], entry.id == id else { return }
            change(&entry.value)
            entries.threads[thread]?[space] = entry
        }
    }

    /// Forgets one namespace of `thread`.
    @inlinable
    package func remove(_ thread: ThreadID, _ namespace: String) {
        entries.withLock { entries in
            guard entries.threads[thread]?.removeValue(forKey: BytewiseString(namespace)) != nil else { return }
            entries.count -= 1
            if entries.threads[thread]?.isEmpty == true { entries.threads[thread] = nil }
        }
    }

    /// Forgets every namespace of `thread`.
    @inlinable
    package func remove(_ thread: ThreadID) {
        entries.withLock { entries in
            if let removed = entries.threads.removeValue(forKey: thread) { entries.count -= removed.count }
        }
    }
}

/// The manifests of the heads a SQLite or Postgres checkpointer last wrote or read.
package typealias HeadManifests = HeadCache<Manifest>

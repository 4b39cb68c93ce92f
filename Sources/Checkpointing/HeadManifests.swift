import Synchronization

/// The manifests of the heads a checkpointer last wrote or read, so that a put whose parent is
/// one of them resolves its channels without reading (and checking, and decoding) the
/// parent's row again.
///
/// A manifest never changes for its checkpoint id, so an entry is never wrong; it may only be
/// old, and then the put's head check fails as it should. Bounded: when full, it starts over.
package final class HeadManifests: Sendable {
    /// By bytes, as the stores key threads: ``ThreadID`` and ``BytewiseString``.
    private struct Key: Hashable {
        var thread: ThreadID
        var namespace: BytewiseString

        init(thread: ThreadID, namespace: String) {
            self.thread = thread
            self.namespace = BytewiseString(namespace)
        }
    }
    private let entries = Mutex<[Key: (id: CheckpointID, manifest: Manifest)]>([:])
    private let capacity: Int

    package init(capacity: Int) {
        self.capacity = capacity
    }

    /// The manifest of checkpoint `id` when it is the head this cache knows for the thread.
    package func manifest(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) -> Manifest? {
        entries.withLock { entries in
            guard let entry = entries[Key(thread: thread, namespace: namespace)], entry.id == id else {
                return nil
            }
            return entry.manifest
        }
    }

    /// Records the head of a thread's namespace, unless a newer one is known.
    package func store(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID, _ manifest: Manifest) {
        entries.withLock { entries in
            let key = Key(thread: thread, namespace: namespace)
            if let existing = entries[key], existing.id > id { return }
            if entries.count >= capacity, entries[key] == nil { entries.removeAll(keepingCapacity: true) }
            entries[key] = (id, manifest)
        }
    }

    /// Forgets every namespace of `thread`.
    package func remove(_ thread: ThreadID) {
        entries.withLock { entries in
            entries = entries.filter { $0.key.thread != thread }
        }
    }
}

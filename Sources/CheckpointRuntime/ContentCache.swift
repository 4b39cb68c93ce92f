import Checkpointing
import Foundation
import Synchronization

/// A bounded, shared cache of stored channel content: a list's elements keyed by the list's
/// tip segment, and a stored value keyed by the checkpoint that wrote it.
///
/// Such content never changes (segments and payloads are immutable and ids are never reused),
/// so an entry is never stale: a backend reads the manifest from the store each time and
/// only skips re-reading the content it names. When the cache holds more than its capacity,
/// the least recently used entries go.
package final class ContentCache: Sendable {
    package struct Key: Hashable, Sendable {
        /// The backend's key for the thread and namespace.
        package var scope: Int64
        package var channel: String
        /// The list's tip segment, or the checkpoint that wrote the value.
        package var version: CheckpointID

        package init(scope: Int64, channel: String, version: CheckpointID) {
            self.scope = scope
            self.channel = channel
            self.version = version
        }
    }

    private struct Entry {
        var elements: [Data]
        var bytes: Int
        var lastUse: UInt64
        /// For a list, the shorter lists it extends (see ``ListOrigin``), newest first.
        var ancestors: [ListReference] = []
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// The keys of each scope, so that forgetting a thread touches its entries only.
        var scopes: [Int64: Set<Key>] = [:]
        var bytes = 0
        var clock: UInt64 = 0

        mutating func insert(_ entry: Entry, _ key: Key) {
            if let old = entries.updateValue(entry, forKey: key) {
                bytes -= old.bytes
            } else {
                scopes[key.scope, default: []].insert(key)
            }
            bytes += entry.bytes
        }

        @discardableResult
        mutating func remove(_ key: Key) -> Entry? {
            guard let old = entries.removeValue(forKey: key) else { return nil }
            bytes -= old.bytes
            scopes[key.scope]?.remove(key)
            if scopes[key.scope]?.isEmpty == true { scopes[key.scope] = nil }
            return old
        }
    }

    /// The most bytes of elements kept.
    package let capacity: Int
    private let state = Mutex(State())

    package init(capacity: Int) {
        self.capacity = capacity
    }

    package var isEnabled: Bool { capacity > 0 }

    /// The cached content (a list's elements, or a value as one element), if any.
    package func elements(_ key: Key) -> [Data]? {
        guard isEnabled else { return nil }
        return state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.elements
        }
    }

    /// Remembers content; for a list, the shorter lists it extends too (see ``ListOrigin``).
    package func store(_ key: Key, elements: [Data], ancestors: [ListReference] = []) {
        guard isEnabled else { return }
        let bytes = elements.reduce(elements.count * 16) { $0 + $1.count }
        guard bytes <= capacity else { return }
        state.withLock { state in
            state.clock += 1
            state.insert(Entry(elements: elements, bytes: bytes, lastUse: state.clock, ancestors: ancestors), key)
            evictIfNeeded(&state)
        }
    }

    /// Where the cached list under `key` came from, if it is cached.
    package func origin(_ key: Key) -> ListOrigin? {
        guard isEnabled else { return nil }
        return state.withLock { state in
            state.entries[key].map { ListOrigin(tip: key.version, count: $0.elements.count, ancestors: $0.ancestors) }
        }
    }

    /// After a write appended `appended` to the list whose tip was `previous`: when that list is
    /// cached, caches the longer list under `next` (and forgets the shorter one, which only a
    /// read of an older checkpoint needs).
    package func extend(_ previous: Key, to next: Key, appending appended: [Data]) {
        guard isEnabled else { return }
        state.withLock { state in
            guard let old = state.remove(previous) else { return }
            let bytes = appended.reduce(old.bytes + appended.count * 16) { $0 + $1.count }
            guard bytes <= capacity else { return }
            state.clock += 1
            let ancestors = [ListReference(tip: previous.version, count: old.elements.count)]
                + old.ancestors.prefix(ListOrigin.ancestorLimit - 1)
            state.insert(
                Entry(elements: old.elements + appended, bytes: bytes, lastUse: state.clock, ancestors: ancestors), next)
            evictIfNeeded(&state)
        }
    }

    /// Forgets every list of the given scopes (after a thread is deleted).
    package func remove(scopes: Set<Int64>) {
        guard isEnabled, !scopes.isEmpty else { return }
        state.withLock { state in
            for scope in scopes {
                for key in state.scopes[scope] ?? [] { state.remove(key) }
            }
        }
    }

    private func evictIfNeeded(_ state: inout State) {
        guard state.bytes > capacity else { return }
        // Drop the least recently used entries down to three quarters of the capacity, so that
        // the sort is paid once per many inserts.
        let target = capacity / 4 * 3
        for (key, _) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) {
            guard state.bytes > target else { break }
            state.remove(key)
        }
    }
}

// MARK: - Shared by the backends that store one row per checkpoint

extension ContentCache {
    /// Learns what a committed write stored: its list segments extend the lists cached under
    /// their previous tips, and its values are cached under the write's id.
    package func learn(_ resolved: ResolvedWrite, scope: Int64, writeID: CheckpointID) {
        guard isEnabled else { return }
        for entry in resolved.segments {
            let next = Key(scope: scope, channel: entry.channel, version: writeID)
            if let previous = entry.segment.previous {
                extend(Key(scope: scope, channel: entry.channel, version: previous), to: next, appending: entry.segment.elements)
            } else {
                store(next, elements: entry.segment.elements)
            }
        }
        for payload in resolved.payloads {
            store(Key(scope: scope, channel: payload.channel, version: writeID), elements: [payload.data])
        }
    }
}

extension Manifest {
    /// Rebuilds channel contents for a backend whose rows hold row blobs (see ``RowBlobs``),
    /// taking lists and values from `cache` when it has them and caching what it reads.
    ///
    /// - Parameters:
    ///   - payloadBlob: the payload blob of the row with this id, `nil` when it has none.
    ///   - segmentRows: calls `visit` with the rows that have segments, newest first from
    ///     `tip`, until `visit` returns `true`.
    package func materialize(
        scope: Int64, cache: ContentCache,
        payloadBlob: (_ rowID: CheckpointID) throws -> Data?,
        segmentRows: (
            _ tip: CheckpointID,
            _ visit: (_ rowID: CheckpointID, _ parentID: CheckpointID?, _ segments: Data) throws -> Bool
        ) throws -> Void
    ) throws -> [String: ChannelValue] {
        try materialize(
            payload: { channel, version in
                let key = ContentCache.Key(scope: scope, channel: channel, version: version)
                if let cached = cache.elements(key), let value = cached.first { return value }
                guard let blob = try payloadBlob(version), let value = try RowBlobs.payload(in: blob, channel: channel)
                else { return nil }
                cache.store(key, elements: [value])
                return value
            },
            list: { channel, reference, tip in
                let key = ContentCache.Key(scope: scope, channel: channel, version: tip)
                if let cached = cache.elements(key) { return cached }
                var chain = ListChain(channel: channel, reference: reference)
                try segmentRows(tip) { rowID, parentID, segments in
                    guard let next = chain.next else { return true }
                    guard rowID == next,
                        let segment = try RowBlobs.segment(in: segments, channel: channel, rowID: rowID, parentID: parentID)
                    else { return false }
                    return try chain.add(segment)
                }
                let elements = try chain.elements()
                cache.store(key, elements: elements, ancestors: chain.ancestors)
                return elements
            })
    }
}

extension ContentCache {
    /// Where each list of `manifest` came from, for those this cache holds (read just after
    /// ``Manifest/materialize(scope:cache:payloadBlob:segmentRows:)`` cached them).
    package func listOrigins(_ manifest: Manifest, scope: Int64) -> [String: ListOrigin] {
        var origins: [String: ListOrigin] = [:]
        for (name, entry) in manifest.entries {
            guard case .list(let reference) = entry, let tip = reference.tip,
                let origin = origin(Key(scope: scope, channel: name, version: tip)), origin.count == reference.count
            else { continue }
            origins[name] = origin
        }
        return origins
    }
}

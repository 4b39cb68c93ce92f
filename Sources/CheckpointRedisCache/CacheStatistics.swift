import CoreMetrics
import Synchronization

/// Hits, misses, fall-throughs to the base store, reads of this process's own recent saves,
/// and entries rejected by their check.
public struct CacheStatistics: Sendable, Hashable {
    /// Reads answered from Redis.
    public var hits: Int
    /// Reads Redis had no entry for.
    public var misses: Int
    /// Reads that went to the base store because Redis was down, slow, or owed an invalidation:
    /// a fault to alert on.
    public var fallbacks: Int
    /// Reads that went to the base store because this process's cache update of the thread
    /// (after its own save) was still under way: it reads its own write there. Normal for an
    /// agent that reads right after it saves; not a fault.
    public var ownUpdatesInFlight: Int
    /// Entries that failed their integrity check (answered from the base store instead).
    public var corruptEntries: Int
}

final class Counters: Sendable {
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let fallbacks = Atomic<Int>(0)
    private let ownUpdates = Atomic<Int>(0)
    private let corrupts = Atomic<Int>(0)

    func hit() { hits.add(1, ordering: .relaxed) }
    func miss() { misses.add(1, ordering: .relaxed) }
    func fallback() { fallbacks.add(1, ordering: .relaxed) }
    func ownUpdateInFlight() { ownUpdates.add(1, ordering: .relaxed) }
    func corrupt() { corrupts.add(1, ordering: .relaxed) }

    var snapshot: CacheStatistics {
        CacheStatistics(
            hits: hits.load(ordering: .relaxed), misses: misses.load(ordering: .relaxed),
            fallbacks: fallbacks.load(ordering: .relaxed), ownUpdatesInFlight: ownUpdates.load(ordering: .relaxed),
            corruptEntries: corrupts.load(ordering: .relaxed))
    }
}

struct CacheMetrics: Sendable {
    let hits: Counter
    let misses: Counter
    let fallbacks: Counter
    let ownUpdates: Counter
    let corrupt: Counter
    let stale: Counter

    init(factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        hits = Counter(label: "checkpoint_cache_hits", factory: factory)
        misses = Counter(label: "checkpoint_cache_misses", factory: factory)
        fallbacks = Counter(label: "checkpoint_cache_fallbacks", factory: factory)
        ownUpdates = Counter(label: "checkpoint_cache_own_updates_in_flight", factory: factory)
        corrupt = Counter(label: "checkpoint_cache_corrupt_entries", factory: factory)
        stale = Counter(label: "checkpoint_cache_stale_entries", factory: factory)
    }
}

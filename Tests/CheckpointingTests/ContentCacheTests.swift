import Checkpointing
import CheckpointRuntime
import Foundation
import Testing

@Suite("Content cache")
struct ContentCacheTests {
    func key(_ scope: Int64, _ channel: String = "c", _ version: CheckpointID = .make()) -> ContentCache.Key {
        ContentCache.Key(scope: scope, channel: channel, version: version)
    }

    @Test func storesExtendsAndForgets() {
        let cache = ContentCache(capacity: 1 << 20)
        let first = key(1)
        cache.store(first, elements: [Data("a".utf8)])
        #expect(cache.elements(first) == [Data("a".utf8)])
        let second = key(1)
        cache.extend(first, to: second, appending: [Data("b".utf8)])
        #expect(cache.elements(second) == [Data("a".utf8), Data("b".utf8)])
        #expect(cache.elements(first) == nil, "the shorter list is forgotten")
        // Extending a list that is not cached caches nothing: the longer list would be partial.
        let third = key(1)
        cache.extend(key(1), to: third, appending: [Data("c".utf8)])
        #expect(cache.elements(third) == nil)
        let other = key(2)
        cache.store(other, elements: [Data("z".utf8)])
        cache.remove(scopes: [1])
        #expect(cache.elements(second) == nil && cache.elements(other) != nil, "only the given scopes go")
    }

    @Test func evictsTheLeastRecentlyUsedBeyondItsCapacity() {
        // Each entry: 100 bytes of element + 16 bytes of bookkeeping.
        let cache = ContentCache(capacity: 1160)
        let keys = (0..<10).map { _ in key(1) }
        for key in keys { cache.store(key, elements: [Data(count: 100)]) }
        #expect(keys.allSatisfy { cache.elements($0) != nil }, "ten entries fit")
        _ = cache.elements(keys[0])  // used recently: stays
        cache.store(key(1), elements: [Data(count: 100)])
        #expect(cache.elements(keys[0]) != nil)
        #expect(cache.elements(keys[1]) == nil, "the least recently used went first")
        #expect(keys.filter { cache.elements($0) != nil }.count <= 8, "eviction goes down to three quarters")
        let huge = key(1)
        cache.store(huge, elements: [Data(count: 5000)])
        #expect(cache.elements(huge) == nil, "content larger than the cache is not kept")
        let disabled = ContentCache(capacity: 0)
        disabled.store(huge, elements: [Data("x".utf8)])
        #expect(disabled.elements(huge) == nil)
    }
}

import CheckpointEncryption
import CheckpointPostgres
@testable import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Synchronization
import Testing

struct Chat: Codable, Sendable, Equatable {
    var messages: [String] = []
    var turn = 0
}

/// Saves one more turn, reloading and retrying when another writer won.
func saveNextTurn(_ thread: CheckpointThread<Chat>, writer: String) async throws {
    while true {
        var state = try await thread.latest() ?? Chat()
        state.turn += 1
        state.messages.append("\(writer) \(state.turn)")
        do {
            try await thread.save(state)
            return
        } catch let error as CheckpointError where error.code == .conflict {
            continue
        }
    }
}

@Suite("RedisCachedCheckpointer against real servers")
struct RedisCacheTests {
    @Test func headReadsAreServedFromRedisWithTheBaseStoresBytes() async throws {
        let folder = try TemporaryFolder()
        let base = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let cache = try await cached(base)
        let thread = try cache.thread("acme:hits", as: Chat.self)
        var state = Chat()
        for turn in 1...5 {
            state.turn = turn
            state.messages.append("message \(turn)")
            try await thread.save(state)
        }
        // A read while the put's cache update runs goes to the base store: read-your-writes.
        #expect(try await cache.head(thread: ThreadID("acme:hits"))?.step == 4)
        await cache.flush()
        let before = cache.statistics
        let cachedHead = try #require(try await cache.head(thread: ThreadID("acme:hits")))
        #expect(cache.statistics.hits == before.hits + 1, "the put cached the head it wrote")
        let baseHead = try #require(try await base.head(thread: ThreadID("acme:hits")))
        #expect(cachedHead.id == baseHead.id)
        #expect(cachedHead.channels == baseHead.channels)
        #expect(cachedHead.parentID == baseHead.parentID && cachedHead.step == baseHead.step)
        #expect(cachedHead.createdAt == baseHead.createdAt)

        // By id: a miss, read through, then a hit.
        let first = try #require(try await base.history(thread: ThreadID("acme:hits")).last)
        let missesBefore = cache.statistics.misses
        let old = try await cache.checkpoint(thread: ThreadID("acme:hits"), namespace: "", id: first.id)
        #expect(cache.statistics.misses == missesBefore + 1)
        let again = try await cache.checkpoint(thread: ThreadID("acme:hits"), namespace: "", id: first.id)
        #expect(again?.channels == old?.channels && again?.id == first.id)
        #expect(cache.statistics.hits == before.hits + 2)
        try await cache.close()
    }

    @Test func twoCachesOnOneBaseRacingNeverLeaveAnOlderHeadCached() async throws {
        let postgres = try TestServers.isolatedPostgresURL()
        let prefix = TestServers.uniquePrefix()
        // Two app instances: each its own connection pool to the same tables, and its own
        // cache on the same Redis keys.
        let first = try await cached(PostgresCheckpointer(url: postgres), prefix: prefix)
        let second = try await cached(PostgresCheckpointer(url: postgres), prefix: prefix)
        let reference = try await PostgresCheckpointer(url: postgres)
        let threadID = try ThreadID("acme:race")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<6 {
                let instance = writer % 2 == 0 ? first : second
                group.addTask {
                    let thread = try instance.thread(threadID, as: Chat.self)
                    for _ in 0..<10 { try await saveNextTurn(thread, writer: "w\(writer)") }
                }
            }
            try await group.waitForAll()
        }
        await first.flush()
        await second.flush()
        let truth = try #require(try await reference.head(thread: threadID))
        #expect(truth.step == 59, "60 saves, none lost")
        for instance in [first, second] {
            for _ in 0..<3 {
                let head = try #require(try await instance.head(thread: threadID))
                #expect(head.id == truth.id)
                #expect(head.channels == truth.channels)
            }
        }
        #expect(first.statistics.hits + second.statistics.hits > 0)
        try await first.close()
        try await second.close()
        try await reference.close()
    }

    /// Redis closes clients idle longer than its `timeout` (as managed Redis and proxies do):
    /// the cache's connections it closed are found closed and replaced before use, so no call
    /// falls back to the store.
    @Test func connectionsRedisClosedWhileIdleAreReplacedWithoutAFallback() async throws {
        let redis = try PrivateRedis()
        try RawRedis(url: redis.url).command([Data("CONFIG".utf8), Data("SET".utf8), Data("timeout".utf8), Data("1".utf8)])
        let folder = try TemporaryFolder()
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: redis.url,
            "pool_max=2&idle_timeout=0")
        let thread = try cache.thread("acme:idle", as: Chat.self)
        var expected = Chat()
        for turn in 1...3 {
            expected.turn = turn
            try await thread.save(expected)
            await cache.flush()
            #expect(try await cache.thread("acme:idle", as: Chat.self).latest() == expected)
        }
        let before = cache.statistics
        #expect(before.hits >= 3)
        // Until Redis has closed every client but the one asking (a new one each time).
        try await waitUntil("Redis closed the idle clients") { try RawRedis(url: redis.url).connectedClients() == 1 }
        expected.turn += 1
        try await thread.save(expected)
        await cache.flush()
        #expect(try await cache.thread("acme:idle", as: Chat.self).latest() == expected)
        let after = cache.statistics
        #expect(after.fallbacks == before.fallbacks, "\(after)")
        #expect(after.hits == before.hits + 1, "\(after)")
        try await cache.close()
    }

    /// Closing (a server's graceful shutdown) waits for a put under way and its cache update,
    /// so that no other instance is served the head before it from Redis; puts that start
    /// after it are refused.
    @Test func closeWaitsForAPutUnderWayAndItsCacheUpdate() async throws {
        let folder = try TemporaryFolder()
        let id = try ThreadID("acme:closing")
        let store = HeldPuts(try await SQLiteCheckpointer(configuration: .init(path: folder.database)), holding: id)
        let prefix = TestServers.uniquePrefix()
        let cache = try await cached(store, prefix: prefix)
        let write = CheckpointWrite(thread: id, parentID: nil, step: 0, channels: ["v": .value(Data([1]))])
        let putting = Task { try await cache.put(write) }
        try await waitUntil("the put is under way") { store.entered }
        let closing = Task { try await cache.close() }
        // Puts of other threads go through until the cache is closing, then are refused.
        var probes = 0
        try await waitUntil("the cache refuses puts") {
            probes += 1
            let probe = CheckpointWrite(thread: try ThreadID("acme:probe-\(probes)"), parentID: nil, step: 0, channels: [:])
            do {
                try await cache.put(probe)
                return false
            } catch let error as CheckpointError where error.code == .closed {
                return true
            }
        }
        store.release()
        try await putting.value
        try await closing.value

        // Another instance finds the put's head in Redis.
        let other = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)), prefix: prefix)
        #expect(try await other.head(thread: id)?.id == write.id)
        #expect(other.statistics.hits == 1, "\(other.statistics)")
        try await other.close()
    }

    @Test func redisKilledMidRunFailsNoCallAndServesNoStaleHead() async throws {
        let redis = try PrivateRedis()
        let folder = try TemporaryFolder()
        // A killed Redis refuses connections at once, so a long timeout costs nothing here and
        // keeps a loaded machine's slow call from opening the breaker before the kill.
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: redis.url,
            "timeout_ms=2000&breaker_cooldown_ms=50")
        let thread = try cache.thread("acme:faults", as: Chat.self)
        var expected = Chat()
        func turn(_ label: String) async throws {
            expected.turn += 1
            expected.messages.append("\(label) \(expected.turn)")
            try await thread.save(expected)
            await cache.flush()
            let reader = try cache.thread("acme:faults", as: Chat.self)
            #expect(try await reader.latest() == expected, "a read after a save sees the save")
        }
        for _ in 0..<5 { try await turn("up") }
        let hitsBeforeKill = cache.statistics.hits
        #expect(hitsBeforeKill >= 5)

        try redis.kill()
        for _ in 0..<5 { try await turn("down") }
        #expect(cache.statistics.fallbacks > 0)

        try redis.start()
        // Turns go on until the breaker lets a call through again and hits resume.
        try await readUntilHitsPass(hitsBeforeKill, cache) { try await turn("back") }
        #expect(cache.statistics.hits > hitsBeforeKill, "hits resume once Redis is back")
        try await cache.close()
    }

    @Test func aFrozenRedisThatKeptOldHeadsNeverServesThem() async throws {
        let redis = try PrivateRedis()
        let folder = try TemporaryFolder()
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: redis.url,
            "timeout_ms=100&breaker_cooldown_ms=50")
        let thread = try cache.thread("acme:frozen", as: Chat.self)
        try await thread.save(Chat(messages: ["one"], turn: 1))
        await cache.flush()
        #expect(try await cache.head(thread: ThreadID("acme:frozen"))?.step == 0)

        // Redis stops answering but keeps turn 1; the store moves on without it.
        try redis.freeze()
        try await thread.save(Chat(messages: ["one", "two"], turn: 2))
        try await thread.save(Chat(messages: ["one", "two", "three"], turn: 3))
        try redis.thaw()

        // Redis answers again and still holds turn 1: it must not be served, neither while the
        // breaker is open nor once calls reach Redis again (the first one that does runs the
        // owed invalidation; reads keep coming until one did).
        let hitsAtThaw = cache.statistics.hits
        try await readUntilHitsPass(hitsAtThaw, cache) { () async throws in
            #expect(try await cache.thread("acme:frozen", as: Chat.self).latest()?.turn == 3)
        }
        #expect(cache.statistics.hits > hitsAtThaw, "reads reached Redis again, and got turn 3 from it")
        // After the next save the cache serves the thread again.
        try await thread.save(Chat(messages: ["one", "two", "three", "four"], turn: 4))
        await cache.flush()
        let hits = cache.statistics.hits
        #expect(try await cache.thread("acme:frozen", as: Chat.self).latest()?.turn == 4)
        #expect(cache.statistics.hits == hits + 1, "and the cache serves again")
        try await cache.close()
    }

    /// Redis comes back from a restart with an older snapshot: it lost entries it had
    /// acknowledged (persistence that lags, a failover to a replica). Neither the instance that
    /// saved nor another one may serve the older head it kept.
    @Test func aRedisThatComesBackWithLostWritesServesNoOlderHead() async throws {
        let redis = try PrivateRedis()
        let folder = try TemporaryFolder()
        let base = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let prefix = TestServers.uniquePrefix()
        let writer = try await cached(base, redisURL: redis.url, prefix: prefix, "timeout_ms=200&breaker_cooldown_ms=1")
        let id = try ThreadID("acme:lost")
        let thread = try writer.thread(id, as: Chat.self)
        try await thread.save(Chat(messages: ["one"], turn: 1))
        await writer.flush()
        #expect(try await writer.head(thread: id)?.step == 0)
        let raw = try RawRedis(url: redis.url)
        try raw.command([Data("SAVE".utf8)])  // the snapshot Redis will come back with
        try await thread.save(Chat(messages: ["one", "two"], turn: 2))
        try await thread.save(Chat(messages: ["one", "two", "three"], turn: 3))
        await writer.flush()
        #expect(try await writer.head(thread: id)?.step == 2)

        try redis.kill()
        try redis.start()  // loads the snapshot: the head entry of turn 1, a valid entry
        let other = try await cached(base, redisURL: redis.url, prefix: prefix, "timeout_ms=200&breaker_cooldown_ms=1")
        for cache in [writer, other] {
            let hits = cache.statistics.hits
            let deadline = ContinuousClock.now + .seconds(10)
            // Read until Redis serves this thread again; no read may be older than turn 3.
            while cache.statistics.hits == hits, ContinuousClock.now < deadline {
                #expect(try await cache.head(thread: id)?.step == 2, "a read after Redis came back is not older")
            }
            #expect(cache.statistics.hits > hits, "the cache serves again")
        }
        try await other.close()
        try await writer.close()
    }

    /// FLUSHALL (every entry gone) and DEBUG SLEEP (the server stops answering, keeping its
    /// data) under a writer and a reader: every read is at least the last acknowledged save.
    @Test func flushAllAndDebugSleepServeNoOlderHead() async throws {
        let redis = try PrivateRedis()
        let folder = try TemporaryFolder()
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: redis.url,
            "timeout_ms=100&breaker_cooldown_ms=1")
        let id = try ThreadID("acme:flush")
        let writer = try cache.thread(id, as: Chat.self)
        let acknowledged = Atomic<Int>(-1)
        var state = Chat()
        func save() async throws {
            state.turn += 1
            state.messages.append("turn \(state.turn)")
            try await writer.save(state)
            acknowledged.store(state.turn - 1, ordering: .releasing)  // the step just saved
        }
        func readAll(_ rounds: Int) async throws {
            for _ in 0..<rounds {
                let floor = acknowledged.load(ordering: .acquiring)
                let step = try await cache.head(thread: id)?.step ?? -1
                #expect(step >= floor, "a read returned step \(step), older than acknowledged \(floor)")
            }
        }
        for _ in 0..<5 { try await save() }
        try await readAll(5)
        let raw = try RawRedis(url: redis.url)
        try raw.command([Data("FLUSHALL".utf8)])
        try await readAll(3)
        for _ in 0..<3 { try await save() }
        try await readAll(3)
        // Freeze the server for a moment from another connection, while this one reads and writes.
        let sleeper = Task.detached { try RawRedis(url: redis.url).command([Data("DEBUG".utf8), Data("SLEEP".utf8), Data("0.5".utf8)]) }
        try await readAll(3)
        for _ in 0..<3 { try await save() }
        try await readAll(3)
        _ = try await sleeper.value
        // Entries Redis may hold out of date became tombstones newer than any head written
        // before the invalidation ran (which may be the first save after the freeze): the
        // saves after it put the thread back in the cache.
        for _ in 0..<2 {
            try await save()
            await cache.flush()
        }
        let hits = cache.statistics.hits
        try await readUntilHitsPass(hits, cache) { try await readAll(1) }
        #expect(cache.statistics.hits > hits, "the cache serves again after the freeze: \(cache.statistics)")
        try await cache.close()
    }

    /// A thread whose cache update Redis missed (frozen while a save's update ran) is owed an
    /// invalidation, whose tombstone is newer than every head saved so far. Its next reads
    /// cache the store's head again: a thread that is only read after the fault does not stay
    /// uncached until its next save or the tombstone's time to live.
    @Test func aThreadInvalidatedByAMissedUpdateIsCachedAgainByItsReads() async throws {
        let redis = try PrivateRedis()
        let folder = try TemporaryFolder()
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: redis.url,
            "timeout_ms=100&breaker_cooldown_ms=1")
        let thread = try cache.thread("acme:reread", as: Chat.self)
        try await thread.save(Chat(messages: ["one"], turn: 1))
        await cache.flush()
        try redis.freeze()
        try await thread.save(Chat(messages: ["one", "two"], turn: 2))
        await cache.flush()  // the update timed out: the thread is owed an invalidation
        try redis.thaw()
        let hits = cache.statistics.hits
        try await readUntilHitsPass(hits, cache) { () async throws in #expect(try await thread.latest()?.turn == 2) }
        #expect(cache.statistics.hits > hits, "reads alone cache the thread again: \(cache.statistics)")
        try await cache.close()
    }

    /// The race a read's fill of an entry without content must lose: the reader saw a
    /// tombstone and read the store; meanwhile a save older than the tombstone was refused by
    /// it. Its head may be newer than what the reader read, so the reader must not put its
    /// head in place of the tombstone; a reader that reads again after that may.
    @Test func aFillOverATombstoneFailsWhenARefusedWriteCameBetween() async throws {
        let raw = try RawRedis(url: try TestServers.redisURL())
        let prefix = TestServers.uniquePrefix()
        let key = Data("\(prefix):h:race".utf8)
        let index = Data("\(prefix):i:race".utf8)
        let older = CheckpointID.make()
        let newer = CheckpointID.make()
        let tombstone = CacheEntryFormat.order(.make(), "0") + Data(count: 16)
        try raw.set(key, tombstone)
        func set(_ id: CheckpointID, expecting seen: Data?) throws -> RedisReply {
            let order = CacheEntryFormat.order(id, "1")
            return try raw.command(
                [Data("EVAL".utf8), Data(Scripts.setIfNewer.utf8), Data("2".utf8), key, index, order, order + Data("x".utf8), Data("60".utf8)]
                    + (seen.map { [$0] } ?? []))
        }
        let seen = try #require(try raw.get(key))
        #expect(try set(newer, expecting: nil) == .integer(0), "a save older than the tombstone is refused")
        #expect(try set(older, expecting: seen) == .integer(0), "so the fill from before it fails")
        #expect(try raw.get(key)?.prefix(CacheEntryFormat.orderLength) == tombstone.prefix(CacheEntryFormat.orderLength))
        let seenAgain = try #require(try raw.get(key))
        #expect(try set(newer, expecting: seenAgain) == .integer(1), "a fill from a later read goes in")
        #expect(try raw.get(key) == CacheEntryFormat.order(newer, "1") + Data("x".utf8))
        #expect(try set(older, expecting: seenAgain) == .integer(0), "and from then on only newer heads")
        _ = try raw.command([Data("DEL".utf8), key, index])
    }

    /// A read right after this process's own save is served by the store while the save's
    /// cache update runs: counted as that, not as a fallback (an alert on fallbacks must not
    /// fire while Redis is healthy).
    @Test func readsRightAfterOwnSavesAreNotFallbacks() async throws {
        let folder = try TemporaryFolder()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)))
        let thread = try cache.thread("acme:own", as: Chat.self)
        for turn in 1...50 {
            try await thread.save(Chat(messages: ["m\(turn)"], turn: turn))
            #expect(try await thread.latest()?.turn == turn)
        }
        await cache.flush()
        let statistics = cache.statistics
        #expect(statistics.fallbacks == 0, "\(statistics)")
        #expect(statistics.hits + statistics.misses + statistics.ownUpdatesInFlight == 50, "\(statistics)")
        try await cache.close()
    }

    /// A healthy stack reports Redis's round trip, a closed breaker, and the store's schema.
    @Test func aHealthyStackReportsEachPart() async throws {
        let folder = try TemporaryFolder()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)))
        let report = await cache.health()
        #expect(report.status == .healthy && report.latency != nil && report.details["breaker"] == "closed", "\(report)")
        #expect(report.parts.first?.schema?.hasPrefix("20") == true, "the store's newest migration: \(report)")
        #expect(report.description.contains("redis-cache: healthy") && report.description.contains("\n  sqlite: healthy"))
        try await cache.close()
    }

    /// An older head put back into Redis with the same server (another instance's late
    /// write-back, a restore): the instance that saved newer never serves it.
    @Test func anInstanceNeverReadsOlderThanItsOwnSaves() async throws {
        let folder = try TemporaryFolder()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)))
        let id = try ThreadID("acme:floor")
        let thread = try cache.thread(id, as: Chat.self)
        try await thread.save(Chat(messages: ["one"], turn: 1))
        await cache.flush()
        _ = try await cache.head(thread: id)
        let raw = try RawRedis(url: try TestServers.redisURL())
        let headKeys = try raw.keys("\(cache.configuration.prefix):h:*")
        #expect(headKeys.count == 1)
        let oldEntry = try headKeys.first.flatMap { try raw.get($0) }
        try await thread.save(Chat(messages: ["one", "two"], turn: 2))
        await cache.flush()
        if let key = headKeys.first, let oldEntry { try raw.set(key, oldEntry) }
        for _ in 0..<3 { #expect(try await cache.head(thread: id)?.step == 1, "never older than its own save") }
        try await cache.close()
    }

    /// Unkeyed (XXH64 and the length) and keyed (SipHash with an integrity key).
    @Test(arguments: [false, true])
    func aTamperedOrTruncatedEntryIsNeverReturnedAsState(keyed: Bool) async throws {
        let folder = try TemporaryFolder()
        let prefix = TestServers.uniquePrefix()
        var configuration = try RedisCachedCheckpointer.Configuration(
            url: CheckpointerURL(TestServers.redisURL() + "?prefix=\(prefix)"))
        if keyed { configuration.integrityKey = Data((0..<32).map { UInt8($0) }) }
        let cache = try await RedisCachedCheckpointer(
            base: SQLiteCheckpointer(configuration: .init(path: folder.database)), configuration: configuration)
        let raw = try RawRedis(url: TestServers.redisURL())
        let thread = try cache.thread("acme:tamper", as: Chat.self)
        let state = Chat(messages: ["hello", "world"], turn: 2)
        try await thread.save(state)
        await cache.flush()
        let key = try #require(try raw.keys("\(prefix):h:*").first)
        let original = try #require(try raw.get(key))

        var damaged: [Data] = [original.prefix(original.count / 2), original.prefix(40), Data()]
        for position in stride(from: 0, to: original.count, by: max(1, original.count / 40)) {
            var flipped = original
            flipped[flipped.startIndex + position] ^= 0x10
            damaged.append(flipped)
        }
        for value in damaged {
            try raw.set(key, value)
            let read = try await cache.thread("acme:tamper", as: Chat.self).latest()
            #expect(read == state, "damaged bytes are never state; the base store answers")
        }
        #expect(cache.statistics.corruptEntries >= damaged.count - 1)
        // The bad entry was replaced by a good one.
        let hits = cache.statistics.hits
        _ = try await cache.head(thread: ThreadID("acme:tamper"))
        #expect(cache.statistics.hits == hits + 1)
        try await cache.close()
    }

    @Test func sealedFieldsStaySealedInRedis() async throws {
        let marker = "PLAINTEXT-MARKER-7f3a9c"
        let folder = try TemporaryFolder()
        let prefix = TestServers.uniquePrefix()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)), prefix: prefix)
        let raw = try RawRedis(url: TestServers.redisURL())
        let keys = try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])
        let sealed = try cache.thread("acme:sealed", as: Chat.self, sealing: .wholeState(SodiumSealer(keys: keys)))
        try await sealed.save(Chat(messages: [marker], turn: 1))
        try await sealed.save(Chat(messages: [marker, marker], turn: 2))
        await cache.flush()
        _ = try await sealed.latest()
        func valuesHoldMarker() throws -> Bool {
            try raw.keys("\(prefix):*").contains { key in
                guard let value = try raw.get(key) else { return false }
                return value.range(of: Data(marker.utf8)) != nil
            }
        }
        #expect(try !valuesHoldMarker())
        // The check can fail: the same marker unsealed is found.
        try await cache.thread("acme:plain", as: Chat.self).save(Chat(messages: [marker], turn: 1))
        await cache.flush()
        #expect(try valuesHoldMarker())
        try await cache.close()
    }

    @Test func aCancelledCallFailsWithCancelledAndIsNoRedisFault() async throws {
        let folder = try TemporaryFolder()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)))
        let id = try ThreadID("acme:cancelled")
        try await cache.thread(id, as: Chat.self).save(Chat(messages: ["hello"], turn: 1))
        await cache.flush()
        let cancelled = await withTaskGroup(of: CheckpointError.Code?.self) { group in
            group.addTask {
                withUnsafeCurrentTask { $0?.cancel() }
                do {
                    _ = try await cache.head(thread: id)
                    return nil
                } catch {
                    return (error as? CheckpointError)?.code
                }
            }
            var code: CheckpointError.Code?
            for await result in group { code = result }
            return code
        }
        #expect(cancelled == .cancelled)
        // The circuit breaker stayed closed: the next read is answered from Redis.
        let before = cache.statistics
        #expect(try await cache.head(thread: id)?.step == 0)
        #expect(cache.statistics.hits == before.hits + 1)
        #expect(cache.statistics.fallbacks == before.fallbacks)
        try await cache.close()
    }

    @Test func deletingAThreadRemovesItsEntries() async throws {
        let folder = try TemporaryFolder()
        let prefix = TestServers.uniquePrefix()
        let cache = try await cached(SQLiteCheckpointer(configuration: .init(path: folder.database)), prefix: prefix)
        let raw = try RawRedis(url: TestServers.redisURL())
        let thread = try cache.thread("acme:gone", as: Chat.self)
        try await thread.save(Chat(messages: ["a"], turn: 1))
        let first = try #require(try await cache.head(thread: ThreadID("acme:gone")))
        try await thread.save(Chat(messages: ["a", "b"], turn: 2))
        await cache.flush()
        _ = try await cache.checkpoint(thread: ThreadID("acme:gone"), namespace: "", id: first.id)
        #expect(try raw.keys("\(prefix):c:*").count == 1)
        try await cache.deleteThread(ThreadID("acme:gone"))
        #expect(try raw.keys("\(prefix):c:*").isEmpty, "by-id entries are deleted")
        #expect(try await cache.head(thread: ThreadID("acme:gone")) == nil)
        // What is left of the head is a tombstone: no content of the deleted thread.
        for key in try raw.keys("\(prefix):h:*") {
            let value = try #require(try raw.get(key))
            #expect(value.range(of: Data("\"a\"".utf8)) == nil)
        }
        // A new thread of the same name starts clean and is cached again.
        let fresh = try cache.thread("acme:gone", as: Chat.self)
        try await fresh.save(Chat(messages: ["new"], turn: 1))
        #expect(try await cache.thread("acme:gone", as: Chat.self).latest() == Chat(messages: ["new"], turn: 1))
        try await cache.close()
    }

    @Test func aWriterThatDiedBeforeItsCacheUpdateDoesNotTrapTheNextOne() async throws {
        let folder = try TemporaryFolder()
        let base = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let cache = try await cached(base)
        let thread = try cache.thread("acme:orphan", as: Chat.self)
        try await thread.save(Chat(messages: ["one"], turn: 1))
        await cache.flush()
        // Another process writes the store and dies before it updates the cache.
        let other = try base.thread("acme:orphan", as: Chat.self)
        var next = try #require(try await other.latest())
        next.turn = 2
        next.messages.append("two")
        try await other.save(next)
        // This writer's first save conflicts (its parent came from the old cached head); the
        // conflict refreshes the cached head, and its retry goes through.
        let writer = try cache.thread("acme:orphan", as: Chat.self)
        var attempts = 0
        while true {
            attempts += 1
            var state = try await writer.latest() ?? Chat()
            state.turn += 1
            state.messages.append("next")
            do {
                try await writer.save(state)
                break
            } catch let error as CheckpointError where error.code == .conflict && attempts < 3 {
                continue
            }
        }
        #expect(attempts <= 2)
        #expect(try await base.thread("acme:orphan", as: Chat.self).latest()?.turn == 3)
        try await cache.close()
    }

    @Test func redisDownAtStartIsNotAnErrorAndBadURLsAre() async throws {
        let folder = try TemporaryFolder()
        let cache = try await cached(
            SQLiteCheckpointer(configuration: .init(path: folder.database)), redisURL: "redis://127.0.0.1:1/0",
            "timeout_ms=50")
        let thread = try cache.thread("acme:nocache", as: Chat.self)
        try await thread.save(Chat(messages: ["x"], turn: 1))
        await cache.flush()  // the save's cache update failed: the read after it is a fallback
        #expect(try await thread.latest() == Chat(messages: ["x"], turn: 1))
        #expect(cache.statistics.hits == 0 && cache.statistics.fallbacks > 0)
        // Calls work, slower: degraded, with the reason, the breaker, and a healthy store below.
        let report = await cache.health()
        #expect(report.status == .degraded, "\(report)")
        #expect(report.details["breaker"] == "open" && report.problem?.hasPrefix("Redis:") == true, "\(report)")
        #expect(report.parts.map(\.component) == ["sqlite"] && report.parts.first?.status == .healthy, "\(report)")
        try await cache.close()

        for url in ["redis://h/abc", "redis://h/0?nonsense=1", "redis://h/0?ttl=0", "redis://h/0?refresh_on_read=maybe",
            "redis://h/0?integrity_key_env=CHECKPOINT_NO_SUCH_VARIABLE"]
        {
            #expect(throws: CheckpointError.self) {
                try RedisCachedCheckpointer.Configuration(url: CheckpointerURL(url))
            }
        }
        let unknownCache = try CheckpointerConfiguration(url: "memory:", cacheURL: "memcached://h")
        let error = try await requireError(.invalidConfiguration) {
            try await unknownCache.makeCheckpointer(caches: [RedisCachedCheckpointer.cacheLayer])
        }
        #expect(error.message.contains("memcached"))
        #expect(!"\(try CheckpointerConfiguration(url: "memory:", cacheURL: "redis://:hunter2@h/0"))".contains("hunter2"))
    }
}

@Suite("XXH64")
struct XXHash64Tests {
    /// Reference values from `xxhsum -H1` (the xxHash project's tool, Debian package xxhash).
    @Test(arguments: [
        (0, UInt64(0xEF46_DB37_51D8_E999)), (37, 0xD93F_A2DF_EE5C_24C9), (1000, 0xF306_F04A_A88B_54D3),
    ])
    func matchesTheReference(_ count: Int, _ expected: UInt64) {
        let bytes = (0..<count).map { UInt8($0 % 251) }
        #expect(bytes.withUnsafeBytes { XXHash64.hash($0) } == expected)
    }

    @Test func matchesTheReferenceForABC() {
        #expect(Array("abc".utf8).withUnsafeBytes { XXHash64.hash($0) } == 0x44BC_2CF5_AD77_0999)
    }
}

/// Runs `read` at least once, and again until the cache's hits pass `hits` or 10 seconds have
/// passed (the caller then checks the hits, so a cache that never serves again fails there).
func readUntilHitsPass(_ hits: Int, _ cache: RedisCachedCheckpointer, _ read: () async throws -> Void) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    repeat { try await read() } while cache.statistics.hits <= hits && ContinuousClock.now < deadline
}

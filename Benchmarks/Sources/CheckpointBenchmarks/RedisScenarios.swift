import CheckpointPostgres
import CheckpointRedisCache
import Checkpointing
import Foundation

/// The Redis cache over Postgres: cached head reads next to a raw hiredis GET of the same
/// bytes, and cached puts next to the base store's puts.
func redisScenarios(_ rows: inout [Row], redisURL: String, url: String) async throws {
    let conversations = Int(option("--redis-threads") ?? "") ?? 40
    let schema = "bench_redis_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let prefix = "bench-" + UUID().uuidString.prefix(8)
    let parsed = try CheckpointerURL(redisURL)
    var cachedPuts = Samples()
    var basePuts = Samples()
    var cachedReads = Samples()
    var cachedReadsPool = Samples()
    var floorReads = Samples()
    var floorReadsPool = Samples()
    var coldReads = Samples()
    var floorReadsCold = Samples()
    // `--redis-parameters inline_reply_wait_us=0`, for example, to measure a setting.
    let extra = option("--redis-parameters").map { "&" + $0 } ?? ""
    for index in 0..<conversations {
        // Fresh connections per conversation, as for Postgres: each side gets the same mix
        // of server process placements.
        let base = try await PostgresCheckpointer(url: url + "?schema=\(schema)&pool_max=2")
        let cache = try await RedisCachedCheckpointer(
            base: base, configuration: .init(url: CheckpointerURL(redisURL + "?prefix=\(prefix)&pool_max=2" + extra)))
        let floor = try RawRedis(host: parsed.host ?? "127.0.0.1", port: parsed.port ?? 6379)
        let cachedThread = try cache.thread("cached-\(index)", as: ConversationState.self)
        let baseThread = try base.thread("base-\(index)", as: ConversationState.self)
        var state = ConversationState()
        for size in 1...25 {
            state.messages.append(message(size))
            state.turn = size
            if size % 2 == 0 {
                _ = try await time(&cachedPuts) { try await cachedThread.save(state) }
                _ = try await time(&basePuts) { try await baseThread.save(state) }
            } else {
                _ = try await time(&basePuts) { try await baseThread.save(state) }
                _ = try await time(&cachedPuts) { try await cachedThread.save(state) }
            }
            if size < 16 {
                cachedPuts.nanoseconds.removeLast()
                basePuts.nanoseconds.removeLast()
            }
        }
        var key = Data("\(prefix):h:\(cachedThread.id.rawValue.utf8.count):".utf8)
        key.append(contentsOf: cachedThread.id.rawValue.utf8)
        let id = cachedThread.id
        for round in 0..<10 {
            if round % 2 == 0 { _ = time(&floorReadsPool) { floor.get(key) } }
            _ = try await time(&cachedReadsPool) { try await cache.head(thread: id) }
            if round % 2 == 1 { _ = time(&floorReadsPool) { floor.get(key) } }
        }
        try await withTaskExecutorPreference(cache.connectionExecutor(0)) {
            for round in 0..<10 {
                if round % 2 == 0 { _ = time(&floorReads) { floor.get(key) } }
                _ = try await time(&cachedReads) { try await cache.head(thread: id) }
                if round % 2 == 1 { _ = time(&floorReads) { floor.get(key) } }
            }
        }
        // Another instance, keeping nothing locally: every hit is checked and decoded.
        let other = try await RedisCachedCheckpointer(
            base: InMemoryCheckpointer(),
            configuration: .init(url: CheckpointerURL(redisURL + "?prefix=\(prefix)&pool_max=1&local_heads=0" + extra)))
        try await withTaskExecutorPreference(other.connectionExecutor(0)) {
            for round in 0..<10 {
                if round % 2 == 0 { _ = time(&floorReadsCold) { floor.get(key) } }
                _ = try await time(&coldReads) { try await other.head(thread: id) }
                if round % 2 == 1 { _ = time(&floorReadsCold) { floor.get(key) } }
            }
        }
        try await other.close()
        let statistics = cache.statistics
        if index == conversations - 1 {
            print("redis cache: \(statistics.hits) hits, \(statistics.misses) misses, \(statistics.fallbacks) fallbacks in the last conversation")
        }
        try await cache.close()
    }
    report(&rows, "redis cache: head read (20..25 messages), Redis connection executor", cachedReads, floor: ("raw hiredis GET of the same bytes", floorReads))
    report(&rows, "redis cache: head read (25 messages), from the shared pool", cachedReadsPool, floor: ("raw hiredis GET of the same bytes", floorReadsPool))
    report(&rows, "redis cache: head read (25 messages), another instance's entry, checked and decoded each time", coldReads, floor: ("raw hiredis GET of the same bytes", floorReadsCold))
    report(&rows, "redis cache over postgres: put, 16-25 messages", cachedPuts, floor: ("the same put on postgres alone", basePuts))
}

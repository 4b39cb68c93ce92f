import CCheckpointSodium
import Checkpointing
import CoreMetrics
import Foundation
import Logging
import Synchronization

/// A Redis cache in front of any ``Checkpointer``, and itself a checkpointer.
///
/// ```swift
/// let base = try await PostgresCheckpointer(url: "postgres://agent:secret@db/agents")
/// let checkpointer = try await RedisCachedCheckpointer(
///     base: base, configuration: .init(url: CheckpointerURL("redis://:secret@cache:6379/0?ttl=300")))
/// ```
///
/// - **Reads**: a head or by-id read is answered from Redis when the entry is there and
///   passes its integrity check; otherwise from the base store, whose answer is then cached.
///   History, the inbox and statistics always go to the base store.
/// - **Writes**: the base store is the source of truth. A put writes it first, then sets the
///   thread's cached head through a Lua script that only moves it forward (entries are ordered
///   by checkpoint id), so two instances writing through two caches never leave an older head
///   cached. Deleting a thread leaves a tombstone newer than every head it had.
/// - **Faults**: when Redis is down or slower than ``Configuration/timeout``, calls go to the
///   base store and never fail because of the cache; a circuit breaker then skips Redis for
///   ``Configuration/breakerCooldown`` before trying again. A thread whose cache entry could not
///   be updated is read from the base store until its entries are deleted, which happens as
///   soon as Redis answers again, so a head Redis kept while it was unreachable is never served.
/// - Every entry holds its checkpoint's bytes exactly as the base store returns them (sealed
///   fields stay sealed) and a check over its key and content (XXH64 and the length, or keyed
///   SipHash-2-4-128 with ``Configuration/integrityKey``): a changed or truncated entry is
///   never returned as state. Every instance sharing a key prefix must use the same key.
///
/// A call from a cancelled task throws ``CheckpointError/Code/cancelled`` before it reaches
/// Redis or the base store, and a `cancelled` from the base store passes through unchanged;
/// a cancelled Redis command is not a Redis fault (the circuit breaker stays closed).
///
/// Closing it closes the base store too.
public final class RedisCachedCheckpointer: Checkpointer {
    /// The store of record.
    public let base: any Checkpointer
    /// The settings the cache was opened with.
    public let configuration: Configuration
    private let pool: ConnectionPool<RedisConnection>
    private let breaker: CircuitBreaker
    private let pending = PendingInvalidations(capacity: 10_000)
    private let updating = UpdatesInFlight()
    private let localHeads: LocalHeads
    private let counters = Counters()
    private let metrics: CacheMetrics
    private let logger: Logger
    /// How entries are framed and checked (keyed with ``Configuration/integrityKey``, when set).
    private let entries: CacheEntryFormat

    /// Lets ``CheckpointerConfiguration`` layer a `redis:` cache URL on any backend.
    public static let cacheLayer: any CheckpointerCacheLayer = RedisCacheLayer()

    /// Connects to Redis (without failing when it is down: the cache then starts in
    /// fall-through mode and comes back by itself).
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for bad settings.
    public init(
        base: any Checkpointer, configuration: Configuration,
        logger: Logger = Logger(label: "checkpointing.redis-cache")
    ) async throws {
        try configuration.validate()
        self.entries = try CacheEntryFormat(integrityKey: configuration.integrityKey)
        self.base = base
        self.configuration = configuration
        self.logger = logger
        self.breaker = CircuitBreaker(cooldown: configuration.breakerCooldown)
        self.localHeads = LocalHeads(capacity: configuration.localHeads)
        self.metrics = CacheMetrics(factory: configuration.metricsFactory)
        let host = configuration.host
        let port = configuration.port
        let password = configuration.password
        let database = configuration.database
        let timeout = configuration.timeout
        pool = ConnectionPool(
            size: configuration.poolMax, label: "checkpointing.redis", serverName: "Redis",
            idleSpin: configuration.idleSpin, acquireTimeout: configuration.timeout, logger: logger,
            connect: { try RedisConnection(host: host, port: port, password: password, database: database, timeout: timeout) },
            classify: { error in
                switch error {
                case let error as RedisError:
                    (CheckpointError(.connectionFailed, error.message, underlying: error), error.connectionLost)
                default: (error, false)
                }
            })
        if (try? await pool.run({ connection in try connection.command([Data("PING".utf8)]) })) == nil {
            breaker.recordFailure()
            logger.warning("Redis is not reachable; calls go to the base store until it is", metadata: ["redis": "\(configuration)"])
        }
    }

    /// Hits, misses, fall-throughs and rejected entries since the cache was opened (also sent
    /// to swift-metrics).
    public var statistics: CacheStatistics { counters.snapshot }

    /// A Redis connection's thread, as an executor: code that prefers it runs its cached reads
    /// inline on that connection, without thread hand-offs.
    public func connectionExecutor(_ index: Int) -> any TaskExecutor { pool.executor(index) }

    // MARK: Keys and entries

    private func key(_ kind: String, _ thread: ThreadID, _ namespace: String, _ id: CheckpointID? = nil) -> Data {
        var key = [UInt8]()
        key.reserveCapacity(configuration.prefix.utf8.count + thread.rawValue.utf8.count + namespace.utf8.count + 48)
        key.append(contentsOf: configuration.prefix.utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: kind.utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: String(thread.rawValue.utf8.count).utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: thread.rawValue.utf8)
        key.append(contentsOf: namespace.utf8)
        if let id {
            key.append(UInt8(ascii: ":"))
            key.append(contentsOf: id.hexBytes)
        }
        return Data(key)
    }

    private func threadIndexKey(_ thread: ThreadID) -> Data {
        var key = Data("\(configuration.prefix):t:\(thread.rawValue.utf8.count):".utf8)
        key.append(contentsOf: thread.rawValue.utf8)
        return key
    }

    private static let get = Data("GET".utf8)

    /// A checkpoint's order and encoded content, to make its entry on a connection.
    private func content(of checkpoint: Checkpoint) throws -> (order: Data, body: Data) {
        (CacheEntryFormat.order(of: checkpoint), try CheckpointCodec.encode(checkpoint))
    }

    // MARK: Talking to Redis

    /// Runs Redis commands unless the breaker is open; `nil` when Redis was skipped or failed
    /// (the failure opens the breaker). Invalidations owed from earlier failures run first.
    private func withRedis<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async -> T? {
        guard breaker.allowsCall() else { return nil }
        do {
            let owed = pending.take()
            let result: T
            if owed.threads.isEmpty && !owed.everything {
                result = try await pool.run(body)
            } else {
                let prefix = configuration.prefix
                let ttl = Data(String(configuration.timeToLive.components.seconds).utf8)
                result = try await pool.run { [owed] connection -> T in
                    try Self.invalidate(
                        owed, prefix: prefix, ttl: ttl, on: connection, threadIndexKey: { self.threadIndexKey($0) })
                    return try body(connection)
                }
            }
            breaker.recordSuccess()
            if !owed.threads.isEmpty || owed.everything { pending.done(owed) }
            return result
        } catch let error as CheckpointError where error.code == .cancelled {
            return nil  // the caller's task was cancelled before the command ran: Redis is fine
        } catch {
            breaker.recordFailure()
            logger.debug("Redis call failed; using the base store", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private static func check(_ reply: RedisReply) throws -> RedisReply {
        if case .error(let message) = reply { throw RedisError(message: "Redis: \(message.prefix(120))", connectionLost: false) }
        return reply
    }

    /// Invalidates every entry of the owed threads (or, after too many, every entry of the
    /// prefix). A thread's head entries become tombstones newer than anything written before:
    /// a write that a frozen Redis still holds in a dead connection's buffer, run later, cannot
    /// put an old head back. Its reads then come from the base store until its next put.
    private static func invalidate(
        _ owed: PendingInvalidations.Owed, prefix: String, ttl: Data, on connection: RedisConnection,
        threadIndexKey: (ThreadID) -> Data
    ) throws {
        if owed.everything {
            var cursor = Data("0".utf8)
            repeat {
                let reply = try check(
                    connection.command([
                        Data("SCAN".utf8), cursor, Data("MATCH".utf8), Data("\(prefix):*".utf8), Data("COUNT".utf8),
                        Data("1000".utf8),
                    ]))
                guard case .array(let parts) = reply, parts.count == 2, case .string(let next) = parts[0],
                    case .array(let keys) = parts[1]
                else { throw RedisError(message: "unexpected SCAN reply", connectionLost: false) }
                let names = keys.compactMap { if case .string(let key) = $0 { key } else { nil } }
                if !names.isEmpty { _ = try check(connection.command([Data("DEL".utf8)] + names)) }
                cursor = next
            } while cursor != Data("0".utf8)
        }
        let tombstone = CacheEntryFormat.order(.make(), "0")
        for thread in owed.threads.keys {
            _ = try check(
                connection.command([
                    Data("EVAL".utf8), Data(Scripts.tombstoneThread.utf8), Data("1".utf8), threadIndexKey(thread), tombstone,
                    ttl, Data(prefix.utf8),
                ]))
        }
    }

    // MARK: Checkpointer

    /// Writes the base store, then moves the cached head forward; see ``Checkpointer/put(_:expecting:)``.
    ///
    /// The cache update runs after the call returns (write-behind), so a put costs what the
    /// base store's put costs. Until it is done, this process reads the thread from the base
    /// store, so it always reads its own writes.
    public func put(_ write: CheckpointWrite, expecting: PutExpectation) async throws {
        try throwIfCancelled()
        do {
            try await base.put(write, expecting: expecting)
        } catch let error as CheckpointError where error.code == .connectionFailed || error.code == .backendFailure {
            // The write may have reached the store: the cached head can no longer be trusted.
            await forget(write.thread)
            throw error
        } catch let error as CheckpointError where error.code == .conflict {
            // The writer's parent may have come from an old cached head (a writer that died
            // before its cache update): cache the store's head, so that its retry reads it.
            await refreshHead(write.thread, write.namespace)
            throw error
        }
        let parent = write.parentID.flatMap { localHeads.checkpoint(write.thread, write.namespace, $0) }
        let derived = CheckpointCodec.applying(write, to: parent)
        let headKey = key("h", write.thread, write.namespace)
        let (order, body): (Data, Data)
        if let derived {
            (order, body) = try content(of: derived)
        } else {
            (order, body) = (CacheEntryFormat.order(write.id, "0"), Data())
        }
        localHeads.store(write.thread, write.namespace, derived)
        localHeads.acknowledged(write.thread, write.namespace, write.id)
        let thread = write.thread
        let namespace = write.namespace
        // Write-behind, but tracked: `updating` counts it (reads of the thread go to the base
        // store until it ends; `flush()` and `close()` wait for it), and a failure is recorded
        // as an owed invalidation, so no outcome of it is lost or ignored.
        updating.begin(thread)
        Task.detached { [self] in
            if let value = await setGuarded(headKey, order: order, body: body, thread: thread), derived != nil {
                localHeads.attach(value, thread, namespace, write.id)
            }
            updating.end(thread)
        }
    }

    /// Sets an entry unless Redis holds a newer one; remembers the thread as owed an
    /// invalidation when Redis cannot be told. The value is fresh (just written to or read
    /// from the base store), so it may go in right after the thread's owed invalidation, which
    /// ``withRedis(_:)`` runs first.
    ///
    /// - Returns: the entry written (it carries the answering server's run id), or `nil`.
    @discardableResult
    private func setGuarded(_ key: Data, order: Data, body: Data, thread: ThreadID) async -> Data? {
        let ttl = Data(String(configuration.timeToLive.components.seconds).utf8)
        let index = threadIndexKey(thread)
        let written: Data? = await withRedis { connection in
            let value = self.entries.entry(key: key, order: order, runID: connection.runID, body: body)
            _ = try Self.check(
                connection.command([
                    Data("EVAL".utf8), Data(Scripts.setIfNewer.utf8), Data("2".utf8), key, index, order, value, ttl,
                ]))
            return value
        }
        if written == nil { pending.add(thread) }
        return written
    }

    /// Caches the store's head of a thread (the guard keeps a newer cached one).
    private func refreshHead(_ thread: ThreadID, _ namespace: String) async {
        guard let head = try? await base.checkpoint(thread: thread, namespace: namespace, id: nil) else { return }
        localHeads.store(thread, namespace, head)
        localHeads.acknowledged(thread, namespace, head.id)
        let headKey = key("h", thread, namespace)
        guard let (order, body) = try? content(of: head) else { return }
        if let value = await setGuarded(headKey, order: order, body: body, thread: thread) {
            localHeads.attach(value, thread, namespace, head.id)
        }
    }

    /// Makes sure no entry of `thread` is served until Redis confirms they are gone.
    private func forget(_ thread: ThreadID) async {
        pending.add(thread)
        _ = await withRedis { _ in true }  // runs the owed invalidation now, if Redis answers
    }

    /// Reads from Redis when it holds a valid entry, else from the base store (then caches
    /// it); see ``Checkpointer/checkpoint(thread:namespace:id:)``.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) async throws -> Checkpoint? {
        try throwIfCancelled()
        let entryKey = id == nil ? key("h", thread, namespace) : key("c", thread, namespace, id)
        let isUpdating = updating.contains(thread)
        if !pending.contains(thread) && !isUpdating {
            let command: [Data] =
                configuration.refreshOnRead
                ? [
                    Data("EVAL".utf8), Data(Scripts.getAndRefresh.utf8), Data("2".utf8), entryKey, threadIndexKey(thread),
                    Data(String(configuration.timeToLive.components.seconds).utf8),
                ] : [Self.get, entryKey]
            let answer: (reply: RedisReply, runID: Data)? = await withRedis { connection in
                (try Self.check(connection.command(command)), connection.runID)
            }
            switch answer?.reply {
            case .string(let value)?:
                let runID = answer?.runID ?? Data()
                // The very bytes of an entry this process made or checked before, on this run
                // of the server: its checkpoint is known, nothing needs checking or decoding again.
                if id == nil, let known = localHeads.checkpoint(thread, namespace, matching: value),
                    CacheEntryFormat.runID(of: value).elementsEqual(runID)
                {
                    counters.hit()
                    metrics.hits.increment()
                    return known
                }
                do {
                    if let checkpoint = try entries.open(
                        value, key: entryKey, thread: thread, namespace: namespace, id: id, runID: runID)
                    {
                        // Heads only move forward: a cached head older than one this process
                        // saved or read from the store is stale (a late write-back, a restore).
                        if id == nil, let floor = localHeads.newestKnown(thread, namespace), checkpoint.id < floor {
                            throw CacheEntryOfAnotherRun()
                        }
                        counters.hit()
                        metrics.hits.increment()
                        if id == nil { localHeads.store(thread, namespace, checkpoint, entry: value) }
                        return checkpoint
                    }
                    counters.miss()
                    metrics.misses.increment()
                } catch is CacheEntryOfAnotherRun {
                    counters.miss()
                    metrics.misses.increment()
                    metrics.stale.increment()
                    logger.debug("a cached entry predates the Redis server's restart or this process's own save; reading the base store")
                    _ = await withRedis { connection in try Self.check(connection.command([Data("DEL".utf8), entryKey])) }
                } catch {
                    counters.corrupt()
                    metrics.corrupt.increment()
                    logger.warning("a cached entry failed its check; it is deleted and read from the base store")
                    _ = await withRedis { connection in try Self.check(connection.command([Data("DEL".utf8), entryKey])) }
                }
            case nil:
                counters.fallback()
                metrics.fallbacks.increment()
            default:
                counters.miss()
                metrics.misses.increment()
            }
        } else {
            counters.fallback()
            metrics.fallbacks.increment()
        }
        guard let checkpoint = try await base.checkpoint(thread: thread, namespace: namespace, id: id) else { return nil }
        if id == nil {
            localHeads.store(thread, namespace, checkpoint)
            localHeads.acknowledged(thread, namespace, checkpoint.id)
        }
        // A put's update under way will cache a head at least this new.
        if isUpdating && id == nil { return checkpoint }
        let (order, body) = try content(of: checkpoint)
        if let value = await setGuarded(entryKey, order: order, body: body, thread: thread), id == nil {
            localHeads.attach(value, thread, namespace, checkpoint.id)
        }
        return checkpoint
    }

    /// Lists history from the base store.
    public func history(
        thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int, where filter: Metadata
    ) async throws -> [CheckpointSummary] {
        try throwIfCancelled()
        return try await base.history(thread: thread, namespace: namespace, before: before, limit: limit, where: filter)
    }

    /// Deletes the thread in the base store, then its entries, leaving tombstones newer than
    /// any head it had.
    public func deleteThread(_ thread: ThreadID) async throws {
        try throwIfCancelled()
        do {
            try await base.deleteThread(thread)
        } catch {
            await forget(thread)
            throw error
        }
        localHeads.remove(thread)
        // A put's cache update still under way would add an entry the tombstones miss.
        await updating.wait(for: thread)
        let tombstone = CacheEntryFormat.order(.make(), "0")
        let ttl = Data(String(configuration.timeToLive.components.seconds).utf8)
        let prefix = Data(configuration.prefix.utf8)
        let index = threadIndexKey(thread)
        let done: Bool? = await withRedis { connection in
            _ = try Self.check(
                connection.command([
                    Data("EVAL".utf8), Data(Scripts.tombstoneThread.utf8), Data("1".utf8), index, tombstone, ttl, prefix,
                ]))
            return true
        }
        if done == nil { pending.add(thread) }
    }

    /// Prunes in the base store, then drops the thread's by-id entries.
    public func prune(thread: ThreadID, namespace: String, keepingLatest count: Int) async throws -> Int {
        try throwIfCancelled()
        let removed = try await base.prune(thread: thread, namespace: namespace, keepingLatest: count)
        if removed > 0 {
            let index = threadIndexKey(thread)
            let prefix = Data(configuration.prefix.utf8)
            let done: Bool? = await withRedis { connection in
                _ = try Self.check(
                    connection.command([Data("EVAL".utf8), Data(Scripts.dropByID.utf8), Data("1".utf8), index, prefix]))
                return true
            }
            if done == nil { pending.add(thread) }
        }
        return removed
    }

    /// Statistics from the base store.
    public func storageStatistics(thread: ThreadID) async throws -> StorageStatistics {
        try throwIfCancelled()
        return try await base.storageStatistics(thread: thread)
    }

    /// The inbox, from the base store.
    public func pausedThreads(_ query: InboxQuery) async throws -> InboxPage {
        try throwIfCancelled()
        return try await base.pausedThreads(query)
    }

    /// Records the answer in the base store, then caches the answered head.
    ///
    /// Once the base store recorded the answer the call succeeds: when the answered head
    /// cannot be read back (the task was cancelled meanwhile, the store failed), the thread's
    /// entries are invalidated instead, so no unanswered head is served.
    public func resume(thread: ThreadID, namespace: String, pauseID: UUID, response: Data, at now: Date) async throws {
        try throwIfCancelled()
        do {
            try await base.resume(thread: thread, namespace: namespace, pauseID: pauseID, response: response, at: now)
        } catch let error as CheckpointError where error.code == .connectionFailed || error.code == .backendFailure {
            await forget(thread)
            throw error
        }
        let head: Checkpoint
        do {
            guard let found = try await base.checkpoint(thread: thread, namespace: namespace, id: nil) else {
                await forget(thread)
                return
            }
            head = found
        } catch {
            await forget(thread)
            return
        }
        localHeads.store(thread, namespace, head)
        localHeads.acknowledged(thread, namespace, head.id)
        guard let (order, body) = try? content(of: head) else {
            await forget(thread)
            return
        }
        for entryKey in [key("h", thread, namespace), key("c", thread, namespace, head.id)] {
            await setGuarded(entryKey, order: order, body: body, thread: thread)
        }
    }

    /// Waits until the cache updates of the puts that returned so far are done (or given up:
    /// Redis down). Reads never need it to be correct; tests and shutdown code use it.
    public func flush() async {
        await updating.drain()
    }

    /// Finishes the cache updates under way, then closes the Redis connections and the base store.
    public func close() async throws {
        await updating.drain()
        await pool.close()
        try await base.close()
    }
}

extension CheckpointID {
    /// The id's 32 lowercase hex digits as ASCII bytes, in time order.
    var hexBytes: [UInt8] {
        var text = [UInt8](repeating: 0, count: 33)
        text.removeLast()
        var index = 0
        for word in [high, low] {
            for shift in stride(from: 60, through: 0, by: -4) {
                let digit = UInt8((word >> UInt64(shift)) & 0xf)
                text[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                index += 1
            }
        }
        return text
    }
}

/// The Lua scripts, each run atomically by Redis.
enum Scripts {
    /// KEYS: entry, thread index. ARGV: order, value, ttl. Sets the entry unless it holds an
    /// order at least as new (orders are hex of the same length, so byte order is time order).
    static let setIfNewer = """
        local current = redis.call('GETRANGE', KEYS[1], 0, 32)
        if current ~= '' and current >= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
        redis.call('SADD', KEYS[2], KEYS[1])
        redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
        return 1
        """

    /// KEYS: entry, thread index. ARGV: ttl. Reads an entry and restarts its time to live.
    static let getAndRefresh = """
        local value = redis.call('GET', KEYS[1])
        if value then
            redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
            redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
        end
        return value
        """

    /// KEYS: thread index. ARGV: tombstone order, ttl, prefix. Head entries become tombstones
    /// (so that a read that began before the delete cannot cache the old head again); by-id
    /// entries go.
    static let tombstoneThread = """
        local members = redis.call('SMEMBERS', KEYS[1])
        local headMarker = ARGV[3] .. ':h:'
        for _, key in ipairs(members) do
            if string.sub(key, 1, #headMarker) == headMarker then
                redis.call('SET', key, ARGV[1] .. string.rep('\\0', 16), 'EX', tonumber(ARGV[2]))
            else
                redis.call('DEL', key)
            end
        end
        return #members
        """

    /// KEYS: thread index. ARGV: prefix. Deletes the thread's by-id entries.
    static let dropByID = """
        local members = redis.call('SMEMBERS', KEYS[1])
        local marker = ARGV[1] .. ':c:'
        for _, key in ipairs(members) do
            if string.sub(key, 1, #marker) == marker then
                redis.call('DEL', key)
                redis.call('SREM', KEYS[1], key)
            end
        end
        return 0
        """
}

/// Hits, misses, fall-throughs to the base store, and entries rejected by their check.
public struct CacheStatistics: Sendable, Hashable {
    /// Reads answered from Redis.
    public var hits: Int
    /// Reads Redis had no entry for.
    public var misses: Int
    /// Reads that went to the base store because Redis was down, slow, or owed an invalidation.
    public var fallbacks: Int
    /// Entries that failed their integrity check (answered from the base store instead).
    public var corruptEntries: Int
}

final class Counters: Sendable {
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let fallbacks = Atomic<Int>(0)
    private let corrupts = Atomic<Int>(0)

    func hit() { hits.add(1, ordering: .relaxed) }
    func miss() { misses.add(1, ordering: .relaxed) }
    func fallback() { fallbacks.add(1, ordering: .relaxed) }
    func corrupt() { corrupts.add(1, ordering: .relaxed) }

    var snapshot: CacheStatistics {
        CacheStatistics(
            hits: hits.load(ordering: .relaxed), misses: misses.load(ordering: .relaxed),
            fallbacks: fallbacks.load(ordering: .relaxed), corruptEntries: corrupts.load(ordering: .relaxed))
    }
}

struct CacheMetrics: Sendable {
    let hits: Counter
    let misses: Counter
    let fallbacks: Counter
    let corrupt: Counter
    let stale: Counter

    init(factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        hits = Counter(label: "checkpoint_cache_hits", factory: factory)
        misses = Counter(label: "checkpoint_cache_misses", factory: factory)
        fallbacks = Counter(label: "checkpoint_cache_fallbacks", factory: factory)
        corrupt = Counter(label: "checkpoint_cache_corrupt_entries", factory: factory)
        stale = Counter(label: "checkpoint_cache_stale_entries", factory: factory)
    }
}

/// After a failure Redis is skipped for a cooldown; then one call tries it again.
final class CircuitBreaker: Sendable {
    private let openUntil = Mutex<ContinuousClock.Instant?>(nil)
    private let cooldown: Duration

    init(cooldown: Duration) {
        self.cooldown = cooldown
    }

    /// Whether a call may use Redis now. Past the cooldown, the first caller gets through and
    /// the others keep skipping until it reports.
    func allowsCall() -> Bool {
        openUntil.withLock { until in
            guard let deadline = until else { return true }
            let now = ContinuousClock.now
            guard now >= deadline else { return false }
            until = now + cooldown
            return true
        }
    }

    func recordSuccess() { openUntil.withLock { $0 = nil } }

    func recordFailure() { openUntil.withLock { $0 = ContinuousClock.now + cooldown } }
}

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

/// Threads whose cache update runs in the background: read from the base store meanwhile.
/// Waiting for them (deleting a thread, `flush()`, `close()`) is signalled when the last one
/// ends, not polled.
final class UpdatesInFlight: Sendable {
    private struct State {
        var counts: [ThreadID: Int] = [:]
        var threadWaiters: [ThreadID: [CheckedContinuation<Void, Never>]] = [:]
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    private let total = Atomic<Int>(0)

    func begin(_ thread: ThreadID) {
        total.add(1, ordering: .relaxed)
        state.withLock { $0.counts[thread, default: 0] += 1 }
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

    /// Waits until no update runs (for `flush()` and `close()`).
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
    /// By bytes, as Redis's keys and the stores are: ``ThreadID`` and ``BytewiseString``.
    private struct Key: Hashable {
        var thread: ThreadID
        var namespace: BytewiseString

        init(thread: ThreadID, namespace: String) {
            self.thread = thread
            self.namespace = BytewiseString(namespace)
        }
    }
    private struct Entry {
        var checkpoint: Checkpoint
        var bytes: Data?
    }
    private let entries = Mutex<[Key: Entry]>([:])
    private let capacity: Int
    /// Per thread, the newest head id this process saved or read from the base store: a cached
    /// head older than it is never served. Kept for at least ``floorCapacity`` threads.
    private let floors = Mutex<[Key: CheckpointID]>([:])
    static let floorCapacity = 100_000

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Records a head this process saved, or read from the base store.
    func acknowledged(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) {
        floors.withLock { floors in
            let key = Key(thread: thread, namespace: namespace)
            if let known = floors[key], known >= id { return }
            if floors.count >= max(capacity, Self.floorCapacity), floors[key] == nil {
                floors.removeAll(keepingCapacity: true)
            }
            floors[key] = id
        }
    }

    /// The newest head id of the thread this process saved or read from the base store.
    func newestKnown(_ thread: ThreadID, _ namespace: String) -> CheckpointID? {
        floors.withLock { $0[Key(thread: thread, namespace: namespace)] }
    }

    /// Remembers the entry bytes of the head `id`, once written, if it is still the known head.
    func attach(_ bytes: Data, _ thread: ThreadID, _ namespace: String, _ id: CheckpointID) {
        entries.withLock { entries in
            let key = Key(thread: thread, namespace: namespace)
            guard var entry = entries[key], entry.checkpoint.id == id else { return }
            entry.bytes = bytes
            entries[key] = entry
        }
    }

    func checkpoint(_ thread: ThreadID, _ namespace: String, _ id: CheckpointID) -> Checkpoint? {
        entries.withLock { entries in
            guard let entry = entries[Key(thread: thread, namespace: namespace)], entry.checkpoint.id == id else {
                return nil
            }
            return entry.checkpoint
        }
    }

    /// The known checkpoint whose cache entry is exactly `bytes`, if any.
    func checkpoint(_ thread: ThreadID, _ namespace: String, matching bytes: Data) -> Checkpoint? {
        entries.withLock { entries in
            guard let entry = entries[Key(thread: thread, namespace: namespace)], entry.bytes == bytes else { return nil }
            return entry.checkpoint
        }
    }

    func store(_ thread: ThreadID, _ namespace: String, _ checkpoint: Checkpoint?, entry bytes: Data? = nil) {
        guard capacity > 0 else { return }
        entries.withLock { entries in
            let key = Key(thread: thread, namespace: namespace)
            guard let checkpoint else {
                entries[key] = nil
                return
            }
            if let existing = entries[key], existing.checkpoint.id > checkpoint.id { return }
            if entries.count >= capacity, entries[key] == nil { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(checkpoint: checkpoint, bytes: bytes)
        }
    }

    func remove(_ thread: ThreadID) {
        entries.withLock { entries in entries = entries.filter { $0.key.thread != thread } }
        floors.withLock { floors in floors = floors.filter { $0.key.thread != thread } }
    }
}

struct RedisCacheLayer: CheckpointerCacheLayer {
    var schemes: Set<String> { ["redis"] }

    func wrap(_ base: any Checkpointer, url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer {
        try await RedisCachedCheckpointer(
            base: base, configuration: RedisCachedCheckpointer.Configuration(url: url), logger: logger)
    }
}

import CCheckpointSodium
import Checkpointing
import CheckpointRuntime
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
            metricsFactory: configuration.metricsFactory, idleTimeout: configuration.idleTimeout,
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

    // MARK: Talking to Redis

    private static let get = Data("GET".utf8)

    /// Runs Redis commands unless the breaker is open; `nil` when Redis was skipped or failed
    /// (the failure opens the breaker). Invalidations owed from earlier failures run first.
    private func withRedis<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async -> T? {
        await guarded { owed in
            try await self.pool.run(self.payingFirst(owed, body))
        }
    }

    /// Reads one entry (`command` is a GET or a script that reads) as ``withRedis(_:)`` runs
    /// commands, sending it from the calling thread when a connection is free and reading a
    /// quick reply there too (``Configuration/inlineReplyWait``).
    private func read(_ command: [Data]) async -> (reply: RedisReply, runID: Data)? {
        await guarded { owed in
            let whole = self.payingFirst(owed) { connection in (try Self.check(connection.command(command)), connection.runID) }
            guard owed.threads.isEmpty && !owed.everything else { return try await self.pool.run(whole) }
            return try await self.pool.run(
                replyWait: self.configuration.inlineReplyWait,
                sending: { connection in
                    try connection.send(command)
                    return true
                },
                receiving: { connection in (try Self.check(connection.receive()), connection.runID) },
                otherwise: whole)
        }
    }

    /// `body`, after the owed invalidations when there are any.
    private func payingFirst<T: Sendable>(
        _ owed: PendingInvalidations.Owed, _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) -> @Sendable (RedisConnection) throws -> T {
        guard !owed.threads.isEmpty || owed.everything else { return body }
        let prefix = configuration.prefix
        let ttl = Data(String(configuration.timeToLive.components.seconds).utf8)
        return { [owed] connection in
            try Self.invalidate(owed, prefix: prefix, ttl: ttl, on: connection, threadIndexKey: { self.threadIndexKey($0) })
            return try body(connection)
        }
    }

    /// Runs `call` with what is owed unless the breaker is open, and records its outcome.
    private func guarded<T: Sendable>(_ call: (PendingInvalidations.Owed) async throws -> T) async -> T? {
        guard breaker.allowsCall() else { return nil }
        do {
            let owed = pending.take()
            let result = try await call(owed)
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
    /// put an old head back. Its next read that finds the tombstone puts the store's head in
    /// its place (unless something wrote the entry meanwhile), as does its next put.
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
        // Counted from here to the end of its cache update: reads of the thread go to the base
        // store meanwhile, and `close()` waits for it (a put that starts after is refused).
        guard updating.begin(write.thread) else { throw CheckpointError(.closed, "the Redis cache was closed") }
        var updateScheduled = false
        defer { if !updateScheduled { updating.end(write.thread) } }
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
        // Write-behind, but tracked: `updating` still counts the put until the update ends,
        // and a failure is recorded as an owed invalidation, so no outcome of it is lost or
        // ignored.
        updateScheduled = true
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
    /// - Parameter seen: the entry without content (a tombstone) that a read found before it
    ///   read the base store: when Redis still holds exactly it, the value replaces it even
    ///   though it is older (see ``Scripts/setIfNewer``).
    /// - Returns: the entry written (it carries the answering server's run id), or `nil`.
    @discardableResult
    private func setGuarded(
        _ key: Data, order: Data, body: Data, thread: ThreadID, replacing seen: Data? = nil
    ) async -> Data? {
        let ttl = Data(String(configuration.timeToLive.components.seconds).utf8)
        let index = threadIndexKey(thread)
        let written: Data? = await withRedis { connection in
            let value = self.entries.entry(key: key, order: order, runID: connection.runID, body: body)
            _ = try Self.check(
                connection.command([
                    Data("EVAL".utf8), Data(Scripts.setIfNewer.utf8), Data("2".utf8), key, index, order, value, ttl,
                ] + (seen.map { [$0] } ?? [])))
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
        // An entry without content this read found in Redis (a tombstone): the store's head,
        // read after it, may take its place if nothing wrote the entry meanwhile.
        var seenWithoutContent: Data?
        if !pending.contains(thread) && !isUpdating {
            let command: [Data] =
                configuration.refreshOnRead
                ? [
                    Data("EVAL".utf8), Data(Scripts.getAndRefresh.utf8), Data("2".utf8), entryKey, threadIndexKey(thread),
                    Data(String(configuration.timeToLive.components.seconds).utf8),
                ] : [Self.get, entryKey]
            let answer = await read(command)
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
                    seenWithoutContent = value
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
        } else if isUpdating && !pending.contains(thread) {
            counters.ownUpdateInFlight()
            metrics.ownUpdates.increment()
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
        if let value = await setGuarded(
            entryKey, order: order, body: body, thread: thread, replacing: seenWithoutContent), id == nil
        {
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
        await invalidateDeleted(thread)
    }

    /// After the base store deleted a thread (or some of its namespaces): tombstones for every
    /// entry of the thread, so that none of it is served again.
    private func invalidateDeleted(_ thread: ThreadID) async {
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

    /// Sweeps in the base store, then invalidates what it changed.
    public func sweepIdle(_ batch: IdleSweepBatch) async throws -> IdleSweepReport {
        try throwIfCancelled()
        let report = try await base.sweepIdle(batch)
        for thread in report.threads { await invalidateDeleted(thread) }
        return report
    }

    /// Prunes in the base store, then drops the thread's by-id entries.
    public func prune(thread: ThreadID, namespace: String, by rule: RetentionRule) async throws -> Int {
        try throwIfCancelled()
        let removed = try await base.prune(thread: thread, namespace: namespace, by: rule)
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

    /// The thread listing, from the base store.
    public func threads(_ query: ThreadQuery) async throws -> ThreadPage {
        try throwIfCancelled()
        return try await base.threads(query)
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

    /// Redis (one `PING`, whatever the circuit breaker says, without changing it) and the base
    /// store's own report among ``HealthReport/parts``. `degraded` when Redis does not answer
    /// or the breaker is open: calls then go to the base store, slower but never wrong;
    /// `unavailable` when the base store is.
    public func health() async -> HealthReport {
        let baseReport = await base.health()
        let ping = await HealthReport.probing("redis") {
            _ = try await pool.run(waitingAtMost: HealthReport.poolWait) { connection in
                try Self.check(connection.command([Data("PING".utf8)]))
            }
            return nil
        }
        let breakerOpen = breaker.isOpen
        let status: HealthReport.Status =
            baseReport.status == .unavailable
            ? .unavailable : max(baseReport.status, ping.status == .healthy && !breakerOpen ? .healthy : .degraded)
        return HealthReport(
            component: "redis-cache", status: status, latency: ping.latency,
            details: ["breaker": breakerOpen ? "open" : "closed"],
            problem: ping.problem.map { "Redis: \($0)" } ?? (baseReport.status == .healthy ? nil : "the base store is \(baseReport.status.rawValue)"),
            parts: [baseReport])
    }

    /// Drains, then closes the Redis connections and the base store: puts that start from now
    /// on fail with ``CheckpointError/Code/closed``; the puts under way finish, their cache
    /// updates included, and so do the calls on Redis connections.
    public func close() async throws {
        await updating.close()
        await pool.close()
        try await base.close()
    }
}

struct RedisCacheLayer: CheckpointerCacheLayer {
    var schemes: Set<String> { ["redis"] }

    func wrap(_ base: any Checkpointer, url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer {
        try await RedisCachedCheckpointer(
            base: base, configuration: RedisCachedCheckpointer.Configuration(url: url), logger: logger)
    }
}

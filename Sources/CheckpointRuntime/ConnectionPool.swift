import Checkpointing
import CoreMetrics
import Dispatch
import Foundation
import Logging
import Synchronization

/// A connection a ``ConnectionPool`` holds: used by one thread at a time.
package protocol PooledConnection: AnyObject, SendableMetatype {
    /// Whether an idle connection can take the next call (open, and not closed by the server).
    var isHealthy: Bool { get }
    /// Closes the connection. Safe to call twice.
    func close()
}

/// A bounded pool of connections to a server (PostgreSQL, Redis), each owned by a thread of
/// its own.
///
/// The drivers' calls block; they run only on the pool's threads, never on Swift's shared
/// cooperative threads (there are as many of those as cores, so one blocked call would stall
/// every task). A call takes an idle worker (the most recently used first, whose thread is
/// likely still awake), or waits for one up to the acquire timeout.
///
/// A worker checks its connection before each job: a connection the server closed (a restart,
/// an administrator's kill) is dropped and a new one opened, so the pool recovers by itself
/// after the server comes back. While the server is down, a job fails at once with
/// ``CheckpointError/Code/connectionFailed``.
package final class ConnectionPool<Connection: PooledConnection>: Sendable {
    /// How a driver's error becomes a ``CheckpointError``, and whether it broke the connection.
    package typealias Classify = @Sendable (any Error) -> (error: any Error, connectionLost: Bool)
    /// One thread and its connection.
    final class Worker: @unchecked Sendable {
        // Safe: `connection` is only touched by whoever holds the worker (taken from `idle`
        // under the pool's lock, given back the same way): a job on `thread`, or a caller
        // running a call inline (``ConnectionPool/run(replyWait:sending:receiving:otherwise:)``).
        let thread: JobThread
        var connection: Connection?
        /// When the worker last finished a call (set by its owner of the moment).
        var lastUsed = ContinuousClock.now
        let index: Int

        init(index: Int, label: String, idleSpin: Duration) {
            self.index = index
            self.thread = JobThread(name: "\(label).\(index)", idleSpin: idleSpin)
        }

        deinit {
            thread.stop()
        }
    }

    private struct Waiter {
        var id: UInt64
        var since: ContinuousClock.Instant
        var job: @Sendable (Worker) -> Void
        var fail: @Sendable (any Error) -> Void
    }

    private enum Decision { case run(Worker), wait(UInt64), closed }

    private struct State {
        var idle: [Int]
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var isClosed = false
        /// ``ConnectionPool/close()`` calls waiting for every worker to be idle.
        var closers: [UnsafeContinuation<Void, Never>] = []

        /// What the pool's gauges show, in a pool of `size` workers.
        func counts(_ size: Int) -> Counts { Counts(inUse: size - idle.count, waiting: waiters.count) }
    }

    let workers: [Worker]
    private let state: Mutex<State>
    private let connect: @Sendable () throws -> Connection
    private let classify: Classify
    private let acquireTimeout: Duration
    /// How long a connection may sit unused before it is closed and a new one opened for the
    /// next call; `nil` for no limit.
    private let idleTimeout: Duration?
    private let serverName: String
    private let logger: Logger
    /// How long the server's recent replies took, measured by calls whose reply may be
    /// received on the caller's thread.
    package let replyTimes = ReplyTimes()
    private let metrics: PoolMetrics
    /// Connections open now.
    private let openConnections = Atomic<Int>(0)
    /// Set with the state's `isClosed`, for the calls of code on a worker's thread, which take
    /// no lock.
    private let isClosed = Atomic<Bool>(false)

    /// - Parameters:
    ///   - size: the most connections open at once.
    ///   - serverName: how messages name the server (`PostgreSQL`, `Redis`).
    ///   - connect: opens and sets up a connection; it runs on a worker's thread.
    ///   - classify: maps the driver's errors (from `connect` and from calls).
    ///   - metricsFactory: where the pool's metrics go (see ``PoolMetrics``); `nil` for the
    ///     process-wide `MetricsSystem`.
    ///   - idleTimeout: how long a connection may sit unused before the next call replaces it
    ///     (below a pooler's, a proxy's or a firewall's own idle limit, a connection they would
    ///     drop is replaced before it is used); `nil` for none.
    package init(
        size: Int, label: String, serverName: String, idleSpin: Duration, acquireTimeout: Duration, logger: Logger,
        metricsFactory: (any MetricsFactory)? = nil, idleTimeout: Duration? = nil,
        connect: @escaping @Sendable () throws -> Connection, classify: @escaping Classify
    ) {
        metrics = PoolMetrics(pool: label, factory: metricsFactory)
        metrics.inUse.record(0)
        metrics.waiting.record(0)
        metrics.open.record(0)
        workers = (0..<size).map { Worker(index: $0, label: label, idleSpin: idleSpin) }
        state = Mutex(State(idle: Array((0..<size).reversed())))
        self.connect = connect
        self.classify = classify
        self.acquireTimeout = acquireTimeout
        self.idleTimeout = idleTimeout
        self.serverName = serverName
        self.logger = logger
    }

    /// Opens connections on the first `count` workers now, so that configuration mistakes
    /// (a wrong password, an unknown database) surface when the checkpointer opens.
    package func warm(_ count: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in workers.prefix(count) {
                group.addTask { _ = try await self.run(on: worker) { _ in } }
            }
            try await group.waitForAll()
        }
    }

    /// A worker's thread, as an executor: code that prefers it runs its calls inline on that
    /// worker's connection.
    package func executor(_ index: Int) -> any TaskExecutor { workers[index % workers.count].thread }

    /// The worker whose thread runs the caller, if any.
    private var currentWorker: Worker? {
        workers.first { $0.thread.isCurrent }
    }

    /// Runs `body` with a healthy connection on a worker's thread.
    ///
    /// A task cancelled before its work started gets ``CheckpointError/Code/cancelled`` and
    /// nothing runs; work that started runs to its end and reports its own outcome.
    package func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await run(waitingAtMost: nil, body)
    }

    /// Runs `body` as ``run(_:)`` does, but waits at most `limit` for a free connection (not
    /// the acquire timeout), then throws ``PoolSaturated``: for a health probe, which must
    /// answer a load balancer quickly and tell a busy pool from a broken server.
    package func run<T: Sendable>(
        waitingAtMost limit: Duration?, _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        try throwIfCancelled()
        if let worker = currentWorker {
            // Code running on a worker's thread (a task preferring its executor) calls inline.
            if isClosed.load(ordering: .acquiring) { throw CheckpointError(.closed, "the \(serverName) connection pool was closed") }
            return try execute(body, on: worker)
        }
        let cancelled = Atomic<Bool>(false)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                let resumed = Atomic<Bool>(false)
                let job: @Sendable (Worker) -> Void = { worker in
                    guard !resumed.exchange(true, ordering: .acquiringAndReleasing) else { return }
                    if cancelled.load(ordering: .acquiring) {
                        continuation.resume(throwing: CheckpointError.cancellation)
                        return
                    }
                    continuation.resume(with: Result { try self.execute(body, on: worker) })
                }
                let fail: @Sendable (any Error) -> Void = { error in
                    guard !resumed.exchange(true, ordering: .acquiringAndReleasing) else { return }
                    continuation.resume(throwing: error)
                }
                dispatch(job: job, fail: fail, waitingAtMost: limit)
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
    }

    /// Runs `body` on one particular worker (for warming, and for work that must use one
    /// connection), waiting for it if it is busy.
    private func run(on worker: Worker, _ body: @escaping @Sendable (Connection) throws -> Void) async throws {
        try await worker.thread.performRegardlessOfCancellation { () -> Result<Void, any Error> in
            Result { try self.execute(body, on: worker) }
        }.get()
    }

    private func dispatch(
        job: @escaping @Sendable (Worker) -> Void, fail: @escaping @Sendable (any Error) -> Void,
        waitingAtMost limit: Duration? = nil
    ) {
        let (decision, counts): (Decision, Counts) = state.withLock { state in
            if state.isClosed { return (.closed, state.counts(workers.count)) }
            if let index = state.idle.popLast() { return (.run(workers[index]), state.counts(workers.count)) }
            let id = state.nextWaiterID
            state.nextWaiterID += 1
            state.waiters.append(Waiter(id: id, since: .now, job: job, fail: fail))
            return (.wait(id), state.counts(workers.count))
        }
        metrics.record(counts)
        switch decision {
        case .run(let worker):
            metrics.acquireWait.recordNanoseconds(0)
            worker.thread.submit { self.drain(worker, first: job) }
        case .wait(let id):
            let timeout = limit.map { min($0, acquireTimeout) } ?? acquireTimeout
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds))) {
                let (expired, counts) = self.state.withLock { state -> (Waiter?, Counts) in
                    guard let position = state.waiters.firstIndex(where: { $0.id == id }) else {
                        return (nil, state.counts(self.workers.count))
                    }
                    return (state.waiters.remove(at: position), state.counts(self.workers.count))
                }
                self.metrics.record(counts)
                if limit != nil {
                    expired?.fail(PoolSaturated(serverName: self.serverName, size: self.workers.count, waited: timeout))
                    return
                }
                expired?.fail(
                    CheckpointError(
                        .connectionFailed,
                        "no \(self.serverName) connection became free within the acquire timeout (\(timeout)); raise pool_max or acquire_timeout_ms"
                    ))
            }
        case .closed:
            fail(CheckpointError(.closed, "the \(serverName) connection pool was closed"))
        }
    }

    /// Runs a job, then the jobs that waited for a worker, then gives the worker back.
    private func drain(_ worker: Worker, first: @Sendable (Worker) -> Void) {
        first(worker)
        drainWaiters(worker)
    }

    /// On the worker's thread: runs the jobs that waited for a worker, then gives it back.
    private func drainWaiters(_ worker: Worker) {
        while true {
            guard let next = handOver(worker) else { return }
            next.job(worker)
        }
    }

    /// The first waiting job, which the worker runs next, or `nil` after the worker went back
    /// to the idle ones.
    private func handOver(_ worker: Worker) -> Waiter? {
        worker.lastUsed = .now
        let (next, counts, closers): (Waiter?, Counts, [UnsafeContinuation<Void, Never>]) = state.withLock { state in
            if state.waiters.isEmpty {
                state.idle.append(worker.index)
                var closers: [UnsafeContinuation<Void, Never>] = []
                if state.isClosed, state.idle.count == workers.count { swap(&closers, &state.closers) }
                return (nil, state.counts(workers.count), closers)
            }
            return (state.waiters.removeFirst(), state.counts(workers.count), [])
        }
        metrics.record(counts)
        for closer in closers { closer.resume() }
        if let next { metrics.acquireWait.recordNanoseconds((ContinuousClock.now - next.since).nanoseconds) }
        return next
    }

    /// An idle worker, taken (no job will get it until it is given back), if there is one.
    private func takeIdleWorker() -> Worker? {
        let (worker, counts) = state.withLock { state in
            (state.isClosed ? nil : state.idle.popLast().map { workers[$0] }, state.counts(workers.count))
        }
        if worker != nil {
            metrics.record(counts)
            metrics.acquireWait.recordNanoseconds(0)
        }
        return worker
    }

    /// Gives back a worker taken by a caller: to the first waiting job (on the worker's
    /// thread), or to the idle ones.
    private func giveBack(_ worker: Worker) {
        if let next = handOver(worker) { worker.thread.submit { self.drain(worker, first: next.job) } }
    }

    /// Runs `body` on a taken worker's thread, whether or not the task is cancelled (it
    /// finishes a call under way), then gives the worker back there.
    private func finish<T: Sendable>(on worker: Worker, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            worker.thread.submit {
                continuation.resume(with: Result { try body() })
                self.drainWaiters(worker)
            }
        }
    }

    /// Drops the connection when `error` broke it; the error as callers see it.
    private func failed(_ error: any Error, _ connection: Connection, on worker: Worker) -> any Error {
        let classified = classify(error)
        if classified.connectionLost {
            drop(worker)
            metrics.replaced.increment()  // a new one opens for the next call
        }
        return classified.error
    }

    /// Closes and forgets the worker's connection, if it has one.
    private func drop(_ worker: Worker) {
        guard let connection = worker.connection else { return }
        connection.close()
        worker.connection = nil
        metrics.open.record(openConnections.subtract(1, ordering: .relaxed).newValue)
    }

    /// Runs `body` with the worker's connection, opening one when it has none or the one it
    /// has was closed by the server; a connection that broke during `body` is dropped.
    private func execute<T>(_ body: (Connection) throws -> T, on worker: Worker) throws -> T {
        let connection: Connection
        if let existing = usableConnection(of: worker) {
            connection = existing
        } else {
            if worker.connection != nil {
                if isPastIdleTimeout(worker) {
                    logger.debug(
                        "replacing a \(serverName) connection unused for longer than the idle timeout",
                        metadata: ["worker": "\(worker.index)"])
                } else {
                    logger.info(
                        "replacing a \(serverName) connection the server closed", metadata: ["worker": "\(worker.index)"])
                }
                metrics.replaced.increment()
            }
            drop(worker)
            do {
                connection = try connect()
            } catch {
                throw classify(error).error
            }
            worker.connection = connection
            metrics.open.record(openConnections.add(1, ordering: .relaxed).newValue)
        }
        do {
            return try body(connection)
        } catch {
            throw failed(error, connection, on: worker)
        }
    }

    /// The worker's connection when it can take a call: open, not closed by the server, and
    /// not unused past the idle timeout.
    fileprivate func usableConnection(of worker: Worker) -> Connection? {
        guard let connection = worker.connection, !isPastIdleTimeout(worker), connection.isHealthy else { return nil }
        return connection
    }

    private func isPastIdleTimeout(_ worker: Worker) -> Bool {
        guard let idleTimeout else { return false }
        return ContinuousClock.now - worker.lastUsed > idleTimeout
    }

    /// Drains the pool, then closes every connection: calls that start from now on fail with
    /// ``CheckpointError/Code/closed``; calls under way finish first, those running on a
    /// connection and those waiting for one alike (the latter still within the acquire
    /// timeout). Returns when every connection is closed.
    package func close() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let drained = state.withLock { state in
                state.isClosed = true
                isClosed.store(true, ordering: .releasing)
                guard state.idle.count < workers.count else { return true }
                state.closers.append(continuation)
                return false
            }
            if drained { continuation.resume() }
        }
        // Every worker is idle and none can be taken any more: a job on a worker's thread
        // (code preferring its executor) may still run, so each connection closes there.
        for worker in workers {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                worker.thread.submit {
                    self.drop(worker)
                    continuation.resume()
                }
            }
        }
    }
}

/// How many workers are in use and how many calls wait, taken under the pool's lock.
private struct Counts {
    var inUse: Int
    var waiting: Int
}

/// A pool's metrics, with the dimension `pool` (`checkpointing.postgres`,
/// `checkpointing.redis`): `checkpoint_pool_connections` (open now),
/// `checkpoint_pool_in_use` (connections running a call), `checkpoint_pool_waiting` (calls
/// waiting for a connection), `checkpoint_pool_acquire_wait` (a timer: how long each call
/// waited for its connection, zero when one was free) and
/// `checkpoint_pool_connections_replaced` (connections lost during a call or found closed by
/// the server before one: each is replaced by a new one for the next call).
package struct PoolMetrics: Sendable {
    let open: Gauge
    let inUse: Gauge
    let waiting: Gauge
    let acquireWait: CoreMetrics.Timer
    let replaced: Counter

    init(pool: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        let dimensions = [("pool", pool)]
        open = Gauge(label: "checkpoint_pool_connections", dimensions: dimensions, factory: factory)
        inUse = Gauge(label: "checkpoint_pool_in_use", dimensions: dimensions, factory: factory)
        waiting = Gauge(label: "checkpoint_pool_waiting", dimensions: dimensions, factory: factory)
        acquireWait = CoreMetrics.Timer(label: "checkpoint_pool_acquire_wait", dimensions: dimensions, factory: factory)
        replaced = Counter(label: "checkpoint_pool_connections_replaced", dimensions: dimensions, factory: factory)
    }

    fileprivate func record(_ counts: Counts) {
        inUse.record(counts.inUse)
        waiting.record(counts.waiting)
    }
}

extension ConnectionPool where Connection: RequestReplyConnection {
    /// Runs a call of one request with as few thread hand-offs as a free connection allows.
    ///
    /// When a worker is idle and its connection open and healthy, `send` runs on the caller's
    /// thread: it writes one request without waiting for the server, or returns `false` to
    /// leave the call to a worker's thread. The caller then waits for the reply up to
    /// `replyWait`, as long as the server's recent replies came within it (``replyTimes``); a
    /// reply that came is received by `receive` on the caller's thread too, so the call costs
    /// what the raw driver's does. A later reply is received on the worker's thread with the
    /// task suspended: a slow server or network holds a shared thread for `replyWait` at most.
    /// `receive` returns `nil` when the call needs more than the reply (another round trip);
    /// `whole` then runs on the worker's thread. When no worker is idle, when its connection
    /// must be opened first, or when `send` declines, `whole` runs as ``run(_:)`` runs it.
    ///
    /// A `replyWait` of zero runs every call as ``run(_:)`` does. A task cancelled before the
    /// call started gets ``CheckpointError/Code/cancelled``; once the request is sent its reply
    /// is received, whatever happens to the task.
    package func run<T: Sendable>(
        replyWait: Duration,
        sending send: (Connection) throws -> Bool,
        receiving receive: @escaping @Sendable (Connection) throws -> T?,
        otherwise whole: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        try throwIfCancelled()
        guard replyWait > .zero, workers.allSatisfy({ !$0.thread.isCurrent }), let worker = takeIdleWorker() else {
            return try await run(whole)
        }
        guard let connection = usableConnection(of: worker) else {
            return try await finish(on: worker) { try self.execute(whole, on: worker) }
        }
        let started = ContinuousClock.now
        let arrived: Bool
        do {
            guard try send(connection) else {
                return try await finish(on: worker) { try self.execute(whole, on: worker) }
            }
            arrived = try connection.replyArrives(within: replyTimes.waitingPays ? replyWait : .zero)
        } catch {
            let failure = failed(error, connection, on: worker)
            giveBack(worker)
            throw failure
        }
        if arrived {
            replyTimes.record(late: false)
            let received: T?
            do {
                received = try receive(connection)
            } catch {
                let failure = failed(error, connection, on: worker)
                giveBack(worker)
                throw failure
            }
            guard let received else { return try await finish(on: worker) { try self.execute(whole, on: worker) } }
            giveBack(worker)
            await InlineCallYield.afterCall()
            return received
        }
        let times = replyTimes
        return try await finish(on: worker) {
            guard let connection = worker.connection else { return try self.execute(whole, on: worker) }
            let received: T?
            do {
                received = try receive(connection)
                times.record(late: ContinuousClock.now - started > replyWait)
            } catch {
                throw self.failed(error, connection, on: worker)
            }
            return try received ?? self.execute(whole, on: worker)
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    package var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// A health probe found no free connection within its short wait: every connection of the
/// pool is running calls (a load to watch, not a broken server).
package struct PoolSaturated: HealthDegradingError, CustomStringConvertible {
    package var serverName: String
    package var size: Int
    package var waited: Duration

    package var description: String {
        "every one of the \(size) \(serverName) connections stayed busy for \(waited): calls wait for a connection"
    }
}

extension HealthReport {
    /// The longest a health probe waits for a free pooled connection.
    package static let poolWait: Duration = .seconds(1)
}

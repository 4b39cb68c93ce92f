import Checkpointing
import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle

/// Retention by idleness as a long-running service: sweeps the store under a policy every
/// `interval`, for a `ServiceGroup` of swift-service-lifecycle.
///
/// ```swift
/// let sweeper = IdleSweepService(
///     checkpointer: checkpointer, policy: IdleThreadPolicy(idleFor: .seconds(30 * 86_400)), every: .seconds(600))
/// let group = ServiceGroup(services: [CheckpointerService(checkpointer), sweeper], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Every app instance may run one: the sweep's batches re-check idleness in the store and
/// skip what another sweeper holds. A failed sweep (the store unreachable) is logged and
/// counted (`checkpoint_sweep_failures`), and the next interval tries again; the service
/// itself ends only at graceful shutdown (after the batch under way) or cancellation.
///
/// Metrics (dimension `backend` as given): `checkpoint_sweep_namespaces` (counter, dimension
/// `action`: `deleted` or `pruned`), `checkpoint_sweep_checkpoints_removed`,
/// `checkpoint_sweep_bytes_removed` (counters), `checkpoint_sweep_duration` (timer, one per
/// sweep), `checkpoint_sweep_failures` (counter).
public struct IdleSweepService<C: Clock>: Service where C.Duration == Duration {
    private let checkpointer: any Checkpointer
    private let policy: IdleThreadPolicy
    private let interval: Duration
    private let batchSize: Int
    private let logger: Logger
    private let clock: C
    private let now: @Sendable () -> Date
    private let metrics: SweepMetrics

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - interval: the time from the end of one sweep to the start of the next; the first
    ///     sweep starts at once.
    ///   - backend: the `backend` dimension of its metrics.
    ///   - clock: what the service waits on between sweeps (tests pass their own).
    ///   - now: the time idleness is judged at (tests pass their own).
    public init(
        checkpointer: any Checkpointer, policy: IdleThreadPolicy, every interval: Duration, batchSize: Int = 100,
        backend: String = "checkpointer", logger: Logger = Logger(label: "checkpointing.sweep"),
        metricsFactory: (any MetricsFactory)? = nil, clock: C, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.checkpointer = checkpointer
        self.policy = policy
        self.interval = interval
        self.batchSize = batchSize
        self.logger = logger
        self.clock = clock
        self.now = now
        metrics = SweepMetrics(backend: backend, factory: metricsFactory ?? MetricsSystem.factory)
    }

    /// Sweeps, waits `interval`, and again, until graceful shutdown or cancellation.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            _ = await sweepOnce()
            do {
                try await cancelWhenGracefulShutdown { try await clock.sleep(for: interval) }
            } catch {
                return  // shutdown or cancellation while waiting
            }
        }
    }

    /// One sweep, logged and counted; it stops after the batch under way when graceful
    /// shutdown begins. Returns what it removed, or the error that stopped it.
    @discardableResult
    public func sweepOnce() async -> Result<IdleSweepReport, any Error> {
        let start = ContinuousClock.now
        do {
            let report = try await checkpointer.sweep(policy, now: now(), batchSize: batchSize) { _ in
                !Task.isShuttingDownGracefully && !Task.isCancelled
            }
            metrics.record(report, duration: ContinuousClock.now - start)
            logger.info(
                "swept idle threads",
                metadata: [
                    "deleted": "\(report.deletedCount)", "pruned": "\(report.prunedCount)",
                    "checkpoints": "\(report.checkpointsRemoved)", "bytes": "\(report.bytesRemoved)",
                ])
            return .success(report)
        } catch {
            metrics.failures.increment()
            logger.error("the idle sweep failed; the next interval tries again", metadata: ["error": "\(error)"])
            return .failure(error)
        }
    }
}

extension IdleSweepService where C == ContinuousClock {
    /// Creates the service on the continuous clock.
    public init(
        checkpointer: any Checkpointer, policy: IdleThreadPolicy, every interval: Duration, batchSize: Int = 100,
        backend: String = "checkpointer", logger: Logger = Logger(label: "checkpointing.sweep"),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.init(
            checkpointer: checkpointer, policy: policy, every: interval, batchSize: batchSize, backend: backend,
            logger: logger, metricsFactory: metricsFactory, clock: ContinuousClock())
    }
}

struct SweepMetrics: Sendable {
    let deleted: Counter
    let pruned: Counter
    let checkpoints: Counter
    let bytes: Counter
    let failures: Counter
    let duration: CoreMetrics.Timer

    init(backend: String, factory: any MetricsFactory) {
        let dimensions = [("backend", backend)]
        deleted = Counter(label: "checkpoint_sweep_namespaces", dimensions: dimensions + [("action", "deleted")], factory: factory)
        pruned = Counter(label: "checkpoint_sweep_namespaces", dimensions: dimensions + [("action", "pruned")], factory: factory)
        checkpoints = Counter(label: "checkpoint_sweep_checkpoints_removed", dimensions: dimensions, factory: factory)
        bytes = Counter(label: "checkpoint_sweep_bytes_removed", dimensions: dimensions, factory: factory)
        failures = Counter(label: "checkpoint_sweep_failures", dimensions: dimensions, factory: factory)
        duration = CoreMetrics.Timer(label: "checkpoint_sweep_duration", dimensions: dimensions, factory: factory)
    }

    func record(_ report: IdleSweepReport, duration elapsed: Duration) {
        deleted.increment(by: Int64(report.deletedCount))
        pruned.increment(by: Int64(report.prunedCount))
        checkpoints.increment(by: Int64(report.checkpointsRemoved))
        bytes.increment(by: Int64(report.bytesRemoved))
        duration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}

/// A checkpointer as a service: it runs until graceful shutdown, then closes the checkpointer,
/// which drains: calls that start from then on fail with `closed`, the calls under way finish
/// (on Postgres and Redis, those waiting for a pooled connection too; a Redis cache's puts with
/// their cache updates), then the connections close. Put it before the services that use the
/// checkpointer in a `ServiceGroup`: a group shuts its services down in reverse order, so it
/// closes the checkpointer after them.
public struct CheckpointerService: Service {
    /// The checkpointer it closes.
    public let checkpointer: any Checkpointer

    /// Creates the service.
    public init(_ checkpointer: any Checkpointer) { self.checkpointer = checkpointer }

    /// Waits for graceful shutdown (or cancellation), then closes the checkpointer.
    public func run() async throws {
        try? await gracefulShutdown()
        try await checkpointer.close()
    }
}

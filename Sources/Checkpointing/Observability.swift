import CoreMetrics
import Foundation

/// The metrics every backend records, created once per checkpointer.
///
/// - `checkpoint_put_duration` (timer): time of one successful put, dimension `backend`.
/// - `checkpoint_put_bytes` (recorder): new payload bytes one put stored, dimension `backend`.
/// - `checkpoint_put_conflicts` (counter): puts refused with `conflict`.
///
/// No label or dimension ever holds a thread id, state or key.
package struct CheckpointMetrics: Sendable {
    private let putDuration: CoreMetrics.Timer
    private let putBytes: Recorder
    private let conflicts: Counter

    /// - Parameter factory: where the metrics go; `nil` for the process-wide `MetricsSystem`.
    package init(backend: String, factory: (any MetricsFactory)? = nil) {
        let dimensions = [("backend", backend)]
        let factory = factory ?? MetricsSystem.factory
        putDuration = CoreMetrics.Timer(label: "checkpoint_put_duration", dimensions: dimensions, factory: factory)
        putBytes = Recorder(label: "checkpoint_put_bytes", dimensions: dimensions, aggregate: true, factory: factory)
        conflicts = Counter(label: "checkpoint_put_conflicts", dimensions: dimensions, factory: factory)
    }

    /// Records one put that ran from `start` until now.
    package func recordPut(since start: ContinuousClock.Instant, payloadBytes: Int) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        putDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        putBytes.record(payloadBytes)
    }

    /// Records a put refused with `conflict`.
    package func recordConflict() { conflicts.increment() }
}

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

    package init(backend: String) {
        let dimensions = [("backend", backend)]
        putDuration = CoreMetrics.Timer(label: "checkpoint_put_duration", dimensions: dimensions)
        putBytes = Recorder(label: "checkpoint_put_bytes", dimensions: dimensions)
        conflicts = Counter(label: "checkpoint_put_conflicts", dimensions: dimensions)
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

import Checkpointing

/// Waits until `condition` holds, asking again after a `Task.yield()` and a 2 ms pause, for at
/// most `limit`: a test waits for what it needs to have happened, not for a fixed time.
///
/// - Throws: ``CheckpointError/Code/backendFailure`` naming `what` when the time is up; an
///   error `condition` throws.
public func waitUntil(
    _ what: String, within limit: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            throw CheckpointError(.backendFailure, "timed out waiting until \(what)")
        }
        await Task.yield()
        try await Task.sleep(for: .milliseconds(2))  // the polling interval of a condition wait
    }
}

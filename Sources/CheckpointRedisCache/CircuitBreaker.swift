import Synchronization

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

    /// Whether calls skip Redis now (a failure happened and no call has succeeded since).
    var isOpen: Bool { openUntil.withLock { $0 != nil } }

    func recordSuccess() { openUntil.withLock { $0 = nil } }

    func recordFailure() { openUntil.withLock { $0 = ContinuousClock.now + cooldown } }
}

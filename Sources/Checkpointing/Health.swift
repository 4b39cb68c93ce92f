import Foundation

/// What a health check of a checkpointer found: whether its store answers, how fast, and at
/// which schema, with one report per part for a layered stack (a cache and the store under it).
///
/// Cheap enough for a load balancer's probe every second: one round trip to each store.
public struct HealthReport: Sendable, Hashable, CustomStringConvertible {
    /// How usable the checkpointer is.
    public enum Status: String, Sendable, Hashable, Comparable {
        /// Everything answers.
        case healthy
        /// Calls succeed, but a part is down and bypassed (a Redis cache in fall-through mode):
        /// slower, never wrong.
        case degraded
        /// Calls fail: the store does not answer, or the checkpointer is closed.
        case unavailable

        private var rank: Int { self == .healthy ? 0 : self == .degraded ? 1 : 2 }
        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
    }

    /// What was checked: `sqlite`, `postgres`, `redis-cache`, `memory`, or a backend's own name.
    public var component: String
    /// The outcome.
    public var status: Status
    /// One round trip to the store, when it answered.
    public var latency: Duration?
    /// The newest schema migration the store records, for stores that migrate.
    public var schema: String?
    /// Other facts worth a dashboard (a cache's circuit breaker: `breaker` = `closed`/`open`).
    public var details: [String: String]
    /// Why the status is not `healthy`: the error, never state or credentials.
    public var problem: String?
    /// The reports of the parts under a layer (a cache's base store).
    public var parts: [HealthReport]

    /// Creates a report.
    public init(
        component: String, status: Status, latency: Duration? = nil, schema: String? = nil,
        details: [String: String] = [:], problem: String? = nil, parts: [HealthReport] = []
    ) {
        self.component = component
        self.status = status
        self.latency = latency
        self.schema = schema
        self.details = details
        self.problem = problem
        self.parts = parts
    }

    /// Times `probe` (one round trip that returns the schema level, or `nil`): `healthy` with
    /// its latency when it returns, `unavailable` with the error when it throws (`degraded`
    /// when the error says the store answers but its calls wait, as a saturated pool's does).
    public static func probing(
        _ component: String, isolation: isolated (any Actor)? = #isolation, _ probe: () async throws -> String?
    ) async -> HealthReport {
        let started = ContinuousClock.now
        do {
            let schema = try await probe()
            return HealthReport(component: component, status: .healthy, latency: ContinuousClock.now - started, schema: schema)
        } catch let error as any HealthDegradingError {
            return HealthReport(component: component, status: .degraded, problem: "\(error)")
        } catch {
            return HealthReport(component: component, status: .unavailable, problem: "\(error)")
        }
    }

    /// One line per part, indented: `postgres: healthy, 0.31 ms, schema 2026-12-02-row-checksums`.
    public var description: String {
        var line = "\(component): \(status.rawValue)"
        if let latency {
            let milliseconds = Double(latency.components.attoseconds) / 1e15 + Double(latency.components.seconds) * 1000
            line += String(format: ", %.2f ms", milliseconds)
        }
        if let schema { line += ", schema \(schema)" }
        for (key, value) in details.sorted(by: { $0.key < $1.key }) { line += ", \(key) \(value)" }
        if let problem { line += " (\(problem))" }
        return ([line] + parts.map { "  " + $0.description.replacingOccurrences(of: "\n", with: "\n  ") })
            .joined(separator: "\n")
    }
}

/// The thread a default health probe reads (it never exists: the read is one round trip).
private let healthProbeThread: ThreadID = {
    guard let id = try? ThreadID("checkpointing-health:probe") else { preconditionFailure("a valid literal thread id") }
    return id
}()

extension Checkpointer {
    /// Checks the store with one head read of a thread that does not exist: `healthy` with its
    /// latency, or `unavailable` with the error (a closed checkpointer, a store that does not
    /// answer). Never throws. Backends and wrappers override it to report more (the schema, a
    /// cache's breaker).
    public func health() async -> HealthReport {
        await HealthReport.probing("\(type(of: self))") {
            _ = try await checkpoint(thread: healthProbeThread, namespace: "", id: nil)
            return nil
        }
    }
}

/// An error of a health probe that means `degraded`, not `unavailable`: the store answers, but
/// its calls wait (every pooled connection is busy).
package protocol HealthDegradingError: Error {}

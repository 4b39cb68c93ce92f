/// Whether reads must see every write that finished before them.
///
/// A store with read replicas (PostgreSQL's `replicas=`) answers the calls that may read
/// slightly old data (history, the thread listing, the inbox, statistics) from a replica,
/// which may be a moment behind the primary. Code that must miss nothing runs inside
/// ``readingLatest(isolation:_:)``: every call it makes then reads what the primary holds.
/// ``Checkpointer/export(thread:namespace:line:)``, ``Checkpointer/copy(to:tenant:progress:)``
/// and ``Checkpointer/deleteTenant(_:batchSize:)`` do so by themselves.
///
/// A backend with replicas of its own reads ``latestRequired`` before it sends a call to one.
public enum ReadConsistency {
    /// `true` inside ``readingLatest(isolation:_:)`` (and in the tasks it starts).
    @TaskLocal public static var latestRequired = false

    /// Runs `body` with ``latestRequired`` set: none of its reads comes from a replica.
    public static func readingLatest<T>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
    ) async rethrows -> T {
        try await $latestRequired.withValue(true, operation: body, isolation: isolation)
    }
}

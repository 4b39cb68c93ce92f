import Foundation

/// One thread's namespace as ``Checkpointer/threads(_:)`` lists it: its head, its last
/// activity, how many checkpoints its history holds, and the pause it waits on, if any.
///
/// A thread with several namespaces is listed once per namespace: each has its own head,
/// history and pause, as in the inbox.
public struct ThreadSummary: Sendable, Hashable {
    /// The thread.
    public var thread: ThreadID
    /// Its namespace.
    public var namespace: String
    /// The namespace's head (the checkpoint appended last).
    public var headID: CheckpointID
    /// The latest of its checkpoints' creation times (``CheckpointSummary/createdAt``) and its
    /// answers' times, to the microsecond: what "idle since" means for retention.
    public var lastActivity: Date
    /// How many checkpoints its history holds (pruned ones are not counted).
    public var checkpointCount: Int
    /// The head's pause while it has no answer (the thread is in the inbox); `nil` otherwise.
    public var waitingPause: Pause?

    /// Creates a summary.
    public init(
        thread: ThreadID, namespace: String, headID: CheckpointID, lastActivity: Date, checkpointCount: Int,
        waitingPause: Pause? = nil
    ) {
        self.thread = thread
        self.namespace = namespace
        self.headID = headID
        self.lastActivity = lastActivity
        self.checkpointCount = checkpointCount
        self.waitingPause = waitingPause
    }

    /// The listing order's key: activity (whole microseconds), then thread and namespace by
    /// their UTF-8 bytes, as the stores order them.
    package var listingOrder: (Int64, BytewiseString, BytewiseString) {
        (ActivityTime.microseconds(lastActivity), BytewiseString(thread.rawValue), BytewiseString(namespace))
    }
}

/// Which threads to list, in which order, from where.
///
/// ```swift
/// // Threads of tenant "acme" idle for a week, oldest activity first.
/// var query = ThreadQuery(tenant: "acme", order: .oldestActivityFirst)
/// query.activeBefore = Date().addingTimeInterval(-7 * 86_400)
/// var page = try await checkpointer.threads(query)
/// while true {
///     for item in page.items { print(item.thread, item.lastActivity) }
///     guard let next = page.next else { break }
///     query.after = next
///     page = try await checkpointer.threads(query)
/// }
/// ```
public struct ThreadQuery: Sendable, Hashable {
    /// The order of a listing.
    public enum Order: String, Sendable, Hashable, CaseIterable {
        /// Most recently active first (the default).
        case newestActivityFirst
        /// Least recently active first: what retention sweeps.
        case oldestActivityFirst
    }

    /// Only threads with this tenant (the thread id's part before `:`, the same UTF-8 bytes);
    /// `nil` for all.
    public var tenant: String?
    /// Only this namespace (the same UTF-8 bytes); `nil` for all.
    public var namespace: String?
    /// Only threads whose last activity is before this time (idle since then); `nil` for no bound.
    public var activeBefore: Date?
    /// Only threads whose last activity is at or after this time; `nil` for no bound.
    public var activeSince: Date?
    /// `true` for only the threads whose head waits for an answer, `false` for only the others,
    /// `nil` for both.
    public var paused: Bool?
    /// The order; by activity, then thread and namespace by their UTF-8 bytes.
    public var order: Order
    /// Continue after this cursor (the ``ThreadPage/next`` of the previous page); `nil` for
    /// the first page. A thread that becomes active while a listing is paged moves in the
    /// order: newest first, it is not seen again; oldest first, it shows again at the end.
    public var after: ThreadCursor?
    /// The most items in one page (at least 1). Default: 100.
    public var limit: Int
    /// Whether the listing must show every write that finished before it. A backend with read
    /// replicas (PostgreSQL's `replicas`) lists from one unless this is `true`, so a listing
    /// may be a moment behind; ``Checkpointer/deleteTenant(_:batchSize:)`` sets it, so that
    /// an erasure misses no thread. Default: `false`.
    public var readsLatest: Bool

    /// Creates a query.
    public init(
        tenant: String? = nil, namespace: String? = nil, activeBefore: Date? = nil, activeSince: Date? = nil,
        paused: Bool? = nil, order: Order = .newestActivityFirst, after: ThreadCursor? = nil, limit: Int = 100,
        readsLatest: Bool = false
    ) {
        self.readsLatest = readsLatest
        self.tenant = tenant
        self.namespace = namespace
        self.activeBefore = activeBefore
        self.activeSince = activeSince
        self.paused = paused
        self.order = order
        self.after = after
        self.limit = limit
    }
}

/// Where a page of a thread listing ended; pass it as ``ThreadQuery/after`` to continue.
///
/// It is `Codable` (and has a ``token`` form) so that a web page or a command line can carry
/// it between requests.
public struct ThreadCursor: Sendable, Hashable, Codable {
    /// The last item's activity, in whole microseconds since 1970.
    public var activityMicroseconds: Int64
    /// Its thread.
    public var thread: String
    /// Its namespace.
    public var namespace: String

    /// Creates a cursor.
    public init(activityMicroseconds: Int64, thread: String, namespace: String) {
        self.activityMicroseconds = activityMicroseconds
        self.thread = thread
        self.namespace = namespace
    }

    /// The cursor after `item`.
    public init(after item: ThreadSummary) {
        self.init(
            activityMicroseconds: ActivityTime.microseconds(item.lastActivity), thread: item.thread.rawValue,
            namespace: item.namespace)
    }

    /// A URL-safe text form, for a command line or a query string. It is not secret: it names
    /// the last thread of the page, so a web page that hands it out must check who may list.
    public var token: String {
        let json = (try? JSONEncoder().encode(self)) ?? Data()
        return json.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Reads a ``token``.
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` when the text is not a cursor's token.
    public init(token: String) throws(CheckpointError) {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let cursor = try? JSONDecoder().decode(Self.self, from: data) else {
            throw CheckpointError(.invalidArgument, "'\(token)' is not a thread listing cursor")
        }
        self = cursor
    }

    var listingOrder: (Int64, BytewiseString, BytewiseString) {
        (activityMicroseconds, BytewiseString(thread), BytewiseString(namespace))
    }
}

/// One page of a thread listing.
public struct ThreadPage: Sendable, Hashable {
    /// The items, in the query's order.
    public var items: [ThreadSummary]
    /// The cursor for the next page, or `nil` when this page was the last (no empty page follows).
    public var next: ThreadCursor?

    /// Creates a page.
    public init(items: [ThreadSummary], next: ThreadCursor?) {
        self.items = items
        self.next = next
    }
}

/// Activity times as the stores keep them: whole microseconds since 1970, so that a cursor
/// made from a listed time finds the same item again exactly.
package enum ActivityTime {
    package static func microseconds(_ date: Date) -> Int64 {
        // To the nearest: a time read back from its microseconds gives the same microseconds.
        let value = (date.timeIntervalSince1970 * 1_000_000).rounded()
        guard value.isFinite else { return value < 0 ? .min : .max }
        return Int64(exactly: value) ?? (value < 0 ? .min : .max)
    }

    package static func date(_ microseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }
}

extension ThreadQuery {
    /// Checks the limit, shared by every backend.
    package func validate() throws(CheckpointError) {
        guard limit >= 1 else { throw CheckpointError(.invalidArgument, "a thread listing limit must be at least 1") }
        if let activeBefore, let activeSince, activeSince >= activeBefore {
            throw CheckpointError(.invalidArgument, "activeSince must be before activeBefore")
        }
    }

    /// The activity bounds in microseconds: `[since, before)`.
    package var activityBounds: (since: Int64?, before: Int64?) {
        (activeSince.map(ActivityTime.microseconds), activeBefore.map(ActivityTime.microseconds))
    }

    /// Whether an item matches the filters (not the cursor).
    package func matches(_ item: ThreadSummary) -> Bool {
        if let tenant, !(item.thread.tenant.map { BytewiseString.equal(String($0), tenant) } ?? false) { return false }
        if let namespace, !BytewiseString.equal(item.namespace, namespace) { return false }
        let activity = ActivityTime.microseconds(item.lastActivity)
        if let before = activityBounds.before, activity >= before { return false }
        if let since = activityBounds.since, activity < since { return false }
        if let paused, (item.waitingPause != nil) != paused { return false }
        return true
    }

    /// Whether `item` comes after the cursor in the query's order.
    package func isAfterCursor(_ item: ThreadSummary) -> Bool {
        guard let after else { return true }
        switch order {
        case .newestActivityFirst: return item.listingOrder < after.listingOrder
        case .oldestActivityFirst: return after.listingOrder < item.listingOrder
        }
    }

    /// The page of items listed in any order, some of which may not match: filters them,
    /// keeps those after the cursor, orders them and pages.
    package func page(unordered candidates: [ThreadSummary]) -> ThreadPage {
        let items = candidates.filter { matches($0) && isAfterCursor($0) }
        let ordered =
            switch order {
            case .newestActivityFirst: items.sorted { $1.listingOrder < $0.listingOrder }
            case .oldestActivityFirst: items.sorted { $0.listingOrder < $1.listingOrder }
            }
        return page(ordered)
    }

    /// The page for items already in the query's order and matching: a cursor only when more
    /// items follow (a store asks for one more than the limit to know).
    package func page(_ items: [ThreadSummary]) -> ThreadPage {
        let page = Array(items.prefix(limit))
        let next = items.count > limit ? page.last.map(ThreadCursor.init(after:)) : nil
        return ThreadPage(items: page, next: next)
    }
}

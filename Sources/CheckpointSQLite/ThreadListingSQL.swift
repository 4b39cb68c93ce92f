import Checkpointing
import Foundation

/// The SQL of a thread listing: a range of `threads_by_activity` (or `threads_by_tenant`
/// when a tenant is given), read in the query's order, so that a page never scans
/// checkpoints. Every value is a bound parameter.
struct ThreadListingSQL {
    let sql: String
    private let query: ThreadQuery

    /// The columns before the waiting pause's checkpoint row.
    static let pauseRowColumn: Int32 = 6

    init(_ query: ThreadQuery) {
        self.query = query
        var conditions = ["t.head_id IS NOT NULL"]
        if query.tenant != nil { conditions.append("t.tenant = ?1") }
        if query.namespace != nil { conditions.append("t.namespace = ?2") }
        if query.activeBefore != nil { conditions.append("t.last_activity < ?3") }
        if query.activeSince != nil { conditions.append("t.last_activity >= ?4") }
        if let paused = query.paused { conditions.append(paused ? "w.thread_key IS NOT NULL" : "w.thread_key IS NULL") }
        let newestFirst = query.order == .newestActivityFirst
        if query.after != nil {
            conditions.append("(t.last_activity, t.thread, t.namespace) \(newestFirst ? "<" : ">") (?5, ?6, ?7)")
        }
        let direction = newestFirst ? "DESC" : "ASC"
        sql = """
            SELECT t.thread, t.namespace, t.head_id, t.last_activity, t.checkpoint_count, w.thread_key IS NOT NULL,
                   \(Schema.rowColumns)
            FROM threads t INDEXED BY \(query.tenant != nil ? "threads_by_tenant" : "threads_by_activity")
            LEFT JOIN waiting_pauses w ON w.thread_key = t.key
            LEFT JOIN checkpoints c ON c.thread_key = w.thread_key AND c.id = w.checkpoint_id
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY t.last_activity \(direction), t.thread \(direction), t.namespace \(direction)
            LIMIT ?8
            """
    }

    func bind(_ statement: SQLiteStatement) throws(SQLiteError) {
        if let tenant = query.tenant { try statement.bind(1, tenant) }
        if let namespace = query.namespace { try statement.bind(2, namespace) }
        let bounds = query.activityBounds
        if let before = bounds.before { try statement.bind(3, before) }
        if let since = bounds.since { try statement.bind(4, since) }
        if let after = query.after {
            try statement.bind(5, after.activityMicroseconds)
            try statement.bind(6, after.thread)
            try statement.bind(7, after.namespace)
        }
        // One more than the page, so that a page that ends the listing says so.
        try statement.bind(8, Int64(query.limit) + 1)
    }

    /// The item of the statement's current row.
    static func item(_ select: SQLiteStatement) throws -> ThreadSummary {
        let thread = try ThreadID(select.text(0))
        let namespace = select.text(1)
        var pause: Pause?
        if select.int64(5) != 0 {
            let row = try select.verifiedRow(at: pauseRowColumn, thread: thread, namespace: namespace)
            guard !select.isNull(pauseRowColumn + RowColumn.pause) else {
                throw CheckpointError(
                    .corruptData, "the inbox index names checkpoint \(row.id) of thread '\(thread)', which has no pause")
            }
            pause = try Pause(decoding: select.data(pauseRowColumn + RowColumn.pause))
        }
        return ThreadSummary(
            thread: thread, namespace: namespace, headID: try select.checkpointID(2),
            lastActivity: ActivityTime.date(select.int64(3)), checkpointCount: Int(select.int64(4)), waitingPause: pause)
    }
}

/// Each thread row's head, activity and count, kept by the writes that change them.
enum ThreadActivity {
    /// Fills the columns for the threads stored before they existed (the migration that adds
    /// them runs it, in its transaction): the newest checkpoint is the head, the activity is
    /// the latest creation or answer time, the count is of the checkpoints in the history.
    static func computeForExistingThreads(_ connection: SQLiteConnection) throws {
        struct Totals {
            var head: CheckpointID?
            var activity = Int64.min
            var count: Int64 = 0
        }
        var totals: [Int64: Totals] = [:]
        let rows = try connection.statement(
            "SELECT thread_key, id, created_at FROM checkpoints WHERE length(manifest) > 0")
        while try rows.step() {
            let id = try rows.checkpointID(1)
            let created = rows.isNull(2) ? id.timestamp : Date(timeIntervalSince1970: rows.double(2))
            var total = totals[rows.int64(0), default: Totals()]
            total.head = max(total.head ?? id, id)
            total.activity = max(total.activity, ActivityTime.microseconds(created))
            total.count += 1
            totals[rows.int64(0)] = total
        }
        rows.reset()
        let answers = try connection.statement("SELECT thread_key, max(answered_at) FROM answers GROUP BY thread_key")
        while try answers.step() {
            let answered = ActivityTime.microseconds(Date(timeIntervalSince1970: answers.double(1)))
            let key = answers.int64(0)
            if var total = totals[key] {
                total.activity = max(total.activity, answered)
                totals[key] = total
            }
        }
        answers.reset()
        var threads: [(key: Int64, tenant: String?)] = []
        let keys = try connection.statement("SELECT key, thread FROM threads")
        while try keys.step() { threads.append((keys.int64(0), try ThreadID(keys.text(1)).tenant.map(String.init))) }
        keys.reset()
        let update = try connection.statement(
            "UPDATE threads SET tenant = ?2, head_id = ?3, last_activity = ?4, checkpoint_count = ?5 WHERE key = ?1")
        for thread in threads {
            update.reset()
            try update.bind(1, thread.key)
            if let tenant = thread.tenant { try update.bind(2, tenant) } else { try update.bindNull(2) }
            if let total = totals[thread.key], let head = total.head {
                try update.bind(3, head)
                try update.bind(4, total.activity)
                try update.bind(5, total.count)
            } else {
                try update.bindNull(3)
                try update.bindNull(4)
                try update.bind(5, Int64(0))
            }
            try update.run()
        }
    }
}

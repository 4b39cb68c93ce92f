import Checkpointing

/// The SQL of an inbox query: a range of one of the `waiting_pauses` indexes, chosen by the
/// filters, so that it never scans threads. Every value is a bound parameter.
struct InboxSQL {
    let sql: String
    private let query: InboxQuery

    init(_ query: InboxQuery) {
        self.query = query
        var conditions: [String] = []
        if query.reason != nil { conditions.append("w.reason = ?1") }
        if query.tenant != nil { conditions.append("w.tenant = ?2") }
        if query.expiredAsOf != nil { conditions.append("w.expires_at <= ?3") }
        if query.after != nil { conditions.append("(w.created_at, w.thread, w.namespace) > (?4, ?5, ?6)") }
        let index =
            query.reason != nil ? "waiting_by_reason" : query.tenant != nil ? "waiting_by_tenant" : "waiting_by_time"
        sql = """
            SELECT w.thread, w.namespace, \(Schema.rowColumns)
            FROM waiting_pauses w INDEXED BY \(index)
            JOIN checkpoints c ON c.thread_key = w.thread_key AND c.id = w.checkpoint_id
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY w.created_at, w.thread, w.namespace
            LIMIT ?7
            """
    }

    func bind(_ statement: SQLiteStatement) throws(SQLiteError) {
        if let reason = query.reason { try statement.bind(1, reason) }
        if let tenant = query.tenant { try statement.bind(2, tenant) }
        if let expiredAsOf = query.expiredAsOf { try statement.bind(3, expiredAsOf.timeIntervalSince1970) }
        if let after = query.after {
            try statement.bind(4, after.createdAt.timeIntervalSince1970)
            try statement.bind(5, after.thread)
            try statement.bind(6, after.namespace)
        }
        try statement.bind(7, Int64(query.limit))
    }
}

import Checkpointing

/// The SQL of a history query with a metadata filter; every value is a bound parameter.
struct HistoryQuery {
    let sql: String
    private let filter: [(path: String, value: MetadataValue)]

    init(filter: Metadata) throws(CheckpointError) {
        var sql = """
            SELECT c.id, c.parent_id, c.step, c.created_at, c.metadata
            FROM threads t JOIN checkpoints c ON c.thread_key = t.key
            WHERE t.thread = ?1 AND t.namespace = ?2 AND (?3 IS NULL OR c.id < ?3) AND length(c.manifest) > 0
            """
        var entries: [(path: String, value: MetadataValue)] = []
        for (offset, key) in filter.keys.sorted().enumerated() {
            guard !key.contains("\""), let value = filter[key] else {
                throw CheckpointError(.invalidArgument, "a metadata filter key must not contain '\"'")
            }
            let path = "?\(5 + 2 * offset)"
            let parameter = "?\(6 + 2 * offset)"
            let type = "json_type(c.metadata, \(path))"
            let extract = "json_extract(c.metadata, \(path))"
            switch value {
            case .string: sql += " AND \(type) = 'text' AND \(extract) = \(parameter)"
            case .int: sql += " AND \(type) = 'integer' AND \(extract) = \(parameter)"
            case .double: sql += " AND \(type) IN ('integer', 'real') AND \(extract) = \(parameter)"
            case .bool(let flag): sql += " AND \(type) = '\(flag ? "true" : "false")'"
            case .null: sql += " AND \(type) = 'null'"
            }
            entries.append(("$.\"\(key)\"", value))
        }
        sql += " ORDER BY c.id DESC LIMIT ?4"
        self.sql = sql
        self.filter = entries
    }

    func bindFilter(_ statement: SQLiteStatement) throws(SQLiteError) {
        for (offset, entry) in filter.enumerated() {
            try statement.bind(Int32(5 + 2 * offset), entry.path)
            let parameter = Int32(6 + 2 * offset)
            switch entry.value {
            case .string(let text): try statement.bind(parameter, text)
            case .int(let number): try statement.bind(parameter, Int64(number))
            case .double(let number): try statement.bind(parameter, number)
            case .bool, .null: break
            }
        }
    }
}

import Checkpointing

/// The SQL of a history query with a metadata filter; every value, keys included, is a bound
/// parameter.
///
/// Each filter entry looks the key up among the metadata object's members with `json_each`,
/// which compares the decoded key text, so a key may hold any character (`"`, `.`, `$`, `[`,
/// `'`, `\`, a space, an escaped `/`); a JSON path built from the key could not say all of them.
/// Numbers match by value whether stored as an integer or a real; other types match only
/// their own type.
struct HistoryQuery {
    let sql: String
    private let filter: [(key: String, value: MetadataValue)]

    init(filter: Metadata) {
        var sql = """
            SELECT \(Schema.rowColumns)
            FROM threads t JOIN checkpoints c ON c.thread_key = t.key
            WHERE t.thread = ?1 AND t.namespace = ?2 AND (?3 IS NULL OR c.id < ?3) AND length(c.manifest) > 0
            """
        var entries: [(key: String, value: MetadataValue)] = []
        for (offset, key) in filter.keys.sorted().enumerated() {
            guard let value = filter[key] else { continue }
            let keyParameter = "?\(5 + 2 * offset)"
            let valueParameter = "?\(6 + 2 * offset)"
            let condition =
                switch value {
                case .string: "m.type = 'text' AND m.value = \(valueParameter)"
                case .int, .double: "m.type IN ('integer', 'real') AND m.value = \(valueParameter)"
                case .bool(let flag): "m.type = '\(flag ? "true" : "false")'"
                case .null: "m.type = 'null'"
                }
            sql += " AND EXISTS (SELECT 1 FROM json_each(c.metadata) m WHERE m.key = \(keyParameter) AND \(condition))"
            entries.append((key, value))
        }
        sql += " ORDER BY c.id DESC LIMIT ?4"
        self.sql = sql
        self.filter = entries
    }

    func bindFilter(_ statement: SQLiteStatement) throws(SQLiteError) {
        for (offset, entry) in filter.enumerated() {
            try statement.bind(Int32(5 + 2 * offset), entry.key)
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

/// The SQLite schema, as named migrations applied in order and recorded in the file.
///
/// One row per checkpoint holds its manifest, the list segments it appended and the values it
/// stored, so a put writes one row (usually one page). The thread's head is its newest
/// checkpoint: checkpoint ids are time-ordered and a put's id must be newer than the head.
enum Schema {
    struct Migration {
        var name: String
        var sql: String
    }

    static let migrations: [Migration] = [
        Migration(
            name: "2026-11-23-initial",
            sql: """
                CREATE TABLE threads (
                    key INTEGER PRIMARY KEY,
                    thread TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    UNIQUE (thread, namespace)
                );
                CREATE TABLE checkpoints (
                    thread_key INTEGER NOT NULL,
                    id BLOB NOT NULL,
                    parent_id BLOB,
                    step INTEGER NOT NULL,
                    created_at REAL,
                    metadata TEXT,
                    manifest BLOB NOT NULL,
                    segments BLOB,
                    payload BLOB,
                    PRIMARY KEY (thread_key, id)
                ) WITHOUT ROWID;
                """),
    ]

    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS checkpoint_migrations (
            name TEXT PRIMARY KEY NOT NULL,
            applied_at REAL NOT NULL
        ) WITHOUT ROWID
        """

    // Writes.
    static let selectThreadKey = "SELECT key FROM threads WHERE thread = ?1 AND namespace = ?2"
    static let insertThread = "INSERT INTO threads (thread, namespace) VALUES (?1, ?2)"
    static let selectHeadManifest = """
        SELECT id, manifest FROM checkpoints WHERE thread_key = ?1 ORDER BY id DESC LIMIT 1
        """
    static let selectManifest = "SELECT manifest FROM checkpoints WHERE thread_key = ?1 AND id = ?2"
    static let insertCheckpoint = """
        INSERT INTO checkpoints (thread_key, id, parent_id, step, created_at, metadata, manifest, segments, payload)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        """

    // Reads.
    static let selectHead = """
        SELECT t.key, c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest
        FROM threads t JOIN checkpoints c ON c.thread_key = t.key
        WHERE t.thread = ?1 AND t.namespace = ?2
        ORDER BY c.id DESC LIMIT 1
        """
    static let selectCheckpoint = """
        SELECT t.key, c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest
        FROM threads t JOIN checkpoints c ON c.thread_key = t.key
        WHERE t.thread = ?1 AND t.namespace = ?2 AND c.id = ?3
        """
    static let selectPayload = "SELECT payload FROM checkpoints WHERE thread_key = ?1 AND id = ?2"
    /// A list's rows, newest first from its tip; the reader stops once the chain is complete.
    static let selectSegments = """
        SELECT id, parent_id, segments FROM checkpoints
        WHERE thread_key = ?1 AND id <= ?2 AND segments IS NOT NULL
        ORDER BY id DESC
        """

    // Deletion and statistics.
    static let deleteCheckpoints =
        "DELETE FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)"
    static let deleteThreads = "DELETE FROM threads WHERE thread = ?1"
    static let selectThreadKeys = "SELECT key FROM threads WHERE thread = ?1"
    static let statistics = """
        SELECT count(*), count(segments) + count(payload),
               coalesce(sum(length(segments)), 0) + coalesce(sum(length(payload)), 0)
        FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)
        """
}

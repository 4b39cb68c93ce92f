/// The SQLite schema, as named migrations applied in order and recorded in the file.
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
                    head BLOB NOT NULL,
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
                    PRIMARY KEY (thread_key, id)
                ) WITHOUT ROWID;
                CREATE TABLE payloads (
                    thread_key INTEGER NOT NULL,
                    channel TEXT NOT NULL,
                    version BLOB NOT NULL,
                    previous BLOB,
                    data BLOB NOT NULL,
                    PRIMARY KEY (thread_key, channel, version)
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
    static let insertThreadIfAbsent = """
        INSERT INTO threads (thread, namespace, head) VALUES (?1, ?2, ?3)
        ON CONFLICT (thread, namespace) DO NOTHING RETURNING key
        """
    static let upsertThread = """
        INSERT INTO threads (thread, namespace, head) VALUES (?1, ?2, ?3)
        ON CONFLICT (thread, namespace) DO UPDATE SET head = excluded.head RETURNING key
        """
    static let moveHeadIfParent = """
        UPDATE threads SET head = ?4 WHERE thread = ?1 AND namespace = ?2 AND head = ?3 RETURNING key
        """
    static let moveHead = "UPDATE threads SET head = ?3 WHERE thread = ?1 AND namespace = ?2 RETURNING key"
    static let selectManifest = "SELECT manifest FROM checkpoints WHERE thread_key = ?1 AND id = ?2"
    static let insertPayload = """
        INSERT INTO payloads (thread_key, channel, version, previous, data) VALUES (?1, ?2, ?3, ?4, ?5)
        """
    static let insertCheckpoint = """
        INSERT INTO checkpoints (thread_key, id, parent_id, step, created_at, metadata, manifest)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """

    // Reads.
    static let selectCheckpoint = """
        SELECT t.key, c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest
        FROM threads t JOIN checkpoints c ON c.thread_key = t.key AND c.id = coalesce(?3, t.head)
        WHERE t.thread = ?1 AND t.namespace = ?2
        """
    static let selectPayload = "SELECT data FROM payloads WHERE thread_key = ?1 AND channel = ?2 AND version = ?3"
    static let selectSegments = """
        SELECT version, previous, data FROM payloads
        WHERE thread_key = ?1 AND channel = ?2 AND version BETWEEN ?3 AND ?4
        """

    // Deletion and statistics.
    static let deletePayloads = "DELETE FROM payloads WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)"
    static let deleteCheckpoints =
        "DELETE FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)"
    static let deleteThreads = "DELETE FROM threads WHERE thread = ?1"
    static let countCheckpoints =
        "SELECT count(*) FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)"
    static let sumPayloads = """
        SELECT count(*), coalesce(sum(length(data)), 0) FROM payloads
        WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)
        """
}

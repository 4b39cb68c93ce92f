/// The SQLite schema, as named migrations applied in order and recorded in the file.
///
/// One row per checkpoint holds its manifest, the list segments it appended and the values it
/// stored, so a put writes one row (usually one page). The thread's head is its newest
/// checkpoint: checkpoint ids are time-ordered and a put's id must be newer than the head.
enum Schema {
    struct Migration: Sendable {
        var name: String
        var sql: String
        /// Work in Swift after the SQL, in the same transaction (such as computing checksums
        /// of the rows that exist).
        var after: (@Sendable (SQLiteConnection) throws -> Void)? = nil
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
        // Human in the loop: a pause beside its checkpoint, answers recorded once, and an index
        // of the threads that wait (head paused, unanswered), so the inbox never scans threads.
        Migration(
            name: "2026-11-23-pauses",
            sql: """
                ALTER TABLE checkpoints ADD COLUMN pause BLOB;
                CREATE TABLE answers (
                    thread_key INTEGER NOT NULL,
                    checkpoint_id BLOB NOT NULL,
                    pause_id BLOB NOT NULL,
                    response BLOB NOT NULL,
                    answered_at REAL NOT NULL,
                    PRIMARY KEY (thread_key, checkpoint_id)
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX answers_by_pause ON answers (thread_key, pause_id);
                CREATE TABLE waiting_pauses (
                    thread_key INTEGER PRIMARY KEY,
                    thread TEXT NOT NULL,
                    namespace TEXT NOT NULL,
                    tenant TEXT,
                    reason TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    expires_at REAL,
                    checkpoint_id BLOB NOT NULL
                );
                CREATE INDEX waiting_by_time ON waiting_pauses (created_at, thread, namespace);
                CREATE INDEX waiting_by_reason ON waiting_pauses (reason, created_at, thread, namespace);
                CREATE INDEX waiting_by_tenant ON waiting_pauses (tenant, created_at, thread, namespace);
                """),
        // Every checkpoint and answer row carries a checksum of its content (``RowChecksum``),
        // checked on every read; the rows that exist get theirs from their current content.
        Migration(
            name: "2026-12-02-row-checksums",
            sql: "ALTER TABLE checkpoints ADD COLUMN checksum INTEGER; ALTER TABLE answers ADD COLUMN checksum INTEGER",
            after: RowChecksums.computeForExistingRows),
        // The thread listing: each thread's row holds its tenant, head, last activity (whole
        // microseconds) and checkpoint count, kept by every put, answer and prune, and two
        // indexes order the rows by activity, so that a page of threads is a range of an index.
        Migration(
            name: "2026-12-03-thread-activity",
            sql: """
                ALTER TABLE threads ADD COLUMN tenant TEXT;
                ALTER TABLE threads ADD COLUMN head_id BLOB;
                ALTER TABLE threads ADD COLUMN last_activity INTEGER;
                ALTER TABLE threads ADD COLUMN checkpoint_count INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX threads_by_activity ON threads (last_activity, thread, namespace);
                CREATE INDEX threads_by_tenant ON threads (tenant, last_activity, thread, namespace);
                """,
            after: ThreadActivity.computeForExistingThreads),
        // The tenant index holds only the threads that have a tenant: a put moves a thread's
        // entry in every index over its activity, and an index that no listing of a thread
        // without a tenant reads is work (and WAL pages) for nothing.
        Migration(
            name: "2026-12-03-thread-activity-partial-tenant-index",
            sql: """
                DROP INDEX IF EXISTS threads_by_tenant;
                CREATE INDEX threads_by_tenant ON threads (tenant, last_activity, thread, namespace)
                    WHERE tenant IS NOT NULL;
                """),
    ]

    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS checkpoint_migrations (
            name TEXT PRIMARY KEY NOT NULL,
            applied_at REAL NOT NULL
        ) WITHOUT ROWID
        """

    // Transaction control.
    static let begin = SQL(1, "BEGIN")
    static let beginImmediate = SQL(2, "BEGIN IMMEDIATE")
    static let commit = SQL(3, "COMMIT")
    static let rollback = SQL(4, "ROLLBACK")

    // Writes.
    static let selectThreadKey = SQL(5, "SELECT key FROM threads WHERE thread = ?1 AND namespace = ?2")
    static let insertThread = SQL(
        6,
        """
        INSERT INTO threads (thread, namespace, tenant, head_id, last_activity, checkpoint_count)
        VALUES (?1, ?2, ?3, ?4, ?5, 1)
        """)
    /// A put's change of its thread's row: the new head, its activity (the latest time, not
    /// the last written), one more checkpoint.
    static let advanceThread = SQL(
        33,
        """
        UPDATE threads SET head_id = ?2, last_activity = max(coalesce(last_activity, ?3), ?3),
            checkpoint_count = checkpoint_count + 1
        WHERE key = ?1
        """)
    /// An answer's activity.
    static let touchThread = SQL(
        34, "UPDATE threads SET last_activity = max(coalesce(last_activity, ?2), ?2) WHERE key = ?1")
    /// Retention's change of the count.
    static let uncountCheckpoints = SQL(
        35, "UPDATE threads SET checkpoint_count = max(checkpoint_count - ?2, 0) WHERE key = ?1")
    /// The columns of a checkpoint row that its checksum covers, then the checksum, in the
    /// order ``SQLiteStatement/verifiedRow(at:thread:namespace:)`` reads them.
    static let rowColumns =
        "c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest, c.segments, c.payload, c.pause, c.checksum"
    /// The columns of an answer row that its checksum covers, then the checksum.
    static let answerColumns = "a.pause_id, a.response, a.answered_at, a.checksum"

    static let selectHeadManifest = SQL(
        7, "SELECT \(rowColumns) FROM checkpoints c WHERE c.thread_key = ?1 ORDER BY c.id DESC LIMIT 1")
    /// The head's id and whether it is paused: with the head's manifest known in memory, a put
    /// needs nothing else of its row.
    static let selectHeadID = SQL(
        32, "SELECT c.id, c.pause IS NOT NULL FROM checkpoints c WHERE c.thread_key = ?1 ORDER BY c.id DESC LIMIT 1")
    static let selectManifest = SQL(
        8, "SELECT \(rowColumns) FROM checkpoints c WHERE c.thread_key = ?1 AND c.id = ?2 AND length(c.manifest) > 0")
    static let insertCheckpoint = SQL(
        9,
        """
        INSERT INTO checkpoints
            (thread_key, id, parent_id, step, created_at, metadata, manifest, segments, payload, pause, checksum)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
        """)

    // Reads.
    static let selectHead = SQL(
        10,
        """
        SELECT t.key, \(rowColumns), \(answerColumns)
        FROM threads t JOIN checkpoints c ON c.thread_key = t.key
        LEFT JOIN answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
        WHERE t.thread = ?1 AND t.namespace = ?2
        ORDER BY c.id DESC LIMIT 1
        """)
    static let selectCheckpoint = SQL(
        11,
        """
        SELECT t.key, \(rowColumns), \(answerColumns)
        FROM threads t JOIN checkpoints c ON c.thread_key = t.key
        LEFT JOIN answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
        WHERE t.thread = ?1 AND t.namespace = ?2 AND c.id = ?3 AND length(c.manifest) > 0
        """)
    static let selectPayload = SQL(
        12, "SELECT \(rowColumns) FROM checkpoints c WHERE c.thread_key = ?1 AND c.id = ?2")
    /// A list's rows, newest first from its tip; the reader stops once the chain is complete.
    static let selectSegments = SQL(
        13,
        """
        SELECT \(rowColumns) FROM checkpoints c
        WHERE c.thread_key = ?1 AND c.id <= ?2 AND c.segments IS NOT NULL
        ORDER BY c.id DESC
        """)

    // Deletion and statistics.
    static let deleteCheckpoints = SQL(
        14, "DELETE FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)")
    static let deleteThreads = SQL(15, "DELETE FROM threads WHERE thread = ?1")
    static let selectThreadKeys = SQL(16, "SELECT key FROM threads WHERE thread = ?1")
    static let statistics = SQL(
        17,
        """
        SELECT coalesce(sum(length(manifest) > 0), 0), count(segments) + count(payload),
               coalesce(sum(length(segments)), 0) + coalesce(sum(length(payload)), 0)
        FROM checkpoints WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)
        """)
    static let selectMigrations = SQL(18, "SELECT name FROM checkpoint_migrations")
    static let selectMigrationsTable = SQL(
        31, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoint_migrations'")

    // Pauses.
    static let deleteWaiting = SQL(20, "DELETE FROM waiting_pauses WHERE thread_key = ?1")
    static let insertWaiting = SQL(
        21,
        """
        INSERT OR REPLACE INTO waiting_pauses
            (thread_key, thread, namespace, tenant, reason, created_at, expires_at, checkpoint_id)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
        """)
    static let selectHeadPause = SQL(
        22, "SELECT \(rowColumns) FROM checkpoints c WHERE c.thread_key = ?1 ORDER BY c.id DESC LIMIT 1")
    static let selectAnswerByPause = SQL(23, "SELECT 1 FROM answers WHERE thread_key = ?1 AND pause_id = ?2")
    static let insertAnswer = SQL(
        24,
        """
        INSERT INTO answers (thread_key, checkpoint_id, pause_id, response, answered_at, checksum)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6)
        """)
    static let deleteAnswers =
        SQL(25, "DELETE FROM answers WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)")
    // Retention.
    static let selectRetentionRows = SQL(
        27,
        """
        SELECT \(rowColumns), c.pause IS NOT NULL AND a.checkpoint_id IS NULL
        FROM checkpoints c LEFT JOIN answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
        WHERE c.thread_key = ?1
        """)
    /// A pruned row keeps its content (segments, payload) but leaves the history: no manifest.
    static let tombstoneCheckpoint = SQL(
        28,
        """
        UPDATE checkpoints SET manifest = x'', metadata = NULL, pause = NULL, segments = ?3, payload = ?4, checksum = ?5
        WHERE thread_key = ?1 AND id = ?2
        """)
    static let selectRowContent = SQL(
        30, "SELECT \(rowColumns) FROM checkpoints c WHERE c.thread_key = ?1 AND c.id = ?2")
    static let deleteCheckpoint = SQL(29, "DELETE FROM checkpoints WHERE thread_key = ?1 AND id = ?2")
    static let deleteWaitingOfThread =
        SQL(26, "DELETE FROM waiting_pauses WHERE thread_key IN (SELECT key FROM threads WHERE thread = ?1)")
    // Retention by idleness.
    /// Up to `?8` idle namespaces after the cursor (`?4`-`?6`), oldest activity first: not
    /// waiting, or (`?2`) waiting on a pause expired at `?3`; with `?7`, only those with more
    /// than one checkpoint (pruning to the head changes nothing else).
    static let selectIdle = SQL(
        36,
        """
        SELECT t.key, t.thread, t.namespace, t.last_activity
        FROM threads t INDEXED BY threads_by_activity
        LEFT JOIN waiting_pauses w ON w.thread_key = t.key
        WHERE t.last_activity < ?1 AND (t.last_activity, t.thread, t.namespace) > (?4, ?5, ?6)
          AND (w.thread_key IS NULL OR (?2 AND w.expires_at IS NOT NULL AND w.expires_at <= ?3))
          AND (NOT ?7 OR t.checkpoint_count > 1)
        ORDER BY t.last_activity, t.thread, t.namespace
        LIMIT ?8
        """)
    /// One thread row's checkpoints in the history, and the bytes of its stored content.
    static let keyStatistics = SQL(
        37,
        """
        SELECT coalesce(sum(length(manifest) > 0), 0),
               coalesce(sum(length(segments)), 0) + coalesce(sum(length(payload)), 0)
        FROM checkpoints WHERE thread_key = ?1
        """)
    static let deleteAnswersOfKey = SQL(38, "DELETE FROM answers WHERE thread_key = ?1")
    static let deleteCheckpointsOfKey = SQL(39, "DELETE FROM checkpoints WHERE thread_key = ?1")
    static let deleteThreadOfKey = SQL(40, "DELETE FROM threads WHERE key = ?1")
    static let insertMigration = SQL(19, "INSERT INTO checkpoint_migrations (name, applied_at) VALUES (?1, ?2)")
}

/// A fixed SQL statement with a small key, so that finding its prepared statement costs an
/// integer lookup rather than hashing the text.
struct SQL: Sendable {
    let key: Int
    let text: String

    init(_ key: Int, _ text: String) {
        self.key = key
        self.text = text
    }
}

/// The PostgreSQL schema, as named migrations applied in order under an advisory lock and
/// recorded in `checkpoint_migrations`.
///
/// As in every backend, one row per checkpoint holds its manifest, the list segments it
/// appended and the values it stored (an unchanged channel is a reference, an appended list
/// stores only the new elements). The thread's row holds its head, so that a put checks and
/// moves the head and inserts its checkpoint in one statement, and the head's waiting pause,
/// so that the inbox is a range of a partial index.
///
/// Every table has a `tenant` column (the thread id's prefix before `:`) and a row-level
/// security policy: a connection bound to a tenant (`checkpointing.tenant` set) sees and
/// writes that tenant's rows only; a connection bound to none sees every row.
enum PostgresSchema {
    struct Migration {
        var name: String
        var sql: String
        /// Whether the migration runs inside a transaction; one that uses
        /// `CREATE INDEX CONCURRENTLY` cannot, and runs under the session's advisory lock only.
        var transactional = true
        /// Work in Swift after the SQL, in the same transaction (such as computing checksums
        /// of the rows that exist).
        var after: (@Sendable (PostgresConnection) throws -> Void)? = nil
    }

    /// The key of the advisory lock every instance takes to migrate (`'ckpt'` as an integer).
    static let migrationLock: Int64 = 0x636B_7074_6D69_6772

    static let migrationsTable = """
        CREATE TABLE IF NOT EXISTS checkpoint_migrations (
            name text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """

    private static let tenantPolicy = """
        coalesce(current_setting('checkpointing.tenant', true), '') = ''
        OR tenant = current_setting('checkpointing.tenant', true)
        """

    static let migrations: [Migration] = [
        Migration(
            name: "2026-11-23-initial",
            sql: """
                CREATE TABLE checkpoint_threads (
                    key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    thread text COLLATE "C" NOT NULL,
                    namespace text COLLATE "C" NOT NULL,
                    tenant text COLLATE "C",
                    head_id bytea NOT NULL,
                    waiting_pause_id bytea,
                    waiting_reason text COLLATE "C",
                    waiting_created_at double precision,
                    waiting_expires_at double precision,
                    UNIQUE (thread, namespace)
                ) WITH (fillfactor = 80);
                CREATE TABLE checkpoint_rows (
                    thread_key bigint NOT NULL,
                    id bytea NOT NULL,
                    parent_id bytea,
                    step bigint NOT NULL,
                    created_at double precision,
                    metadata jsonb,
                    manifest bytea NOT NULL,
                    segments bytea,
                    payload bytea,
                    pause bytea,
                    tenant text COLLATE "C",
                    PRIMARY KEY (thread_key, id)
                );
                CREATE INDEX checkpoint_rows_metadata ON checkpoint_rows USING gin (metadata jsonb_path_ops);
                CREATE TABLE checkpoint_answers (
                    thread_key bigint NOT NULL,
                    checkpoint_id bytea NOT NULL,
                    pause_id bytea NOT NULL,
                    response bytea NOT NULL,
                    answered_at double precision NOT NULL,
                    tenant text COLLATE "C",
                    PRIMARY KEY (thread_key, checkpoint_id),
                    UNIQUE (thread_key, pause_id)
                );
                CREATE INDEX checkpoint_waiting_by_time ON checkpoint_threads (waiting_created_at, thread, namespace)
                    WHERE waiting_pause_id IS NOT NULL;
                CREATE INDEX checkpoint_waiting_by_reason
                    ON checkpoint_threads (waiting_reason, waiting_created_at, thread, namespace)
                    WHERE waiting_pause_id IS NOT NULL;
                CREATE INDEX checkpoint_waiting_by_tenant
                    ON checkpoint_threads (tenant, waiting_created_at, thread, namespace)
                    WHERE waiting_pause_id IS NOT NULL;
                ALTER TABLE checkpoint_threads ENABLE ROW LEVEL SECURITY;
                ALTER TABLE checkpoint_threads FORCE ROW LEVEL SECURITY;
                CREATE POLICY checkpoint_tenant ON checkpoint_threads USING (\(tenantPolicy)) WITH CHECK (\(tenantPolicy));
                ALTER TABLE checkpoint_rows ENABLE ROW LEVEL SECURITY;
                ALTER TABLE checkpoint_rows FORCE ROW LEVEL SECURITY;
                CREATE POLICY checkpoint_tenant ON checkpoint_rows USING (\(tenantPolicy)) WITH CHECK (\(tenantPolicy));
                ALTER TABLE checkpoint_answers ENABLE ROW LEVEL SECURITY;
                ALTER TABLE checkpoint_answers FORCE ROW LEVEL SECURITY;
                CREATE POLICY checkpoint_tenant ON checkpoint_answers USING (\(tenantPolicy)) WITH CHECK (\(tenantPolicy));
                """),
        // A checksum column for checkpoint and answer rows (``RowChecksum``), filled for the
        // rows already stored by `computeForExistingRows`, in the migration's transaction.
        Migration(
            name: "2026-12-02-row-checksums",
            sql: "ALTER TABLE checkpoint_rows ADD COLUMN checksum bigint; ALTER TABLE checkpoint_answers ADD COLUMN checksum bigint",
            after: PostgresRowChecksums.computeForExistingRows),
        // The thread listing: each thread's row holds its last activity (whole microseconds)
        // and checkpoint count, kept by every put, answer and prune, filled here for the
        // threads stored before (an id's first 48 bits are its milliseconds); two indexes
        // order the rows by activity. The index builds hold the threads table's write lock
        // while they run (about a second per million threads).
        Migration(
            name: "2026-12-03-thread-activity",
            sql: """
                ALTER TABLE checkpoint_threads ADD COLUMN last_activity bigint;
                ALTER TABLE checkpoint_threads ADD COLUMN checkpoint_count bigint NOT NULL DEFAULT 0;
                UPDATE checkpoint_threads t SET checkpoint_count = s.count, last_activity = greatest(s.activity, a.answered)
                FROM (
                    SELECT thread_key, count(*) AS count, max(coalesce(
                        round(created_at * 1000000)::bigint,
                        ('x' || encode(substring(id FROM 1 FOR 6), 'hex'))::bit(48)::bigint * 1000)) AS activity
                    FROM checkpoint_rows WHERE length(manifest) > 0 GROUP BY thread_key
                ) s
                LEFT JOIN (
                    SELECT thread_key, round(max(answered_at) * 1000000)::bigint AS answered
                    FROM checkpoint_answers GROUP BY thread_key
                ) a ON a.thread_key = s.thread_key
                WHERE t.key = s.thread_key;
                CREATE INDEX checkpoint_threads_by_activity ON checkpoint_threads (last_activity, thread, namespace);
                CREATE INDEX checkpoint_threads_by_tenant ON checkpoint_threads (tenant, last_activity, thread, namespace);
                """),
        // The tenant index holds only the threads that have a tenant: a put moves a thread's
        // entry in every index over its activity, and one that no listing of a thread without
        // a tenant reads is work for nothing.
        Migration(
            name: "2026-12-03-thread-activity-partial-tenant-index",
            sql: """
                DROP INDEX IF EXISTS checkpoint_threads_by_tenant;
                CREATE INDEX checkpoint_threads_by_tenant ON checkpoint_threads (tenant, last_activity, thread, namespace)
                    WHERE tenant IS NOT NULL;
                """),
    ]

    /// The columns of a checkpoint row that its checksum covers, then the checksum, in the
    /// order ``PostgresRowFields`` reads them.
    static let rowColumns =
        "c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest, c.segments, c.payload, c.pause, c.checksum"
    /// The columns of an answer row that its checksum covers, then the checksum.
    static let answerColumns = "a.pause_id, a.response, a.answered_at, a.checksum"

    // MARK: Writes

    /// The head and waiting-pause columns a put sets on the thread's row.
    private static let headAssignments = """
        head_id = $4, waiting_pause_id = $11, waiting_reason = $12, waiting_created_at = $13, waiting_expires_at = $14,
        last_activity = greatest(t.last_activity, $19), checkpoint_count = t.checkpoint_count + 1
        """

    /// The checkpoint row a put inserts, for the thread row the first part returned.
    private static let insertRow = """
        INSERT INTO checkpoint_rows
            (thread_key, id, parent_id, step, created_at, metadata, manifest, segments, payload, pause, tenant, checksum)
        SELECT key, $4, $5, $6, $7, $8, $9, $15, $16, $17, $3, $18 FROM thread
        RETURNING thread_key
        """

    /// The types of a put's parameters: `$1`-`$17` as the statements use them, `$18` the
    /// row's checksum, `$19` its activity in microseconds.
    private static let putParameterTypes: [PostgresType] = [
        .text, .text, .text, .bytea, .bytea, .int8, .float8, .jsonb, .bytea, .bool, .bytea, .text, .float8, .float8,
        .bytea, .bytea, .bytea, .int8, .int8,
    ]

    /// A put that starts a thread: fails (no row) when the thread exists.
    static let putFirst = PostgresSQL(
        1, putParameterTypes,
        """
        WITH thread AS (
            INSERT INTO checkpoint_threads AS t
                (thread, namespace, tenant, head_id, waiting_pause_id, waiting_reason, waiting_created_at, waiting_expires_at,
                 last_activity, checkpoint_count)
            SELECT $1, $2, $3, $4, $11, $12, $13, $14, $19, 1 WHERE $5::bytea IS NULL AND $10::bool IS NOT NULL
            ON CONFLICT (thread, namespace) DO NOTHING
            RETURNING key
        )
        \(insertRow)
        """)

    /// A put of a new root in a thread that may exist (a fork from nothing): its id must be
    /// newer than the head.
    static let putRoot = PostgresSQL(
        2, putParameterTypes,
        """
        WITH thread AS (
            INSERT INTO checkpoint_threads AS t
                (thread, namespace, tenant, head_id, waiting_pause_id, waiting_reason, waiting_created_at, waiting_expires_at,
                 last_activity, checkpoint_count)
            SELECT $1, $2, $3, $4, $11, $12, $13, $14, $19, 1 WHERE $5::bytea IS NULL AND $10::bool IS NOT NULL
            ON CONFLICT (thread, namespace) DO UPDATE SET \(headAssignments)
            WHERE t.head_id < $4
            RETURNING key
        )
        \(insertRow)
        """)

    /// A put whose parent must be the head (`$10` false) or any live checkpoint of the thread
    /// older than the new one (`$10` true). Under concurrent writers PostgreSQL re-checks the
    /// condition on the newest version of the thread's row, so exactly one of two writers
    /// with the same parent moves the head.
    static let putAfter = PostgresSQL(
        3, putParameterTypes,
        """
        WITH thread AS (
            UPDATE checkpoint_threads t SET \(headAssignments)
            WHERE t.thread = $1 AND t.namespace = $2 AND $3::text IS NOT DISTINCT FROM t.tenant
              AND t.head_id < $4
              AND (t.head_id = $5 OR ($10 AND EXISTS (
                  SELECT 1 FROM checkpoint_rows c WHERE c.thread_key = t.key AND c.id = $5 AND length(c.manifest) > 0)))
            RETURNING key
        )
        \(insertRow)
        """)

    /// Why a put changed nothing: the thread's head and whether the parent exists.
    static let diagnosePut = PostgresSQL(
        4, [.text, .text, .bytea],
        """
        SELECT t.head_id, EXISTS (
            SELECT 1 FROM checkpoint_rows c WHERE c.thread_key = t.key AND c.id = $3 AND length(c.manifest) > 0)
        FROM checkpoint_threads t WHERE t.thread = $1 AND t.namespace = $2
        """)

    /// A checkpoint's manifest, for a put that needs its parent's.
    static let selectManifest = PostgresSQL(
        5, [.text, .text, .bytea],
        """
        SELECT \(rowColumns) FROM checkpoint_threads t JOIN checkpoint_rows c ON c.thread_key = t.key
        WHERE t.thread = $1 AND t.namespace = $2 AND c.id = $3 AND length(c.manifest) > 0
        """)

    // MARK: Reads

    private static let checkpointColumns = """
        SELECT t.key, \(rowColumns), \(answerColumns)
        FROM checkpoint_threads t JOIN checkpoint_rows c ON c.thread_key = t.key
        LEFT JOIN checkpoint_answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
        """

    static let selectHead = PostgresSQL(
        6, [.text, .text], "\(checkpointColumns) WHERE t.thread = $1 AND t.namespace = $2 AND c.id = t.head_id")

    static let selectCheckpoint = PostgresSQL(
        7, [.text, .text, .bytea], "\(checkpointColumns) WHERE t.thread = $1 AND t.namespace = $2 AND c.id = $3 AND length(c.manifest) > 0")

    static let selectPayload = PostgresSQL(
        8, [.int8, .bytea], "SELECT \(rowColumns) FROM checkpoint_rows c WHERE c.thread_key = $1 AND c.id = $2")

    /// A list's rows, newest first from its tip.
    static let selectSegments = PostgresSQL(
        9, [.int8, .bytea],
        """
        SELECT \(rowColumns) FROM checkpoint_rows c
        WHERE c.thread_key = $1 AND c.id <= $2 AND c.segments IS NOT NULL
        ORDER BY c.id DESC
        """)

    // MARK: Deletion and statistics

    static let deleteThread = PostgresSQL(
        10, [.text],
        """
        WITH t AS (DELETE FROM checkpoint_threads WHERE thread = $1 RETURNING key),
             a AS (DELETE FROM checkpoint_answers WHERE thread_key IN (SELECT key FROM t)),
             r AS (DELETE FROM checkpoint_rows WHERE thread_key IN (SELECT key FROM t))
        SELECT key FROM t
        """)

    static let statistics = PostgresSQL(
        11, [.text],
        """
        SELECT count(*) FILTER (WHERE length(manifest) > 0)::int8,
               (count(segments) + count(payload))::int8,
               (coalesce(sum(length(segments)), 0) + coalesce(sum(length(payload)), 0))::int8
        FROM checkpoint_rows WHERE thread_key IN (SELECT key FROM checkpoint_threads WHERE thread = $1)
        """)

    // MARK: Pauses

    /// The thread's row, locked, with its head's pause.
    static let lockHeadPause = PostgresSQL(
        12, [.text, .text],
        """
        SELECT t.key, \(rowColumns) FROM checkpoint_threads t
        JOIN checkpoint_rows c ON c.thread_key = t.key AND c.id = t.head_id
        WHERE t.thread = $1 AND t.namespace = $2
        FOR UPDATE OF t
        """)

    static let selectAnswerByPause = PostgresSQL(
        13, [.int8, .bytea], "SELECT 1 FROM checkpoint_answers WHERE thread_key = $1 AND pause_id = $2")

    static let insertAnswer = PostgresSQL(
        14, [.int8, .bytea, .bytea, .bytea, .float8, .text, .int8],
        """
        INSERT INTO checkpoint_answers (thread_key, checkpoint_id, pause_id, response, answered_at, tenant, checksum)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """)

    static let clearWaiting = PostgresSQL(
        15, [.int8, .int8],
        """
        UPDATE checkpoint_threads
        SET waiting_pause_id = NULL, waiting_reason = NULL, waiting_created_at = NULL, waiting_expires_at = NULL,
            last_activity = greatest(last_activity, $2)
        WHERE key = $1
        """)

    /// Retention's change of a thread's count.
    static let uncountCheckpoints = PostgresSQL(
        24, [.int8, .int8],
        "UPDATE checkpoint_threads SET checkpoint_count = greatest(checkpoint_count - $2, 0) WHERE key = $1")

    // MARK: Retention

    static let lockThread = PostgresSQL(
        16, [.text, .text], "SELECT key FROM checkpoint_threads WHERE thread = $1 AND namespace = $2 FOR UPDATE")

    static let selectRetentionRows = PostgresSQL(
        17, [.int8],
        """
        SELECT \(rowColumns), c.pause IS NOT NULL AND a.checkpoint_id IS NULL
        FROM checkpoint_rows c
        LEFT JOIN checkpoint_answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
        WHERE c.thread_key = $1
        """)

    static let deleteRow = PostgresSQL(18, [.int8, .bytea], "DELETE FROM checkpoint_rows WHERE thread_key = $1 AND id = $2")

    static let selectRowContent = PostgresSQL(
        19, [.int8, .bytea], "SELECT \(rowColumns) FROM checkpoint_rows c WHERE c.thread_key = $1 AND c.id = $2")

    /// A pruned row keeps the content later rows use, but leaves the history: no manifest.
    static let tombstoneRow = PostgresSQL(
        20, [.int8, .bytea, .bytea, .bytea, .int8],
        """
        UPDATE checkpoint_rows
        SET manifest = ''::bytea, metadata = NULL, pause = NULL, segments = $3, payload = $4, checksum = $5
        WHERE thread_key = $1 AND id = $2
        """)

    static let deleteAnswerOfRow = PostgresSQL(
        21, [.int8, .bytea], "DELETE FROM checkpoint_answers WHERE thread_key = $1 AND checkpoint_id = $2")

    // MARK: Retention by idleness

    /// The idle namespaces of a sweep batch: last activity before `$1`, after the cursor
    /// `$4`-`$6`, not waiting (or, with `$2`, waiting on a pause expired at `$3`), oldest first,
    /// `$7` at most, locked, skipping rows another transaction holds.
    private static let idleBatch = """
        SELECT t.key, t.thread, t.namespace, t.last_activity FROM checkpoint_threads t
        WHERE t.last_activity < $1 AND (t.last_activity, t.thread, t.namespace) > ($4, $5, $6)
          AND (t.waiting_pause_id IS NULL OR ($2 AND t.waiting_expires_at <= $3))
        """
    private static let idleTypes: [PostgresType] = [.int8, .bool, .float8, .int8, .text, .text, .int8]

    /// Deletes a batch of idle namespaces with their rows and answers, and reports each one's
    /// checkpoints and stored bytes.
    static let sweepDelete = PostgresSQL(
        25, idleTypes,
        """
        WITH doomed AS MATERIALIZED (
            \(idleBatch)
            ORDER BY t.last_activity, t.thread, t.namespace LIMIT $7
            FOR UPDATE SKIP LOCKED
        ),
        removed AS (
            DELETE FROM checkpoint_rows WHERE thread_key IN (SELECT key FROM doomed)
            RETURNING thread_key, (length(manifest) > 0)::int AS live,
                      coalesce(length(segments), 0) + coalesce(length(payload), 0) AS bytes
        ),
        answers AS (DELETE FROM checkpoint_answers WHERE thread_key IN (SELECT key FROM doomed)),
        threads AS (DELETE FROM checkpoint_threads WHERE key IN (SELECT key FROM doomed))
        SELECT d.key, d.thread, d.namespace, d.last_activity,
               coalesce((SELECT sum(r.live) FROM removed r WHERE r.thread_key = d.key), 0)::int8,
               coalesce((SELECT sum(r.bytes) FROM removed r WHERE r.thread_key = d.key), 0)::int8
        FROM doomed d ORDER BY d.last_activity, d.thread, d.namespace
        """)

    /// Locks a batch of idle namespaces that have something to prune.
    static let lockIdleForPruning = PostgresSQL(
        26, idleTypes,
        """
        \(idleBatch) AND t.checkpoint_count > 1
        ORDER BY t.last_activity, t.thread, t.namespace LIMIT $7
        FOR UPDATE SKIP LOCKED
        """)

    /// The stored bytes of one thread row.
    static let keyBytes = PostgresSQL(
        27, [.int8],
        "SELECT (coalesce(sum(length(segments)), 0) + coalesce(sum(length(payload)), 0))::int8 FROM checkpoint_rows WHERE thread_key = $1")

    // MARK: Session

    static let bindTenant = PostgresSQL(22, [.text], "SELECT set_config('checkpointing.tenant', $1, false)")

    static let roleBypassesSecurity = PostgresSQL(
        23, [], "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
}

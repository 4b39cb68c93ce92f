import Checkpointing
import CoreMetrics

extension PostgresCheckpointer {
    /// Settings of a ``PostgresCheckpointer``. Its `description` never shows the password.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// The server's host name or address, or a directory holding its Unix socket. Default: `localhost`.
        public var host: String = "localhost"
        /// The server's port. Default: 5432.
        public var port: Int = 5432
        /// The role to log in as.
        public var user: String
        /// The role's password, if it has one. Never logged.
        public var password: String?
        /// The database. Default: the user's name.
        public var database: String

        /// libpq's TLS settings, passed as they are: `sslmode` (`disable`, `allow`, `prefer`,
        /// `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert`, `sslkey`,
        /// `sslcrl`, `sslpassword`. Default: none (libpq's default, `prefer`).
        public var tls: [String: String] = [:]

        /// How long opening a connection may take before it fails with
        /// ``CheckpointError/Code/connectionFailed``; libpq's `connect_timeout`, in whole
        /// seconds, at least 2. Default: 5 seconds.
        public var connectTimeout: Duration = .seconds(5)

        /// The most connections the pool opens. Default: 10.
        public var poolMax: Int = 10
        /// Connections opened when the checkpointer opens (which also checks the settings).
        /// Default: 1.
        public var poolMin: Int = 1
        /// How long a call waits for a free connection before it fails with
        /// ``CheckpointError/Code/connectionFailed``. Default: 10 seconds.
        public var acquireTimeout: Duration = .seconds(10)

        /// Binds every connection to one tenant (a thread id's prefix before `:`): PostgreSQL's
        /// row-level security then shows and accepts only that tenant's rows. A thread of
        /// another tenant reads as missing and cannot be written. The role must not be a
        /// superuser or have `BYPASSRLS`, or opening fails. Default: `nil`, every tenant.
        public var tenant: String?

        /// The PostgreSQL schema that holds the checkpointer's tables, created when missing.
        /// A plain identifier (letters, digits, `_`). Default: `nil`, the role's `search_path`
        /// (usually `public`).
        public var schema: String?

        /// The `application_name` the server shows for the connections. Default: `checkpointing`.
        public var applicationName: String = "checkpointing"

        /// How long a connection's thread keeps polling for its next call before it parks (see
        /// `SQLiteCheckpointer.Configuration.idleSpin`). Default: 50 µs.
        public var idleSpin: Duration = .microseconds(50)

        /// How long a read may wait for the server's reply on the caller's own thread.
        ///
        /// A checkpoint read whose connection is free sends its query from the calling thread
        /// and, when the reply comes within this time, reads it there too: no thread hand-off,
        /// the cost of the raw libpq call. A reply that takes longer is received on the
        /// connection's thread with the task suspended, so a slow server or network keeps one
        /// of Swift's shared threads this long at most; while most recent replies take longer
        /// than this, reads stop waiting on the caller's thread (every 8th still does, to notice
        /// when they are quick again).
        /// Default: 500 µs; `0` hands every read to a connection's thread.
        public var inlineReplyWait: Duration = .microseconds(500)

        /// Bytes of channel content (list elements, stored values) kept in memory, so that
        /// reading a head does not fetch every segment of its lists again. Entries never go
        /// stale: stored content never changes. Default: 16 MiB; `0` disables it.
        public var contentCacheBytes: Int = 16 << 20

        /// Where the checkpointer's metrics go. Default: `nil`, the process-wide `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)?

        /// Creates a configuration; every other setting has its default.
        public init(host: String = "localhost", port: Int = 5432, user: String, password: String? = nil, database: String? = nil) {
            self.host = host
            self.port = port
            self.user = user
            self.password = password
            self.database = database ?? user
        }

        /// The URL parameters ``init(url:)`` reads.
        public static let urlParameters: Set<String> = [
            "pool_max", "pool_min", "acquire_timeout_ms", "connect_timeout", "sslmode", "sslrootcert", "sslcert",
            "sslkey", "sslcrl", "sslpassword", "application_name", "tenant", "schema", "idle_spin_us",
            "content_cache_bytes", "inline_reply_wait_us",
        ]

        /// Reads a `postgres://` or `postgresql://` URL:
        /// `postgres://user:password@host:5432/database?pool_max=10&sslmode=verify-full`.
        ///
        /// Parameters: `pool_max`, `pool_min`, `acquire_timeout_ms`, `connect_timeout` (seconds),
        /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `sslpassword`,
        /// `application_name`, `tenant`, `schema`, `idle_spin_us`, `content_cache_bytes`, `inline_reply_wait_us` (0 to 10,000). A password or
        /// user with reserved characters is percent-encoded.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for another scheme, a missing
        ///   user or host, or a bad, unknown or repeated parameter (and for the malformed parts
        ///   ``CheckpointerURL`` refuses: a port outside 1-65535, bad percent-encoding, a NUL).
        public init(url: CheckpointerURL) throws(CheckpointError) {
            guard url.scheme == "postgres" || url.scheme == "postgresql" else {
                throw CheckpointError(.invalidConfiguration, "expected a postgres: URL, got '\(url.scheme):'")
            }
            try url.rejectUnknownParameters(Self.urlParameters)
            guard let host = url.host, !host.isEmpty else {
                throw CheckpointError(
                    .invalidConfiguration, "a postgres URL needs a host: postgres://user:password@host:5432/database")
            }
            guard let user = url.user, !user.isEmpty else {
                throw CheckpointError(
                    .invalidConfiguration, "a postgres URL needs a user: postgres://user:password@host:5432/database")
            }
            var database = url.path
            if database.hasPrefix("/") { database.removeFirst() }
            guard !database.contains("/") else {
                throw CheckpointError(.invalidConfiguration, "a postgres URL's path is one database name")
            }
            self.init(
                host: host, port: url.port ?? 5432, user: user, password: url.password,
                database: database.isEmpty ? nil : database)
            for key in ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword"] {
                if let value = url.parameters[key] { tls[key] = value }
            }
            if let mode = tls["sslmode"],
                !["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(mode)
            {
                throw CheckpointError(
                    .invalidConfiguration,
                    "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not '\(mode)'")
            }
            if let value = try url.integerParameter("pool_max", in: 1...1000) { poolMax = value }
            if let value = try url.integerParameter("pool_min", in: 0...1000) { poolMin = value }
            if let value = try url.integerParameter("acquire_timeout_ms", in: 1...3_600_000) {
                acquireTimeout = .milliseconds(value)
            }
            if let value = try url.integerParameter("connect_timeout", in: 2...3600) { connectTimeout = .seconds(value) }
            if let value = url.parameters["application_name"] { applicationName = value }
            if let value = url.parameters["tenant"] { tenant = value }
            if let value = url.parameters["schema"] { schema = value }
            if let value = try url.integerParameter("idle_spin_us", in: 0...10_000) { idleSpin = .microseconds(value) }
            if let value = try url.integerParameter("inline_reply_wait_us", in: 0...10_000) {
                inlineReplyWait = .microseconds(value)
            }
            if let value = try url.integerParameter("content_cache_bytes", in: 0...(1 << 40)) {
                contentCacheBytes = value
            }
        }

        /// Checks the settings that do not depend on the server.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` naming the setting.
        package func validate() throws(CheckpointError) {
            guard (1...65535).contains(port) else {
                throw CheckpointError(.invalidConfiguration, "the Postgres port must be 1 to 65535, not \(port)")
            }
            guard poolMax >= 1 else { throw CheckpointError(.invalidConfiguration, "poolMax must be at least 1") }
            guard (0...poolMax).contains(poolMin) else {
                throw CheckpointError(.invalidConfiguration, "poolMin must be between 0 and poolMax (\(poolMax))")
            }
            guard connectTimeout >= .seconds(2) else {
                throw CheckpointError(.invalidConfiguration, "connectTimeout must be at least 2 seconds (libpq's minimum)")
            }
            if let tenant, tenant.isEmpty || tenant.contains(":") || tenant.utf8.contains(0) {
                throw CheckpointError(.invalidConfiguration, "a tenant is a non-empty thread id prefix without ':'")
            }
            if let schema {
                let valid =
                    !schema.isEmpty && schema.utf8.count <= 63 && schema.first.map { !$0.isNumber } == true
                    && schema.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                guard valid else {
                    throw CheckpointError(
                        .invalidConfiguration, "a schema is a plain identifier (letters, digits, _), not '\(schema)'")
                }
            }
            for text in [host, user, database, password ?? "", applicationName] + tls.values where text.utf8.contains(0) {
                throw CheckpointError(.invalidConfiguration, "a Postgres setting contains a NUL byte")
            }
        }

        /// libpq's connection keywords and values.
        var connectionParameters: [(String, String)] {
            var parameters: [(String, String)] = [
                ("host", host), ("port", String(port)), ("user", user), ("dbname", database),
                ("connect_timeout", String(max(2, connectTimeout.components.seconds))),
                ("application_name", applicationName), ("client_encoding", "UTF8"),
            ]
            if let password { parameters.append(("password", password)) }
            if let schema { parameters.append(("options", "-c search_path=\(schema)")) }
            for key in tls.keys.sorted() { parameters.append((key, tls[key] ?? "")) }
            return parameters
        }

        /// `postgres://user:***@host:port/database`, with the pool and TLS settings.
        public var description: String {
            var text = "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
            text += "?pool_max=\(poolMax)&pool_min=\(poolMin)"
            if let mode = tls["sslmode"] { text += "&sslmode=\(mode)" }
            if let tenant { text += "&tenant=\(tenant)" }
            if let schema { text += "&schema=\(schema)" }
            return text
        }
    }
}

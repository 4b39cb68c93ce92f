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

        /// More servers to connect to, in order, when ``host`` cannot be reached or accepts
        /// only reads: the standbys that may be promoted when the primary fails.
        ///
        /// With any, every connection goes to the first server that accepts writes (libpq's
        /// `target_session_attrs=read-write`, each server tried within ``connectTimeout``), so
        /// after a failover the pool's new connections reach the promoted standby by
        /// themselves, with no restart. Calls made while no server accepts writes fail with
        /// ``CheckpointError/Code/connectionFailed`` (retryable). In a URL:
        /// `postgres://user@primary:5432,standby:5432/db`. Default: none.
        public var failoverServers: [Server] = []

        /// Servers for the calls that may read slightly old data: ``PostgresCheckpointer/history(thread:namespace:before:limit:where:)``,
        /// ``PostgresCheckpointer/pausedThreads(_:)``, ``PostgresCheckpointer/threads(_:)``
        /// and ``PostgresCheckpointer/storageStatistics(thread:)``. Reads of a head and
        /// everything a put, a resume, a prune or a deletion depends on stay on the primary,
        /// so an agent always reads its own writes.
        ///
        /// A replica lags its primary: these calls may miss the newest checkpoints and show a
        /// pause that was answered a moment ago (answering it again fails with
        /// ``CheckpointError/Code/alreadyResumed`` or ``CheckpointError/Code/stalePause``, as
        /// it would for any late answer). The first server that answers is used, with the
        /// primary's user, password, database and TLS settings, in a pool of
        /// ``poolMax`` connections of its own. While no replica can be reached, or one cancels
        /// a read for replication, these calls read from the primary (and
        /// ``PostgresCheckpointer/health()`` reports `degraded`). In a URL:
        /// `replicas=replica1:5432,replica2:5432`. Default: none, every call on the primary.
        public var replicas: [Server] = []

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

        /// What stands between the checkpointer and PostgreSQL: whether a connection keeps its
        /// session (prepared statements, settings) from one transaction to the next.
        /// Default: ``Pooler/automatic``.
        public var pooler: Pooler = .automatic

        /// TCP keepalives on every connection, so that a connection a proxy, a NAT or a
        /// firewall would drop for idleness stays alive, and one whose peer vanished is found
        /// dead. Default: on, first probe after 30 s idle, then every 10 s, dead after 3
        /// unanswered; `nil` leaves the operating system's settings (libpq's default).
        public var keepalives: Keepalives? = Keepalives()

        /// How long a pool connection may sit unused before the next call closes it and opens
        /// a new one. Keep it below the idle limit of what stands between the app and the
        /// server (PgBouncer's `client_idle_timeout`, a cloud proxy's idle timeout), so that a
        /// connection it would drop is replaced before a call uses it; a connection the server
        /// or the pooler did close is found closed and replaced before use anyway.
        /// Default: 5 minutes; `nil` for no limit.
        public var idleTimeout: Duration? = .seconds(300)

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
            "content_cache_bytes", "inline_reply_wait_us", "pooler", "keepalives", "keepalives_idle",
            "keepalives_interval", "keepalives_count", "idle_timeout", "replicas", "target_session_attrs",
        ]

        /// Reads a `postgres://` or `postgresql://` URL:
        /// `postgres://user:password@host:5432/database?pool_max=10&sslmode=verify-full`.
        ///
        /// Parameters: `pool_max`, `pool_min`, `acquire_timeout_ms`, `connect_timeout` (seconds),
        /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `sslpassword`,
        /// `application_name`, `tenant`, `schema`, `idle_spin_us`, `content_cache_bytes`,
        /// `inline_reply_wait_us` (0 to 10,000), `pooler` (`automatic`, `session`,
        /// `transaction`), `keepalives` (`0` or `1`), `keepalives_idle`, `keepalives_interval`
        /// and `keepalives_count` (seconds, and probes, as libpq reads them), `idle_timeout`
        /// (seconds, `0` for none), `replicas` (`host:port` entries separated by commas),
        /// `target_session_attrs` (`read-write`, the one value that fits a checkpointer, and
        /// the default with several hosts). A password or user with reserved characters is
        /// percent-encoded. Several hosts separated by commas (`primary:5432,standby:5432`)
        /// are the primary and its ``failoverServers``.
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
            failoverServers = url.hosts.dropFirst().map { Server(host: $0.name, port: $0.port ?? 5432) }
            if let list = url.parameters["replicas"] {
                replicas = try Server.list(list, "replicas")
            }
            if let value = url.parameters["target_session_attrs"], value != "read-write" {
                throw CheckpointError(
                    .invalidConfiguration,
                    "target_session_attrs must be read-write (a checkpointer writes; list read replicas in replicas=), not '\(value)'")
            }
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
            if let value = url.parameters["pooler"] {
                guard let mode = Pooler(rawValue: value) else {
                    throw CheckpointError(
                        .invalidConfiguration, "pooler must be automatic, session or transaction, not '\(value)'")
                }
                pooler = mode
            }
            if let value = try url.integerParameter("keepalives", in: 0...1) { keepalives = value == 0 ? nil : Keepalives() }
            let idle = try url.integerParameter("keepalives_idle", in: 1...86_400)
            let interval = try url.integerParameter("keepalives_interval", in: 1...86_400)
            let count = try url.integerParameter("keepalives_count", in: 1...100)
            if idle != nil || interval != nil || count != nil {
                guard var settings = keepalives else {
                    throw CheckpointError(
                        .invalidConfiguration, "keepalives_idle, keepalives_interval and keepalives_count need keepalives on")
                }
                if let idle { settings.idle = .seconds(idle) }
                if let interval { settings.interval = .seconds(interval) }
                if let count { settings.count = count }
                keepalives = settings
            }
            if let value = try url.integerParameter("idle_timeout", in: 0...86_400) {
                idleTimeout = value == 0 ? nil : .seconds(value)
            }
            // Settings that conflict (a transaction pooler with `schema`) are refused with the
            // URL, not only when the checkpointer opens.
            try validate()
        }

        /// Checks the settings that do not depend on the server.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` naming the setting.
        package func validate() throws(CheckpointError) {
            for server in [Server(host: host, port: port)] + failoverServers + replicas {
                guard (1...65535).contains(server.port) else {
                    throw CheckpointError(.invalidConfiguration, "a Postgres port must be 1 to 65535, not \(server.port)")
                }
                guard !server.host.isEmpty, !server.host.contains(",") else {
                    throw CheckpointError(
                        .invalidConfiguration,
                        "a Postgres host is one name or address, not '\(server.host)': list more servers in failoverServers or replicas")
                }
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
            if let keepalives {
                guard keepalives.idle >= .seconds(1), keepalives.interval >= .seconds(1), keepalives.count >= 1 else {
                    throw CheckpointError(
                        .invalidConfiguration, "keepalives need an idle time and an interval of at least 1 second, and a count of at least 1")
                }
            }
            if let idleTimeout, idleTimeout <= .zero {
                throw CheckpointError(.invalidConfiguration, "idleTimeout must be positive, or nil for none")
            }
            if pooler == .transaction, tenant != nil {
                throw CheckpointError(
                    .invalidConfiguration,
                    "tenant mode cannot run through a transaction pooler: its row-level security needs a session setting the pooler does not keep; connect directly or through a session pooler"
                )
            }
            if pooler == .transaction, schema != nil {
                throw CheckpointError(
                    .invalidConfiguration,
                    "schema cannot be set through a transaction pooler, which keeps no search_path; set the role's instead (ALTER ROLE ... SET search_path = ...)"
                )
            }
            let hosts = [host] + failoverServers.map(\.host) + replicas.map(\.host)
            for text in hosts + [user, database, password ?? "", applicationName] + tls.values where text.utf8.contains(0) {
                throw CheckpointError(.invalidConfiguration, "a Postgres setting contains a NUL byte")
            }
        }

        /// libpq's connection keywords and values for the primary (and its failover servers).
        var connectionParameters: [(String, String)] {
            var parameters = parameters(for: [Server(host: host, port: port)] + failoverServers)
            if !failoverServers.isEmpty { parameters.append(("target_session_attrs", "read-write")) }
            return parameters
        }

        /// libpq's connection keywords and values for the replicas, `nil` without any.
        var replicaParameters: [(String, String)]? {
            replicas.isEmpty ? nil : parameters(for: replicas)
        }

        private func parameters(for servers: [Server]) -> [(String, String)] {
            var parameters: [(String, String)] = [
                ("host", servers.map(\.host).joined(separator: ",")),
                ("port", servers.map { String($0.port) }.joined(separator: ",")), ("user", user), ("dbname", database),
                ("connect_timeout", String(max(2, connectTimeout.components.seconds))),
                ("application_name", applicationName), ("client_encoding", "UTF8"),
            ]
            if let password { parameters.append(("password", password)) }
            if let schema { parameters.append(("options", "-c search_path=\(schema)")) }
            if let keepalives {
                parameters += [
                    ("keepalives", "1"), ("keepalives_idle", String(keepalives.idle.components.seconds)),
                    ("keepalives_interval", String(keepalives.interval.components.seconds)),
                    ("keepalives_count", String(keepalives.count)),
                ]
            }
            for key in tls.keys.sorted() { parameters.append((key, tls[key] ?? "")) }
            return parameters
        }

        /// `postgres://user:***@host:port/database`, with the pool and TLS settings.
        public var description: String {
            let servers = ([Server(host: host, port: port)] + failoverServers).map(\.description).joined(separator: ",")
            var text = "postgres://\(user)\(password == nil ? "" : ":***")@\(servers)/\(database)"
            text += "?pool_max=\(poolMax)&pool_min=\(poolMin)"
            if !replicas.isEmpty { text += "&replicas=\(replicas.map(\.description).joined(separator: ","))" }
            if let mode = tls["sslmode"] { text += "&sslmode=\(mode)" }
            if let tenant { text += "&tenant=\(tenant)" }
            if let schema { text += "&schema=\(schema)" }
            if pooler != .automatic { text += "&pooler=\(pooler.rawValue)" }
            return text
        }
    }

    /// A PostgreSQL server's address.
    public struct Server: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address, or a directory holding the server's Unix socket.
        public var host: String
        /// The port. Default: 5432.
        public var port: Int

        /// A server's address.
        public init(host: String, port: Int = 5432) {
            self.host = host
            self.port = port
        }

        /// `host:port`.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        /// Reads `host:port,host:port` (a port defaults to 5432; an IPv6 address in brackets).
        static func list(_ text: String, _ parameter: String) throws(CheckpointError) -> [Server] {
            var servers: [Server] = []
            for entry in RawURLHostList.split(Substring(text)) {
                let host = entry.host.hasPrefix("[") && entry.host.hasSuffix("]") ? entry.host.dropFirst().dropLast() : entry.host
                guard !host.isEmpty else {
                    throw CheckpointError(
                        .invalidConfiguration, "URL parameter '\(parameter)' is a list of host:port, with no empty entry")
                }
                var port = 5432
                if let text = entry.port {
                    guard let value = Int(text), (1...65535).contains(value) else {
                        throw CheckpointError(
                            .invalidConfiguration, "a port in URL parameter '\(parameter)' must be 1 to 65535, not '\(text)'")
                    }
                    port = value
                }
                servers.append(Server(host: String(host), port: port))
            }
            return servers
        }
    }

    /// What stands between the checkpointer and PostgreSQL.
    public enum Pooler: String, Sendable, CaseIterable {
        /// Found out per connection when it opens: when the server's process id differs from
        /// the one the connection was given (a pooler answered the connection), the
        /// connection works as ``transaction`` does, since a pooler may pool transactions;
        /// otherwise as ``session``. Tenant mode refuses a pooler found this way unless it is
        /// declared ``session``. A named statement the server refuses as missing or as
        /// prepared already (a pooler this did not find) turns the connection to unnamed
        /// statements, and the statement runs again.
        case automatic
        /// A direct connection, or a pooler that gives each client connection its own server
        /// connection for the whole session (PgBouncer's `pool_mode=session`): statements are
        /// prepared once per connection and run by name, and tenant mode's session setting holds.
        case session
        /// A pooler that lends a server connection for one transaction (PgBouncer's
        /// `pool_mode=transaction`, cloud poolers in transaction mode): every statement is sent
        /// whole and unnamed with its parameters (`PQexecParams`: one round trip, but parsed
        /// and planned by the server each time), nothing is kept in the session, and
        /// migrations take a transaction's advisory lock. ``Configuration/tenant`` and
        /// ``Configuration/schema`` cannot be used (set the role's `search_path` instead).
        case transaction
    }

    /// TCP keepalive settings (libpq's `keepalives_idle`, `keepalives_interval`,
    /// `keepalives_count`).
    public struct Keepalives: Sendable, Equatable {
        /// Idle time before the first probe. Default: 30 seconds.
        public var idle: Duration
        /// Time between probes. Default: 10 seconds.
        public var interval: Duration
        /// Unanswered probes before the connection counts as dead. Default: 3.
        public var count: Int

        /// Keepalive settings; whole seconds.
        public init(idle: Duration = .seconds(30), interval: Duration = .seconds(10), count: Int = 3) {
            self.idle = idle
            self.interval = interval
            self.count = count
        }
    }
}

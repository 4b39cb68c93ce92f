import Checkpointing
import CoreMetrics
import Foundation

extension RedisCachedCheckpointer {
    /// Settings of a ``RedisCachedCheckpointer``. Its `description` never shows the password.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// Redis's host. Default: `localhost`.
        public var host: String = "localhost"
        /// Redis's port. Default: 6379.
        public var port: Int = 6379
        /// The password sent with `AUTH`, if any. Never logged.
        public var password: String?
        /// The database index sent with `SELECT`. Default: 0.
        public var database: Int = 0
        /// The prefix of every key, so that several applications share one Redis. Default: `ckpt`.
        public var prefix: String = "ckpt"
        /// How long an entry lives after it was written. Default: 5 minutes.
        public var timeToLive: Duration = .seconds(300)
        /// Whether a hit restarts the entry's time to live. Default: false.
        public var refreshOnRead = false
        /// How long connecting or one command may take before Redis counts as down and the
        /// call goes to the base store. Default: 200 ms.
        public var timeout: Duration = .milliseconds(200)
        /// After Redis failed, how long calls skip it (and pay no timeout) before one call
        /// tries it again. Default: 1 second.
        public var breakerCooldown: Duration = .seconds(1)
        /// The most Redis connections. Default: 4.
        public var poolMax: Int = 4
        /// A secret mixed into every entry's integrity check (a keyed SipHash), so that someone
        /// who can write to Redis cannot forge an entry. Default: `nil`, an unkeyed check, which
        /// still catches any change or truncation not made with intent. Never logged.
        public var integrityKey: Data?
        /// How many threads' latest heads the process keeps in memory to build the entry of
        /// its next put without reading the store back. Default: 1024.
        public var localHeads: Int = 1024
        /// How long a connection may sit unused before the next call replaces it with a new
        /// one. Below the idle limit of whatever lies between the process and Redis (a cloud
        /// proxy, a NAT gateway, a firewall), a connection they would drop without a word is
        /// never used; one Redis itself closed (its `timeout`) is found closed before use
        /// anyway. Default: 300 seconds; `nil` for no limit.
        public var idleTimeout: Duration? = .seconds(300)
        /// How long a connection's thread keeps polling for its next call before it parks.
        /// Default: 50 µs.
        public var idleSpin: Duration = .microseconds(50)
        /// How long a cached read may wait for Redis's reply on the caller's own thread: a read
        /// whose connection is free sends its GET from the calling thread and reads a reply that
        /// comes within this time there too, with no thread hand-off; a later reply is received
        /// on the connection's thread with the task suspended (see
        /// `PostgresCheckpointer.Configuration.inlineReplyWait`). Default: 500 µs; `0` hands
        /// every read to a connection's thread.
        public var inlineReplyWait: Duration = .microseconds(500)
        /// Where the cache's metrics go (`checkpoint_cache_hits`, `checkpoint_cache_misses`,
        /// `checkpoint_cache_fallbacks`, `checkpoint_cache_own_updates_in_flight`,
        /// `checkpoint_cache_corrupt_entries`). Default: `nil`,
        /// the process-wide `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)?

        /// Creates a configuration; every other setting has its default.
        public init(host: String = "localhost", port: Int = 6379, password: String? = nil, database: Int = 0) {
            self.host = host
            self.port = port
            self.password = password
            self.database = database
        }

        /// The URL parameters ``init(url:environment:)`` reads.
        public static let urlParameters: Set<String> = [
            "ttl", "prefix", "refresh_on_read", "timeout_ms", "breaker_cooldown_ms", "pool_max", "integrity_key_env",
            "local_heads", "inline_reply_wait_us", "idle_timeout",
        ]

        /// Reads a `redis://` URL: `redis://:password@host:6379/0?ttl=300&prefix=ckpt`.
        ///
        /// Parameters: `ttl` (seconds), `prefix`, `refresh_on_read` (`true`/`false`),
        /// `timeout_ms`, `breaker_cooldown_ms`, `pool_max`, `local_heads`,
        /// `inline_reply_wait_us` (0 to 10,000), `idle_timeout` (seconds, 0 to 86,400; 0 for
        /// none), and
        /// `integrity_key_env` (the name of an environment variable holding the integrity key,
        /// base64). The path is the database index.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for another scheme, a missing
        ///   host, a bad database index, a bad, unknown or repeated parameter, an integrity key
        ///   variable that is unset or not base64 (and for the malformed parts
        ///   ``CheckpointerURL`` refuses).
        public init(url: CheckpointerURL, environment: [String: String] = ProcessInfo.processInfo.environment)
            throws(CheckpointError)
        {
            guard url.scheme == "redis" else {
                throw CheckpointError(.invalidConfiguration, "expected a redis: URL, got '\(url.scheme):'")
            }
            try url.rejectUnknownParameters(Self.urlParameters)
            try url.requireOneHost()
            var path = url.path
            if path.hasPrefix("/") { path.removeFirst() }
            guard path.isEmpty || Int(path).map({ (0...1_000_000).contains($0) }) == true else {
                throw CheckpointError(.invalidConfiguration, "a redis URL's path is a database index, not '\(path)'")
            }
            guard let host = url.host, !host.isEmpty else {
                throw CheckpointError(.invalidConfiguration, "a redis URL needs a host: redis://:password@host:6379/0")
            }
            self.init(host: host, port: url.port ?? 6379, password: url.password, database: Int(path) ?? 0)
            if let seconds = try url.integerParameter("ttl", in: 1...31_536_000) { timeToLive = .seconds(seconds) }
            if let prefix = url.parameters["prefix"] { self.prefix = prefix }
            if let refresh = url.parameters["refresh_on_read"] {
                guard let value = Bool(refresh.lowercased()) else {
                    throw CheckpointError(.invalidConfiguration, "refresh_on_read must be true or false, not '\(refresh)'")
                }
                refreshOnRead = value
            }
            if let value = try url.integerParameter("timeout_ms", in: 1...60_000) { timeout = .milliseconds(value) }
            if let value = try url.integerParameter("breaker_cooldown_ms", in: 1...3_600_000) {
                breakerCooldown = .milliseconds(value)
            }
            if let value = try url.integerParameter("pool_max", in: 1...256) { poolMax = value }
            if let value = try url.integerParameter("local_heads", in: 0...1_000_000) { localHeads = value }
            if let value = try url.integerParameter("inline_reply_wait_us", in: 0...10_000) {
                inlineReplyWait = .microseconds(value)
            }
            if let value = try url.integerParameter("idle_timeout", in: 0...86_400) {
                idleTimeout = value == 0 ? nil : .seconds(value)
            }
            if let variable = url.parameters["integrity_key_env"] {
                guard let text = environment[variable], let key = Data(base64Encoded: text), !key.isEmpty else {
                    throw CheckpointError(
                        .invalidConfiguration, "integrity_key_env names \(variable), which does not hold a base64 key")
                }
                integrityKey = key
            }
            try validate()
        }

        /// Checks the settings before the cache connects.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` naming the setting.
        package func validate() throws(CheckpointError) {
            guard (1...65535).contains(port) else {
                throw CheckpointError(.invalidConfiguration, "the Redis port must be 1 to 65535, not \(port)")
            }
            guard !host.isEmpty, !host.utf8.contains(0) else {
                throw CheckpointError(.invalidConfiguration, "the Redis host must be non-empty, without NUL")
            }
            guard !prefix.isEmpty, !prefix.utf8.contains(0) else {
                throw CheckpointError(.invalidConfiguration, "the Redis key prefix must be non-empty")
            }
            guard poolMax >= 1 else { throw CheckpointError(.invalidConfiguration, "poolMax must be at least 1") }
            guard timeToLive >= .seconds(1) else {
                throw CheckpointError(.invalidConfiguration, "timeToLive must be at least one second")
            }
            if let idleTimeout, idleTimeout <= .zero {
                throw CheckpointError(.invalidConfiguration, "idleTimeout must be positive, or nil for none")
            }
            if let integrityKey, !(16...64).contains(integrityKey.count) {
                throw CheckpointError(.invalidConfiguration, "the integrity key must have 16 to 64 bytes")
            }
        }

        /// `redis://:***@host:port/db?ttl=...&prefix=...&idle_timeout=...`.
        public var description: String {
            "redis://\(password == nil ? "" : ":***@")\(host):\(port)/\(database)?ttl=\(timeToLive.components.seconds)&prefix=\(prefix)"
                + "&idle_timeout=\(idleTimeout?.components.seconds ?? 0)"
        }
    }
}

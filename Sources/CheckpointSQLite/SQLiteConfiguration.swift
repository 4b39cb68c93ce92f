import Checkpointing
import CoreMetrics

extension SQLiteCheckpointer {
    /// How durable a commit is: SQLite's `PRAGMA synchronous`, in WAL mode.
    public struct Synchronous: Hashable, Sendable, CustomStringConvertible {
        let pragma: String

        /// No fsync: fastest; a power loss or OS crash can lose recent commits or corrupt the file.
        public static let off = Synchronous(pragma: "OFF")
        /// fsync at WAL checkpoints only: a commit survives a process crash, and a power loss can
        /// lose the last commits but never corrupts the file. The default.
        public static let normal = Synchronous(pragma: "NORMAL")
        /// fsync on every commit: a commit also survives a power loss.
        public static let full = Synchronous(pragma: "FULL")
        /// Like ``full``, and also syncs the directory after a WAL reset.
        public static let extra = Synchronous(pragma: "EXTRA")

        /// Parses `off`, `normal`, `full` or `extra` (any case).
        public init?(_ text: String) {
            switch text.lowercased() {
            case "off": self = .off
            case "normal": self = .normal
            case "full": self = .full
            case "extra": self = .extra
            default: return nil
            }
        }

        private init(pragma: String) { self.pragma = pragma }

        /// The setting's name, as the URL parameter takes it.
        public var description: String { pragma.lowercased() }
    }

    /// Settings of an ``SQLiteCheckpointer``.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// The database file; created with its directory's permissions when missing. Always a
        /// file's path: one that starts with `file:` is not read as an SQLite URI.
        public var path: String
        /// Durability of a commit. Default: ``Synchronous/normal``.
        public var synchronous: Synchronous = .normal
        /// How long a write waits for another process's write lock before failing with
        /// ``CheckpointError/Code/busy`` (retryable; nothing was written). Default: 5 seconds.
        public var busyTimeout: Duration = .seconds(5)
        /// Read connections, each on its own thread, so reads run beside the one writer. Default: 2.
        public var readerCount: Int = 2
        /// WAL size, in pages, after which a background connection checkpoints the WAL into the
        /// database file. SQLite's automatic checkpoint, which runs inside the commit that crosses
        /// its threshold and stalls it, is turned off. Default: 1000 (about 4 MB).
        public var walCheckpointPages: Int = 1000

        /// How long a connection's thread keeps polling for its next call before it parks.
        /// Waking a parked thread costs tens of microseconds on a virtual machine, so a burst of
        /// calls (a read, then a save) runs faster when the thread is still awake; the price is
        /// up to this much CPU time after each call. `.zero` parks at once. Default: 50 µs.
        public var idleSpin: Duration = .microseconds(50)

        /// Bytes of channel content (list elements such as conversation messages, and stored
        /// values) kept in memory, so that reading a thread's head does not re-read every segment
        /// of its lists. Entries never go stale: stored content never changes. The head and its
        /// manifest are always read from the file. `0` disables the cache. Default: 16 MiB.
        public var contentCacheBytes: Int = 16 << 20

        /// Where the checkpointer's metrics go (`checkpoint_put_duration`,
        /// `checkpoint_put_bytes`, `checkpoint_put_conflicts`). Default: `nil`, the process-wide
        /// `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)?

        /// Creates a configuration for a database file; every other setting has its default.
        public init(path: String) {
            self.path = path
        }

        /// Reads a `sqlite://` URL: `sqlite:///absolute/path.db`, `sqlite:relative/path.db`, or
        /// `sqlite://./relative.db`, with optional parameters `synchronous` (off, normal, full,
        /// extra), `busy_timeout_ms`, `readers`, `wal_checkpoint_pages`, `idle_spin_us` and
        /// `content_cache_bytes`.
        ///
        /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for another scheme, a missing
        ///   path, a host other than `.`/`localhost`, a user, password or port, or a bad, unknown
        ///   or repeated parameter (and for the malformed parts ``CheckpointerURL`` refuses).
        public init(url: CheckpointerURL) throws(CheckpointError) {
            guard url.scheme == "sqlite" else {
                throw CheckpointError(.invalidConfiguration, "expected a sqlite: URL, got '\(url.scheme):'")
            }
            try url.rejectUnknownParameters([
                "synchronous", "busy_timeout_ms", "readers", "wal_checkpoint_pages", "idle_spin_us",
                "content_cache_bytes",
            ])
            try url.requireOneHost()
            guard url.user == nil, url.password == nil, url.port == nil else {
                throw CheckpointError(
                    .invalidConfiguration, "a sqlite URL names a local file: it takes no user, password or port")
            }
            var path = url.path
            switch url.host {
            case nil, "", "localhost": break
            case ".":
                path = "." + path
            default:
                throw CheckpointError(
                    .invalidConfiguration,
                    "a sqlite URL names a local file: use sqlite:///absolute/path.db or sqlite://./relative.db")
            }
            guard !path.isEmpty, path != "/" else {
                throw CheckpointError(.invalidConfiguration, "a sqlite URL needs a file path, e.g. sqlite:///tmp/agent.db")
            }
            self.init(path: path)
            if let text = url.parameters["synchronous"] {
                guard let value = Synchronous(text) else {
                    throw CheckpointError(
                        .invalidConfiguration, "synchronous must be off, normal, full or extra, not '\(text)'")
                }
                synchronous = value
            }
            if let milliseconds = try url.integerParameter("busy_timeout_ms", in: 0...3_600_000) {
                busyTimeout = .milliseconds(milliseconds)
            }
            if let readers = try url.integerParameter("readers", in: 1...64) {
                readerCount = readers
            }
            if let pages = try url.integerParameter("wal_checkpoint_pages", in: 1...10_000_000) {
                walCheckpointPages = pages
            }
            if let microseconds = try url.integerParameter("idle_spin_us", in: 0...10_000) {
                idleSpin = .microseconds(microseconds)
            }
            if let bytes = try url.integerParameter("content_cache_bytes", in: 0...(1 << 40)) {
                contentCacheBytes = bytes
            }
        }

        /// The configuration as a `sqlite:` URL that ``init(url:)`` reads back (the metrics
        /// factory aside): `sqlite:///var/lib/agent.db?synchronous=full`, with the settings
        /// that are not their defaults.
        public var description: String {
            let place = path.hasPrefix("/") || path.hasPrefix("./") ? path : "./" + path
            var text = "sqlite://" + (place.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? place)
            let defaults = Configuration(path: path)
            var parameters: [String] = []
            if synchronous != defaults.synchronous { parameters.append("synchronous=\(synchronous)") }
            if busyTimeout != defaults.busyTimeout {
                parameters.append("busy_timeout_ms=\(busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000)")
            }
            if readerCount != defaults.readerCount { parameters.append("readers=\(readerCount)") }
            if walCheckpointPages != defaults.walCheckpointPages { parameters.append("wal_checkpoint_pages=\(walCheckpointPages)") }
            if idleSpin != defaults.idleSpin {
                parameters.append("idle_spin_us=\(idleSpin.components.seconds * 1_000_000 + idleSpin.components.attoseconds / 1_000_000_000_000)")
            }
            if contentCacheBytes != defaults.contentCacheBytes { parameters.append("content_cache_bytes=\(contentCacheBytes)") }
            if !parameters.isEmpty { text += "?" + parameters.joined(separator: "&") }
            return text
        }
    }
}

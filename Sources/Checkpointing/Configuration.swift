import Foundation
import Logging

/// A parsed checkpointer URL such as `sqlite:///var/lib/agent/checkpoints.db?synchronous=full`.
///
/// Every part is checked before anything uses it: percent-encoding that is not `%` and two
/// hex digits or does not decode to UTF-8, a NUL anywhere (C strings would end there and open
/// a shorter path), a port outside 1-65535, a fragment (`#...`, which would cut a path short),
/// and a parameter given twice are all ``CheckpointError/Code/invalidConfiguration``, with a
/// message that names the part and never the password. Each backend checks the rest (its
/// parameters, their ranges, a host where it needs one).
///
/// Its ``description`` hides any password.
public struct CheckpointerURL: Sendable, Hashable, CustomStringConvertible {
    /// The scheme, lowercased (`memory`, `sqlite`, ...).
    public var scheme: String
    /// The user, when the URL names one.
    public var user: String?
    /// The password, when the URL holds one. Never printed.
    public var password: String?
    /// The host, when the URL names one (empty for `sqlite:///path`).
    public var host: String?
    /// The port, when the URL names one: 1 to 65535.
    public var port: Int?
    /// Every host the URL names, in order, each with its port when it has one. One for most
    /// URLs (``host`` and ``port``); several for libpq's multi-host form,
    /// `postgres://user@a:5432,b:5433/db`, where ``host`` and ``port`` are the first. Empty
    /// when the URL names no host. Backends that connect to one server refuse several
    /// (``requireOneHost()``).
    public var hosts: [Host]

    /// A host a URL names, with its port when it has one.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address, percent-decoded.
        public var name: String
        /// The port, when the URL gives one: 1 to 65535.
        public var port: Int?

        /// A host and, optionally, its port.
        public init(name: String, port: Int? = nil) {
            self.name = name
            self.port = port
        }

        /// `name:port`, or `name` without a port.
        public var description: String { port.map { "\(name):\($0)" } ?? name }
    }
    /// The percent-decoded path.
    public var path: String
    /// The percent-decoded query parameters; each name appears at most once in the URL.
    public var parameters: [String: String]

    /// Parses and checks a URL.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the text is not a URL with
    ///   a scheme, or when a part is malformed (see ``CheckpointerURL``).
    public init(_ text: String) throws(CheckpointError) {
        // libpq's multi-host form: URLComponents reads one host, so it reads the URL with the
        // first, and the others are checked and read here.
        let listed = RawURLParts(text)
        var parsedText = text
        var otherHosts: [(host: Substring, port: Substring?)] = []
        if let range = listed.hostListRange, text[range].unicodeScalars.contains(",") {
            let entries = RawURLHostList.split(text[range])
            guard entries.allSatisfy({ !$0.host.isEmpty }) else {
                throw CheckpointError(
                    .invalidConfiguration, "a URL's host list has an empty entry: write a,b or a:5432,b:5433")
            }
            otherHosts = Array(entries.dropFirst())
            let first = entries[0]
            parsedText.replaceSubrange(range, with: first.port.map { "\(first.host):\($0)" } ?? String(first.host))
        }
        guard let components = URLComponents(string: parsedText), let scheme = components.scheme, !scheme.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration,
                "'\(Self.redact(text))' is not a checkpointer URL (expected e.g. sqlite:///path/to/file.db or memory:)")
        }
        self.scheme = scheme.lowercased()
        let raw = RawURLParts(parsedText)
        let name = "the \(self.scheme) URL"
        func check(_ part: Substring?, _ what: String) throws(CheckpointError) {
            guard let part else { return }
            guard RawURLParts.isValidPercentEncoding(part) else {
                throw CheckpointError(
                    .invalidConfiguration,
                    "the \(what) of \(name) is not valid percent-encoding: '%' must be followed by two hex digits")
            }
            // URLComponents reads a part whose bytes are not UTF-8 once decoded (%FF) as missing.
            guard let decoded = part.removingPercentEncoding else {
                throw CheckpointError(
                    .invalidConfiguration, "the \(what) of \(name) is not UTF-8 once percent-decoded")
            }
            guard !part.utf8.contains(0), !decoded.utf8.contains(0) else {
                throw CheckpointError(
                    .invalidConfiguration,
                    "the \(what) of \(name) contains a NUL character (%00), which would cut it short")
            }
        }
        try check(raw.user, "user")
        try check(raw.password, "password")
        try check(raw.host, "host")
        try check(raw.path, "path")
        if raw.fragment != nil {
            throw CheckpointError(
                .invalidConfiguration, "\(name) has a fragment ('#...'): write a '#' in a path or value as %23")
        }
        func port(_ text: Substring?) throws(CheckpointError) -> Int? {
            guard let text, !text.isEmpty else { return nil }
            guard text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), let port = Int(text), (1...65535).contains(port)
            else {
                throw CheckpointError(
                    .invalidConfiguration, "the port of \(name) must be a number from 1 to 65535, not '\(text.prefix(20))'")
            }
            return port
        }
        self.port = try port(raw.port)
        var hosts: [Host] = []
        for other in otherHosts {
            try check(other.host, "host")
            guard let decoded = other.host.removingPercentEncoding, !other.host.hasPrefix("[") || other.host.hasSuffix("]")
            else {
                throw CheckpointError(.invalidConfiguration, "the host '\(other.host.prefix(40))' of \(name) is malformed")
            }
            hosts.append(Host(name: RawURLHostList.unbracketed(decoded), port: try port(other.port)))
        }
        var parameters: [String: String] = [:]
        for item in raw.queryItems {
            guard RawURLParts.isValidPercentEncoding(item.name), let parameter = item.name.removingPercentEncoding,
                !parameter.utf8.contains(0)
            else {
                throw CheckpointError(
                    .invalidConfiguration, "a parameter name of \(name) is not valid percent-encoding or contains NUL")
            }
            try check(item.value, "URL parameter '\(parameter)'")
            let value = item.value.map { $0.removingPercentEncoding ?? String($0) } ?? ""
            guard parameters.updateValue(value, forKey: parameter) == nil else {
                throw CheckpointError(
                    .invalidConfiguration, "URL parameter '\(parameter)' is given twice in \(name); give it once")
            }
        }
        self.user = components.user
        self.password = components.password
        self.host = components.host
        self.path = components.path
        self.parameters = parameters
        if let host = components.host, !host.isEmpty {
            hosts.insert(Host(name: RawURLHostList.unbracketed(host), port: self.port), at: 0)
        }
        self.hosts = hosts
    }

    /// Fails when the URL names more than one host, for backends that connect to one server.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration``.
    public func requireOneHost() throws(CheckpointError) {
        guard hosts.count <= 1 else {
            throw CheckpointError(
                .invalidConfiguration,
                "a \(scheme) URL names one host, not \(hosts.count) (\(hosts.map(\.description).joined(separator: ",")))")
        }
    }

    /// The URL with its password (and any parameter whose name says password) replaced by `***`.
    public var description: String {
        var components = URLComponents()
        components.scheme = scheme
        components.user = user
        // URLComponents leaves a ':' in a user as it is, where it would read as the start of
        // the password: written %3A, the description reads back with the same user.
        components.percentEncodedUser = components.percentEncodedUser?.replacingOccurrences(of: ":", with: "%3A")
        components.password = password == nil ? nil : "***"
        components.host = host
        components.port = port
        components.path = path
        if !parameters.isEmpty {
            components.queryItems = parameters.keys.sorted().map { name in
                URLQueryItem(name: name, value: name.lowercased().contains("password") ? "***" : parameters[name])
            }
        }
        guard var text = components.string else { return "\(scheme):" }
        if hosts.count > 1 {
            var others = URLComponents()
            let listed = hosts.dropFirst().map { host -> String in
                others.host = host.name
                let name = host.name.contains(":") ? "[\(host.name)]" : others.percentEncodedHost ?? host.name
                return name + (host.port.map { ":\($0)" } ?? "")
            }
            let end = components.rangeOfPath?.lowerBound ?? components.rangeOfQuery.map { text.index(before: $0.lowerBound) }
            text.insert(contentsOf: "," + listed.joined(separator: ","), at: end ?? text.endIndex)
        }
        return text
    }

    /// The text with its password and query hidden, for the error about a text that is not a URL.
    private static func redact(_ text: String) -> String {
        var text = Substring(text)
        var query = ""
        if let mark = text.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            text = text[..<mark]
            query = "?..."
        }
        guard let at = text.lastIndex(of: "@"), let schemeEnd = text.range(of: "://") else { return text + query }
        // An '@' before the '://' ends no authority: hide all that comes before it.
        guard schemeEnd.upperBound <= at else { return "***" + text[at...] + query }
        let authority = text[schemeEnd.upperBound..<at]
        guard let colon = authority.firstIndex(of: ":") else { return text + query }
        return text[..<colon] + ":***" + text[at...] + query
    }

    /// Reads a parameter as an integer in a range.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when present but not such an integer.
    public func integerParameter(_ name: String, in range: ClosedRange<Int>) throws(CheckpointError) -> Int? {
        guard let text = parameters[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw CheckpointError(
                .invalidConfiguration, "\(scheme) URL parameter '\(name)' must be an integer in \(range), not '\(text)'")
        }
        return value
    }

    /// Fails when the URL has parameters other than `known`.
    public func rejectUnknownParameters(_ known: Set<String>) throws(CheckpointError) {
        let unknown = Set(parameters.keys).subtracting(known)
        guard unknown.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration,
                known.isEmpty
                    ? "a \(scheme) URL takes no parameters; it has \(unknown.sorted().joined(separator: ", "))"
                    : "unknown \(scheme) URL parameter(s): \(unknown.sorted().joined(separator: ", ")); known: \(known.sorted().joined(separator: ", "))"
            )
        }
    }
}

/// A list of hosts as libpq's multi-host URLs write them: `a:5432,[::1]:5433,b`.
package enum RawURLHostList {
    /// Splits the list into hosts and ports, as written (by Unicode scalars; an IPv6 address
    /// keeps its brackets).
    package static func split(_ text: Substring) -> [(host: Substring, port: Substring?)] {
        text.unicodeScalars.split(separator: ",", omittingEmptySubsequences: false).map { entry in
            let entry = Substring(entry)
            if entry.unicodeScalars.first == "[", let close = entry.unicodeScalars.firstIndex(of: "]") {
                let after = entry[entry.index(after: close)...]
                return (entry[...close], after.unicodeScalars.first == ":" ? after.dropFirst() : nil)
            }
            if let colon = entry.unicodeScalars.lastIndex(of: ":") {
                return (entry[..<colon], entry[entry.index(after: colon)...])
            }
            return (entry, nil)
        }
    }

    /// An IPv6 address without its brackets; any other host as it is.
    package static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }
}

/// The parts of a URL's text as written, before any decoding, for the checks that
/// `URLComponents` does not make (it re-encodes a stray `%` and drops a port that overflows).
struct RawURLParts {
    var user: Substring?
    var password: Substring?
    var host: Substring?
    var port: Substring?
    var path: Substring
    var query: Substring?
    var fragment: Substring?
    /// Where the authority's host and port (or host list) are in the text.
    var hostListRange: Range<String.Index>?

    /// Splits the text on its Unicode scalars, as URLComponents reads it, never on Characters:
    /// a ':', '/', '?', '#', '@', '&' or '=' followed by a combining mark is one Character
    /// with it, and a split by Characters would check other parts than those the URL has.
    init(_ text: String) {
        typealias Scalars = Substring.UnicodeScalarView
        var rest = Substring(text).unicodeScalars
        func starts(_ scalars: Scalars, with prefix: String) -> Bool { scalars.starts(with: prefix.unicodeScalars) }
        if let colon = rest.firstIndex(of: ":") { rest = rest[rest.index(after: colon)...] }
        if let hash = rest.firstIndex(of: "#") {
            fragment = Substring(rest[rest.index(after: hash)...])
            rest = rest[..<hash]
        }
        if let mark = rest.firstIndex(of: "?") {
            query = Substring(rest[rest.index(after: mark)...])
            rest = rest[..<mark]
        }
        if starts(rest, with: "//") {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<end]
            rest = rest[end...]
            if let at = authority.lastIndex(of: "@") {
                let info = authority[..<at]
                authority = authority[authority.index(after: at)...]
                if let colon = info.firstIndex(of: ":") {
                    user = Substring(info[..<colon])
                    password = Substring(info[info.index(after: colon)...])
                } else {
                    user = Substring(info)
                }
            }
            hostListRange = authority.startIndex..<authority.endIndex
            if starts(authority, with: "["), let close = authority.firstIndex(of: "]") {
                host = Substring(authority[...close])
                let after = authority[authority.index(after: close)...]
                if starts(after, with: ":") { port = Substring(after.dropFirst()) }
            } else if let colon = authority.lastIndex(of: ":") {
                host = Substring(authority[..<colon])
                port = Substring(authority[authority.index(after: colon)...])
            } else {
                host = Substring(authority)
            }
        }
        path = Substring(rest)
    }

    /// The query's items as written: `name=value` pairs split on `&` (by Unicode scalars);
    /// empty items (`a=1&&b=2`, a trailing `&`) are skipped.
    var queryItems: [(name: Substring, value: Substring?)] {
        guard let query else { return [] }
        return query.unicodeScalars.split(separator: "&", omittingEmptySubsequences: true).map { item in
            guard let equals = item.firstIndex(of: "=") else { return (Substring(item), nil) }
            return (Substring(item[..<equals]), Substring(item[item.index(after: equals)...]))
        }
    }

    /// Whether every `%` is followed by two hex digits.
    static func isValidPercentEncoding(_ text: Substring) -> Bool {
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            guard byte == UInt8(ascii: "%") else { continue }
            guard let high = bytes.next(), let low = bytes.next(), isHexDigit(high), isHexDigit(low) else { return false }
        }
        return true
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}

/// Where encryption keys come from: an environment variable or a key file (never the keys
/// themselves, so that a configuration value can be printed). `CheckpointEncryption` reads it.
public struct KeySource: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable that holds the keys, if that is the source.
    public var environmentVariable: String?
    /// The key file, if that is the source.
    public var filePath: String?

    /// Keys from an environment variable (`id:base64` entries, the first one sealing).
    public static func environment(_ name: String) -> KeySource { KeySource(environmentVariable: name, filePath: nil) }

    /// Keys from a file (`id:base64` entries, one per line, the first one sealing).
    public static func file(_ path: String) -> KeySource { KeySource(environmentVariable: nil, filePath: path) }

    /// Parses `env:NAME` or `file:/path/to/keys`.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for anything else.
    public init(_ text: String) throws(CheckpointError) {
        if text.hasPrefix("env:"), text.count > 4 {
            self = .environment(String(text.dropFirst(4)))
        } else if text.hasPrefix("file:"), text.count > 5 {
            self = .file(String(text.dropFirst(5)))
        } else {
            throw CheckpointError(.invalidConfiguration, "a key source is env:NAME or file:/path, not '\(text.prefix(40))'")
        }
    }

    private init(environmentVariable: String?, filePath: String?) {
        self.environmentVariable = environmentVariable
        self.filePath = filePath
    }

    /// `env:NAME` or `file:PATH`.
    public var description: String {
        if let environmentVariable { return "env:\(environmentVariable)" }
        return "file:\(filePath ?? "")"
    }
}

/// A backend that can be picked by URL scheme, such as `SQLiteCheckpointer.backend`.
public protocol CheckpointerBackend: Sendable {
    /// The URL schemes this backend opens.
    var schemes: Set<String> { get }
    /// Opens a checkpointer for a URL with one of ``schemes``.
    func makeCheckpointer(url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer
}

/// A cache that wraps whichever backend a configuration opens, such as
/// `RedisCachedCheckpointer.cacheLayer`.
public protocol CheckpointerCacheLayer: Sendable {
    /// The cache URL schemes this layer opens.
    var schemes: Set<String> { get }
    /// Wraps `base` in the cache the URL names; the result owns `base` (closing it closes both).
    func wrap(_ base: any Checkpointer, url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer
}

/// Picks and opens a backend from one value, so that swapping stores is a configuration change.
///
/// ```swift
/// // CHECKPOINTER_URL=sqlite:///var/lib/agent/checkpoints.db
/// let configuration = try CheckpointerConfiguration.fromEnvironment(default: "sqlite://./checkpoints.db")
/// let checkpointer = try await configuration.makeCheckpointer(backends: [SQLiteCheckpointer.backend])
/// ```
///
/// `memory:` is always available; other schemes come from the backends passed in.
public struct CheckpointerConfiguration: Sendable, CustomStringConvertible {
    /// The environment variable read by ``fromEnvironment(_:default:environment:)`` unless told otherwise.
    public static let defaultEnvironmentVariable = "CHECKPOINTER_URL"

    /// The environment variable ``fromEnvironment(_:default:environment:)`` reads the key
    /// source from.
    public static let keysEnvironmentVariable = "CHECKPOINTER_KEYS"

    /// The environment variable ``fromEnvironment(_:default:environment:)`` reads the cache
    /// URL from (`redis://...`).
    public static let cacheEnvironmentVariable = "CHECKPOINTER_CACHE_URL"

    /// The store's URL.
    public var url: CheckpointerURL
    /// Where encryption keys come from, when the state is sealed; `nil` when it is not.
    public var keySource: KeySource?
    /// A cache layered on the store (`redis://:password@host:6379/0?ttl=300`), or `nil`.
    public var cacheURL: CheckpointerURL?

    /// Creates a configuration from a URL and, optionally, a key source.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for a malformed URL.
    public init(url: String, keySource: KeySource? = nil, cacheURL: String? = nil) throws(CheckpointError) {
        self.url = try CheckpointerURL(url)
        self.keySource = keySource
        self.cacheURL = try cacheURL.map { url throws(CheckpointError) in try CheckpointerURL(url) }
    }

    /// Reads the URL from an environment variable, the key source from `CHECKPOINTER_KEYS`
    /// (`env:NAME` or `file:/path`) and a cache URL from `CHECKPOINTER_CACHE_URL`, when set.
    ///
    /// - Parameters:
    ///   - variable: the variable's name; defaults to `CHECKPOINTER_URL`.
    ///   - defaultURL: used when the variable is unset or empty; when `nil`, a missing variable is an error.
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the variable is missing
    ///   (and no default is given) or malformed.
    public static func fromEnvironment(
        _ variable: String = defaultEnvironmentVariable, default defaultURL: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CheckpointError) -> CheckpointerConfiguration {
        var keySource: KeySource?
        if let keys = environment[keysEnvironmentVariable], !keys.isEmpty {
            keySource = try KeySource(keys)
        }
        let cacheURL = environment[cacheEnvironmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        if let value = environment[variable], !value.isEmpty {
            return try CheckpointerConfiguration(url: value, keySource: keySource, cacheURL: cacheURL)
        }
        guard let defaultURL else {
            throw CheckpointError(.invalidConfiguration, "environment variable \(variable) is not set")
        }
        return try CheckpointerConfiguration(url: defaultURL, keySource: keySource, cacheURL: cacheURL)
    }

    /// The URL (and cache URL), without passwords.
    public var description: String { url.description + (cacheURL.map { " + cache \($0)" } ?? "") }

    /// Opens the store the URL names, wrapped in the cache ``cacheURL`` names, if any.
    ///
    /// - Parameters:
    ///   - backends: the backends to pick from, besides the built-in `memory:`.
    ///   - caches: the cache layers to pick from for ``cacheURL``.
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for an unknown scheme or bad
    ///   parameters; whatever the backend throws when it opens.
    public func makeCheckpointer(
        backends: [any CheckpointerBackend] = [], caches: [any CheckpointerCacheLayer] = [],
        logger: Logger = Logger(label: "checkpointing")
    ) async throws -> any Checkpointer {
        var layer: (any CheckpointerCacheLayer)?
        if let cacheURL {
            guard let found = caches.first(where: { $0.schemes.contains(cacheURL.scheme) }) else {
                let known = caches.flatMap(\.schemes).sorted().joined(separator: ", ")
                throw CheckpointError(
                    .invalidConfiguration,
                    "no cache layer for URL scheme '\(cacheURL.scheme)'; available: \(known.isEmpty ? "none" : known)")
            }
            layer = found
        }
        let store = try await makeStore(backends: backends, logger: logger)
        guard let layer, let cacheURL else { return store }
        logger.debug("layering a cache", metadata: ["cache": "\(cacheURL)"])
        do {
            return try await layer.wrap(store, url: cacheURL, logger: logger)
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// Checks a `memory:` URL, which takes nothing after its scheme.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for a parameter, user, password,
    ///   host, port or path.
    package static func validateMemoryURL(_ url: CheckpointerURL) throws(CheckpointError) {
        try url.rejectUnknownParameters([])
        guard url.user == nil, url.password == nil, url.host?.isEmpty ?? true, url.port == nil, url.path.isEmpty else {
            throw CheckpointError(
                .invalidConfiguration, "a memory: URL takes nothing after 'memory:' (no user, host, port or path)")
        }
    }

    private func makeStore(backends: [any CheckpointerBackend], logger: Logger) async throws -> any Checkpointer {
        if url.scheme == "memory" {
            try Self.validateMemoryURL(url)
            return InMemoryCheckpointer()
        }
        guard let backend = backends.first(where: { $0.schemes.contains(url.scheme) }) else {
            let known = (["memory"] + backends.flatMap(\.schemes)).sorted().joined(separator: ", ")
            throw CheckpointError(
                .invalidConfiguration, "no backend for URL scheme '\(url.scheme)'; available: \(known)")
        }
        logger.debug("opening checkpointer", metadata: ["url": "\(url)"])
        return try await backend.makeCheckpointer(url: url, logger: logger)
    }
}

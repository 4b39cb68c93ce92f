import CheckpointEncryption
import CheckpointPostgres
import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import Foundation

// Targets for configuration text: checkpointer URLs of every backend, key sources and key
// lists. Each either parses or throws `invalidConfiguration`; what parses is checked the way
// it is used (no NUL reaches C, ports in range, passwords never printed).

/// Pieces of URLs that mutations insert.
private let urlDictionary = [
    "://", ":///", "//", "/", ":", "@", "?", "&", "=", "#", "%", "%0", "%00", "%25", "%2F", "%3A", "%40", "%23", "%zz",
    "[", "]", "[::1]", ":0", ":65535", ":65536", ":99999999999999999999", "..", "./", "localhost", "\u{0}", "é",
    "sqlite:", "postgres:", "postgresql:", "redis:", "memory:", "file:", "synchronous=", "busy_timeout_ms=", "readers=",
    "wal_checkpoint_pages=", "idle_spin_us=", "content_cache_bytes=", "pool_max=", "pool_min=", "acquire_timeout_ms=",
    "connect_timeout=", "sslmode=", "sslpassword=", "application_name=", "tenant=", "schema=", "ttl=", "prefix=",
    "refresh_on_read=", "timeout_ms=", "breaker_cooldown_ms=", "integrity_key_env=", "local_heads=", "-1",
    "9223372036854775807", "9223372036854775808", "+5", "0x10",
]

/// The environment the Redis URL's `integrity_key_env` is resolved in.
private let environment = [
    "CACHE_KEY": Data(repeating: 3, count: 32).base64EncodedString(), "SHORT_KEY": "AAAA", "NOT_BASE64": "%%%",
    "CHECKPOINT_KEYS": "k1:\(Data(repeating: 1, count: 32).base64EncodedString())",
]

/// Checks what every parsed URL promises, and returns its canonical form.
private func checkedURL(_ text: String) throws(Finding) -> Result<CheckpointerURL, CheckpointError> {
    let parsed = try attempt("CheckpointerURL(_:)", [.invalidConfiguration]) { try CheckpointerURL(text) }
    guard case .success(let url) = parsed else { return parsed }
    for (part, value) in [("user", url.user), ("password", url.password), ("host", url.host), ("path", url.path)] {
        try check(value.map { !$0.utf8.contains(0) } ?? true, "the URL's \(part) holds a NUL")
    }
    for (name, value) in url.parameters {
        try check(!name.utf8.contains(0) && !value.utf8.contains(0), "a URL parameter holds a NUL")
    }
    try check(url.port.map { (1...65535).contains($0) } ?? true, "the URL's port \(url.port ?? 0) is out of range")
    try check(url.scheme == url.scheme.lowercased(), "the URL's scheme is not lowercased")
    // Its description hides the password, and reads back as a URL of the same scheme.
    let description = url.description
    try checkHidden(url.password, "a URL's description") { password in
        var other = url
        other.password = password
        return other.description
    }
    for name in url.parameters.keys where name.lowercased().contains("password") {
        try checkHidden(url.parameters[name], "a URL's description (parameter \(name))") { password in
            var other = url
            other.parameters[name] = password
            return other.description
        }
    }
    // (A URL that URLComponents cannot write back, such as a host that is a socket's path,
    // is described by its scheme alone.)
    if description != "\(url.scheme):", let again = try? CheckpointerURL(description) {
        try check(again.scheme == url.scheme, "a URL's description has another scheme")
        try check(again.password == url.password.map { _ in "***" }, "a URL's description shows another password than ***")
        try check(again.user == url.user, "a URL's description reads back with another user")
    }
    return parsed
}

/// Checks that a description does not depend on the password's value: the same settings with
/// another password describe the same (the password's text may be part of a host or path too,
/// so looking for it in the description would not do).
private func checkHidden(
    _ password: String?, _ what: String, describedWith describe: (String) -> String
) throws(Finding) {
    guard let password else { return }
    let other = password == "other-password" ? "another-password" : "other-password"
    try check(describe(password) == describe(other), "\(what) shows its password")
}

private func fingerprint(_ url: CheckpointerURL, _ rest: String) -> Outcome {
    var print = Fingerprint()
    print.add(url.description)
    print.add(rest)
    return print.outcome
}

extension FuzzTarget {
    static let sqliteURL = FuzzTarget(
        "url-sqlite", "CheckpointerURL, then SQLiteCheckpointer.Configuration(url:)", dictionary: urlDictionary,
        seeds: {
            [
                "sqlite:///var/lib/agent/checkpoints.db?synchronous=full", "sqlite://./checkpoints.db", "sqlite:rel/a.db",
                "sqlite:///a.db?readers=2&&synchronous=full&", "sqlite:///var/lib/a%20b.db", "sqlite:///dir/a%00b.db",
                "sqlite:///dir/a#b.db", "sqlite://localhost/a.db?busy_timeout_ms=0&idle_spin_us=10000",
                "sqlite:///a.db?content_cache_bytes=1099511627776&wal_checkpoint_pages=1", "sqlite:file:a.db",
                "sqlite://host/a.db", "sqlite://u:p@/a.db", "sqlite:///", "SQLite:///A.db",
            ].map(bytes)
        }
    ) { input throws(Finding) in
        let url: CheckpointerURL
        switch try checkedURL(text(input)) {
        case .failure(let error): return rejected(error)
        case .success(let parsed): url = parsed
        }
        switch try attempt("SQLiteCheckpointer.Configuration(url:)", [.invalidConfiguration], {
            try SQLiteCheckpointer.Configuration(url: url)
        }) {
        case .failure(let error): return fingerprint(url, error.code.description)
        case .success(let configuration):
            try check(!configuration.path.isEmpty && !configuration.path.utf8.contains(0), "a sqlite path is empty or holds a NUL")
            try check((1...64).contains(configuration.readerCount), "a sqlite URL gave \(configuration.readerCount) readers")
            return fingerprint(url, "\(configuration.path) \(configuration.synchronous) \(configuration.readerCount)")
        }
    }

    static let postgresURL = FuzzTarget(
        "url-postgres", "CheckpointerURL, then PostgresCheckpointer.Configuration(url:) and its checks",
        dictionary: urlDictionary,
        seeds: {
            [
                "postgres://agent:secret@db.internal:5432/agents?pool_max=20&sslmode=verify-full",
                "postgresql://u@%2Fvar%2Frun%2Fpostgresql/db", "postgres://u:p%40ss@h:5432/db?pool_max=2&sslpassword=k3y",
                "postgres://u@h:/db", "postgres://u@[::1]:5433/db?tenant=acme&schema=tenant_acme",
                "postgres://u@h/db?connect_timeout=1", "postgres://u@h/db/extra", "postgres://u@h/db?tenant=a:b",
                "postgres://u@h/db?schema=bad-name", "postgres://u:s3cr@127.0.0.1:99999/db", "postgres://",
                "postgres://u@h/db?pool_min=5&pool_max=2&acquire_timeout_ms=1&application_name=a%00b",
                "postgres://agent%3Aadmin:s3cr@h/db",
            ].map(bytes)
        }
    ) { input throws(Finding) in
        let url: CheckpointerURL
        switch try checkedURL(text(input)) {
        case .failure(let error): return rejected(error)
        case .success(let parsed): url = parsed
        }
        let made = try attempt("PostgresCheckpointer.Configuration(url:)", [.invalidConfiguration]) {
            let configuration = try PostgresCheckpointer.Configuration(url: url)
            try configuration.validate()
            return configuration
        }
        switch made {
        case .failure(let error): return fingerprint(url, error.code.description)
        case .success(let configuration):
            let description = configuration.description
            try checkHidden(configuration.password, "a Postgres configuration's description") { password in
                var other = configuration
                other.password = password
                return other.description
            }
            try check((1...65535).contains(configuration.port), "a Postgres port out of range passed the checks")
            return fingerprint(url, description)
        }
    }

    static let redisURL = FuzzTarget(
        "url-redis", "CheckpointerURL, then RedisCachedCheckpointer.Configuration(url:environment:) and its checks",
        dictionary: urlDictionary + ["CACHE_KEY", "SHORT_KEY", "NOT_BASE64"],
        seeds: {
            [
                "redis://:secret@cache:6379/0?ttl=300&prefix=ckpt", "redis://cache", "redis://:pw@h/1000000",
                "redis://h/0?integrity_key_env=CACHE_KEY&refresh_on_read=TRUE&local_heads=0",
                "redis://h/0?integrity_key_env=SHORT_KEY", "redis://h/0?integrity_key_env=MISSING", "redis:///0",
                "redis://h/-1", "redis://h/0?ttl=1&ttl=2", "redis://:s3cr@h:70000/0", "redis://h/0?prefix=",
                "redis://h/0?timeout_ms=60000&breaker_cooldown_ms=1&pool_max=256",
            ].map(bytes)
        }
    ) { input throws(Finding) in
        let url: CheckpointerURL
        switch try checkedURL(text(input)) {
        case .failure(let error): return rejected(error)
        case .success(let parsed): url = parsed
        }
        let made = try attempt("RedisCachedCheckpointer.Configuration(url:)", [.invalidConfiguration]) {
            let configuration = try RedisCachedCheckpointer.Configuration(url: url, environment: environment)
            try configuration.validate()
            return configuration
        }
        switch made {
        case .failure(let error): return fingerprint(url, error.code.description)
        case .success(let configuration):
            let description = configuration.description
            try checkHidden(configuration.password, "a Redis configuration's description") { password in
                var other = configuration
                other.password = password
                return other.description
            }
            _ = try must("making the cache's entry format") { try CacheEntryFormat(integrityKey: configuration.integrityKey) }
            return fingerprint(url, description)
        }
    }

    static let memoryURL = FuzzTarget(
        "url-memory", "CheckpointerConfiguration(url:) with its key source and cache URL, and memory: URLs",
        dictionary: urlDictionary,
        seeds: {
            [
                "memory:", "memory://", "memory://host", "memory:/path", "memory://u:s3cr@h", "memory://h:5", "memory:?a=1",
                "MEMORY:", "memory:#x",
            ].map(bytes)
        }
    ) { input throws(Finding) in
        let string = text(input)
        let made = try attempt("CheckpointerConfiguration(url:cacheURL:)", [.invalidConfiguration]) {
            try CheckpointerConfiguration(url: string, cacheURL: string)
        }
        let url: CheckpointerURL
        switch made {
        case .failure(let error): return rejected(error)
        case .success(let configuration):
            url = configuration.url
            try check(configuration.cacheURL == url, "the same text parses as two URLs")
            try checkHidden(url.password, "a configuration's description") { password in
                var other = configuration
                other.url.password = password
                other.cacheURL?.password = password
                return other.description
            }
        }
        _ = try checkedURL(string)
        switch try attempt("validating a memory: URL", [.invalidConfiguration], {
            try CheckpointerConfiguration.validateMemoryURL(url)
        }) {
        case .failure(let error): return fingerprint(url, error.code.description)
        case .success:
            try check(url.parameters.isEmpty && url.port == nil && url.path.isEmpty, "a memory: URL took something")
            return fingerprint(url, "memory")
        }
    }

    static let keySource = FuzzTarget(
        "key-source", "KeySource(_:) (CHECKPOINTER_KEYS) and the keys it names in the environment",
        dictionary: ["env:", "file:", "CHECKPOINT_KEYS", "/", "\u{0}"],
        seeds: {
            ["env:CHECKPOINT_KEYS", "file:/etc/agent/keys", "env:", "file:", "ENV:X", "env:MISSING", "file:relative", "é"]
                .map(bytes)
        }
    ) { input throws(Finding) in
        let source: KeySource
        switch try attempt("KeySource(_:)", [.invalidConfiguration], { try KeySource(text(input)) }) {
        case .failure(let error): return rejected(error)
        case .success(let parsed): source = parsed
        }
        let again = try must("KeySource of a key source's description") { try KeySource(source.description) }
        try check(again == source, "a key source's description reads back as another source")
        // Keys are read from the (fixed) environment; files are never read by the fuzzer.
        if source.environmentVariable != nil {
            _ = try attempt("StaticKeyProvider(source:environment:)", [.invalidConfiguration]) {
                try StaticKeyProvider(source: source, environment: environment)
            }
        }
        return .decoded(bytes(source.description))
    }

    static let keyText = FuzzTarget(
        "key-text", "StaticKeyProvider(text:) (a key file or CHECKPOINT_KEYS), SecretKey(id:base64:)",
        dictionary: [":", ",", " ", "\n", "=", "==", "+", "/", "-", "_", ".", "AAAA"],
        seeds: {
            let key = Data(repeating: 1, count: 32).base64EncodedString()
            let other = Data((0..<32).map { UInt8($0) }).base64EncodedString()
            return [
                "k1:\(key)", "2026-02:\(key),2026-01:\(other)", "k1:\(key)\nk2:\(other)\n", "k1:\(key) k1:\(other)",
                "k1:AAAA", "k1", ":\(key)", "\(String(repeating: "i", count: 129)):\(key)", "k.1_-:\(key)  ",
            ].map(bytes)
        }
    ) { input throws(Finding) in
        switch try attempt("StaticKeyProvider(text:)", [.invalidConfiguration], { try StaticKeyProvider(text: text(input)) }) {
        case .failure(let error): return rejected(error)
        case .success(let provider):
            let current = try must("the current key") { try provider.currentKey(for: Fixed.thread) }
            try check(current.id == provider.currentID, "the current key is not the first")
            let found = try must("the current key by id") { try provider.key(id: current.id, for: Fixed.thread) }
            try check(found === current, "the current key is not found by its id")
            return .decoded(bytes(provider.currentID))
        }
    }
}

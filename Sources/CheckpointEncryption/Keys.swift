import CCheckpointSodium
import Checkpointing
import Foundation

/// A 256-bit key and its id. The bytes live in memory that is wiped (`sodium_memzero`) when
/// the key is released; they never appear in `description`, logs or errors.
public final class SecretKey: Sendable, CustomStringConvertible {
    /// The key's id, stored with every value it seals (1 to 128 characters: letters, digits, `-`, `_`, `.`).
    public let id: String
    // Safe: written once in init, read only through `withBytes`, wiped in deinit.
    private nonisolated(unsafe) let storage: UnsafeMutableRawBufferPointer

    /// The size of a key, in bytes.
    public static let byteCount = 32

    /// Creates a key from 32 bytes; the caller's copy is not wiped.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for a bad id or a key that is not 32 bytes.
    public init<Bytes: Collection<UInt8>>(id: String, bytes: Bytes) throws(CheckpointError) {
        guard Self.isValidID(id) else {
            throw CheckpointError(
                .invalidConfiguration, "a key id must be 1 to 128 characters of letters, digits, '-', '_' or '.'")
        }
        guard bytes.count == Self.byteCount else {
            throw CheckpointError(.invalidConfiguration, "key '\(id)' must be \(Self.byteCount) bytes, not \(bytes.count)")
        }
        self.id = id
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.byteCount, alignment: 16)
        storage.copyBytes(from: bytes)
    }

    /// Creates a key from its base64 text (as ``generateBase64()`` makes).
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the text is not 32 bytes of base64.
    public convenience init(id: String, base64: String) throws(CheckpointError) {
        guard var bytes = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CheckpointError(.invalidConfiguration, "key '\(id)' is not base64")
        }
        defer { bytes.resetBytes(in: bytes.startIndex..<bytes.endIndex) }
        try self.init(id: id, bytes: bytes)
    }

    deinit {
        sodium_memzero(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// Makes a new random key, as base64 text for a key file or an environment variable.
    public static func generateBase64() -> String {
        Sodium.initialize()
        var bytes = [UInt8](repeating: 0, count: byteCount)
        randombytes_buf(&bytes, byteCount)
        defer { sodium_memzero(&bytes, byteCount) }
        return Data(bytes).base64EncodedString()
    }

    /// Calls `body` with the key's bytes; do not keep them.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    /// The id only; never the bytes.
    public var description: String { "SecretKey(id: \(id))" }

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128
            && id.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0)) }
    }
}

/// Where keys come from: the key that seals new values, and any key by id to open old ones.
/// Plug a KMS in by conforming to it (cache the keys: it is called on every seal and open).
public protocol KeyProvider: Sendable {
    /// The key that seals new values of `thread`.
    ///
    /// - Throws: ``CheckpointError`` when no key is available.
    func currentKey(for thread: ThreadID) throws -> SecretKey

    /// The key with `id`, to open a value of `thread`, or `nil` when it is not known.
    func key(id: String, for thread: ThreadID) throws -> SecretKey?
}

/// A fixed set of keys: the first is current and seals; every one opens. Rotating means
/// putting a new key first and keeping the old ones, so that old checkpoints still open.
public struct StaticKeyProvider: KeyProvider {
    /// The environment variable ``fromEnvironment(_:environment:)`` reads unless told otherwise.
    public static let defaultEnvironmentVariable = "CHECKPOINT_KEYS"

    private let keys: [String: SecretKey]
    private let current: SecretKey
    /// The id of the key that seals.
    public var currentID: String { current.id }

    /// Creates a provider; `keys[0]` seals.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when `keys` is empty or two keys share an id.
    public init(keys: [SecretKey]) throws(CheckpointError) {
        guard let first = keys.first else { throw CheckpointError(.invalidConfiguration, "no encryption key given") }
        var byID: [String: SecretKey] = [:]
        for key in keys {
            guard byID.updateValue(key, forKey: key.id) == nil else {
                throw CheckpointError(.invalidConfiguration, "two keys have the id '\(key.id)'")
            }
        }
        self.keys = byID
        self.current = first
    }

    /// Reads keys written as `id:base64` entries separated by commas, spaces or new lines; the
    /// first one seals.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` for malformed text.
    public init(text: String) throws(CheckpointError) {
        var keys: [SecretKey] = []
        for entry in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            guard let colon = entry.firstIndex(of: ":") else {
                throw CheckpointError(.invalidConfiguration, "a key entry must look like id:base64")
            }
            keys.append(try SecretKey(id: String(entry[..<colon]), base64: String(entry[entry.index(after: colon)...])))
        }
        try self.init(keys: keys)
    }

    /// Reads keys from an environment variable (`CHECKPOINT_KEYS` unless told otherwise).
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when it is unset or malformed.
    public static func fromEnvironment(
        _ variable: String = defaultEnvironmentVariable,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CheckpointError) -> StaticKeyProvider {
        guard let text = environment[variable], !text.isEmpty else {
            throw CheckpointError(.invalidConfiguration, "environment variable \(variable) holds no keys")
        }
        return try StaticKeyProvider(text: text)
    }

    /// Reads keys from a file: `id:base64` entries, one per line, the first one sealing.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the file cannot be read or is malformed.
    public static func fromFile(_ path: String) throws(CheckpointError) -> StaticKeyProvider {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError(.invalidConfiguration, "cannot read key file '\(path)'")
        }
        return try StaticKeyProvider(text: String(decoding: data, as: UTF8.self))
    }

    /// The key that seals.
    public func currentKey(for thread: ThreadID) throws -> SecretKey { current }

    /// Any known key.
    public func key(id: String, for thread: ThreadID) throws -> SecretKey? { keys[id] }
}

/// libsodium's one-time initialization.
enum Sodium {
    private static let initialized: Bool = { sodium_init() >= 0 }()

    static func initialize() {
        precondition(initialized, "libsodium failed to initialize")
    }
}

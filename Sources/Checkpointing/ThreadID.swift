/// The identity of one conversation: every checkpoint belongs to exactly one thread.
///
/// A thread id is 1 to 255 bytes of UTF-8 and contains no NUL character. A tenant or
/// user prefix such as `"user-42:support"` is a convention: ``tenant`` returns the part
/// before the first `:`.
///
/// Ids are compared, hashed and ordered by their UTF-8 bytes, as every store compares them:
/// "café" written with U+00E9 and written with "e" and U+0301 are two threads, although
/// Swift's `String` calls the two spellings equal. Normalize ids (for example to NFC) before
/// making them if your input may spell one id both ways.
///
/// ```swift
/// let thread = try ThreadID("user-42:support")
/// ```
public struct ThreadID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The longest thread id accepted, in bytes of UTF-8.
    public static let maximumByteCount = 255

    /// The validated text of the id.
    public let rawValue: String

    /// Validates and wraps a thread id.
    ///
    /// - Throws: ``CheckpointError`` with code ``CheckpointError/Code/invalidThreadID`` when the
    ///   string is empty, longer than ``maximumByteCount`` bytes of UTF-8, or contains NUL.
    public init(_ rawValue: String) throws(CheckpointError) {
        let count = rawValue.utf8.count
        guard count > 0 else {
            throw CheckpointError(.invalidThreadID, "a thread id must not be empty")
        }
        guard count <= Self.maximumByteCount else {
            throw CheckpointError(
                .invalidThreadID,
                "a thread id must be at most \(Self.maximumByteCount) bytes of UTF-8, this one has \(count)"
            )
        }
        guard !rawValue.utf8.contains(0) else {
            throw CheckpointError(.invalidThreadID, "a thread id must not contain a NUL character")
        }
        self.rawValue = rawValue
    }

    /// The part of the id before its first `:` byte, or `nil` when the id has no `:` (a `:`
    /// followed by a combining mark counts too).
    public var tenant: Substring? {
        guard let colon = rawValue.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return rawValue[..<colon]
    }

    /// The id's text.
    public var description: String { rawValue }

    /// Whether two ids have the same UTF-8 bytes.
    public static func == (lhs: ThreadID, rhs: ThreadID) -> Bool { BytewiseString.equal(lhs.rawValue, rhs.rawValue) }

    /// Hashes the id's UTF-8 bytes.
    public func hash(into hasher: inout Hasher) { BytewiseString.hash(rawValue, into: &hasher) }

    /// Orders ids by their UTF-8 bytes, as the stores do (SQLite's `BINARY`, PostgreSQL's
    /// `COLLATE "C"`).
    public static func < (lhs: ThreadID, rhs: ThreadID) -> Bool { BytewiseString.less(lhs.rawValue, rhs.rawValue) }
}

/// Text compared, hashed and ordered by its UTF-8 bytes, as the stores compare text, rather
/// than by Unicode canonical equivalence as `String` is. Dictionaries of the in-memory
/// backend and of the caches key namespaces (and thread ids, through ``ThreadID``) by it, so
/// that two spellings the stores keep apart are kept apart in memory too.
package struct BytewiseString: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The text.
    package let text: String

    package init(_ text: String) { self.text = text }

    package static func == (lhs: BytewiseString, rhs: BytewiseString) -> Bool { equal(lhs.text, rhs.text) }
    package func hash(into hasher: inout Hasher) { Self.hash(text, into: &hasher) }
    package static func < (lhs: BytewiseString, rhs: BytewiseString) -> Bool { less(lhs.text, rhs.text) }
    package var description: String { text }

    /// Whether two texts have the same UTF-8 bytes.
    package static func equal(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.count == rhs.utf8.count && lhs.utf8.elementsEqual(rhs.utf8)
    }

    /// Whether `lhs`'s UTF-8 bytes sort before `rhs`'s (as `memcmp`, shorter first on a tie).
    package static func less(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    /// Feeds the text's UTF-8 bytes and an end marker (a byte UTF-8 never holds) to `hasher`.
    package static func hash(_ text: String, into hasher: inout Hasher) {
        let hashed: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {  // a bridged string: the same bytes, fed the same way
            Array(text.utf8).withUnsafeBytes { hasher.combine(bytes: $0) }
        }
        hasher.combine(UInt8(0xFF))
    }
}

/// Validation of namespaces, shared by every backend.
package enum NamespaceValidation {
    /// The longest namespace accepted, in bytes of UTF-8.
    package static let maximumByteCount = 255

    package static func validate(_ namespace: String) throws(CheckpointError) {
        let count = namespace.utf8.count
        guard count <= maximumByteCount else {
            throw CheckpointError(
                .invalidArgument,
                "a namespace must be at most \(maximumByteCount) bytes of UTF-8, this one has \(count)"
            )
        }
        guard !namespace.utf8.contains(0) else {
            throw CheckpointError(.invalidArgument, "a namespace must not contain a NUL character")
        }
    }
}

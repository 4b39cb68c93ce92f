/// The identity of one conversation: every checkpoint belongs to exactly one thread.
///
/// A thread id is 1 to 255 bytes of UTF-8 and contains no NUL character. A tenant or
/// user prefix such as `"user-42:support"` is a convention: ``tenant`` returns the part
/// before the first `:`.
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

    /// The part of the id before its first `:`, or `nil` when the id has no `:`.
    public var tenant: Substring? {
        guard let colon = rawValue.firstIndex(of: ":") else { return nil }
        return rawValue[..<colon]
    }

    /// The id's text.
    public var description: String { rawValue }

    /// Orders ids by their text.
    public static func < (lhs: ThreadID, rhs: ThreadID) -> Bool { lhs.rawValue < rhs.rawValue }
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

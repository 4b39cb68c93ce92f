import Foundation

// Every stored row carries a checksum of its content, computed on write and checked on every
// read of the row's bytes from the store, so that damaged bytes (bit rot, a bad disk, a
// careless copy, a hand-edited row) surface as `corruptData` instead of as other state.
// Neither SQLite nor a PostgreSQL cluster without data checksums would notice: a changed
// byte in a blob, a number or a key is just other data to them.
//
// The checksum covers the row's identity (thread, namespace, checkpoint id: a row that moved
// to another thread or id no longer matches) and every column a read uses. It is XXH64 chained
// over the fields, each field hashed with the previous field's hash as its seed (XXH64 mixes
// in the length, so the same bytes split differently give another checksum). It detects
// accidents, not attacks: whoever can write the store can write a matching checksum.

/// The checksum of one stored checkpoint row or answer row, the same on every backend.
package struct RowChecksum: Sendable {
    private var state: UInt64

    /// Distinguishes the kinds of rows, so that one kind's bytes never pass as another's.
    private enum Kind: UInt64 {
        case checkpoint = 0x6368_6563_6B70_7431  // "checkpt1"
        case answer = 0x616E_7377_6572_7631  // "answerv1"
    }

    private init(kind: Kind, thread: ThreadID, namespace: String) {
        state = kind.rawValue
        combine(thread.rawValue)
        combine(namespace)
    }

    /// The stored column a checkpoint row's checksum reads through a backend's accessor.
    package enum Column: Sendable {
        /// The metadata as JSON text, in the canonical form ``Metadata`` encodes to (sorted
        /// keys): a backend whose column keeps other text (PostgreSQL's `jsonb`) re-encodes it.
        case metadata
        case manifest, segments, payload, pause
    }

    /// The checksum of a checkpoint row; `blob` hands each blob column's bytes to its second
    /// argument (`nil` for NULL), so that a backend can pass its driver's column pointers
    /// without copying.
    ///
    /// - Parameter createdAt: the stored creation time, `nil` when the row stores none.
    package static func checkpoint(
        thread: ThreadID, namespace: String, id: CheckpointID, parentID: CheckpointID?, step: Int64,
        createdAt: Double?, blob: (Column, (UnsafeRawBufferPointer?) -> Void) -> Void
    ) -> Int64 {
        var checksum = RowChecksum(kind: .checkpoint, thread: thread, namespace: namespace)
        checksum.combine(id)
        checksum.combine(parentID)
        checksum.combine(step)
        checksum.combine(createdAt)
        blob(.metadata) { checksum.combine($0) }
        blob(.manifest) { checksum.combine($0) }
        blob(.segments) { checksum.combine($0) }
        blob(.payload) { checksum.combine($0) }
        blob(.pause) { checksum.combine($0) }
        return checksum.value
    }

    /// The checksum of a checkpoint row about to be written, from its blobs as `Data`.
    package static func checkpoint(
        thread: ThreadID, namespace: String, id: CheckpointID, parentID: CheckpointID?, step: Int64,
        createdAt: Double?, metadata: Data?, manifest: Data, segments: Data?, payload: Data?, pause: Data?
    ) -> Int64 {
        checkpoint(
            thread: thread, namespace: namespace, id: id, parentID: parentID, step: step, createdAt: createdAt
        ) { column, body in
            let data: Data? =
                switch column {
                case .metadata: metadata
                case .manifest: manifest
                case .segments: segments
                case .payload: payload
                case .pause: pause
                }
            guard let data else { return body(nil) }
            data.withUnsafeBytes { body($0) }
        }
    }

    /// Checks a stored checkpoint row against its checksum, for the thread and namespace the
    /// read asked for (so a row that moved to another thread fails too).
    ///
    /// - Throws: ``CheckpointError/Code/corruptData``, naming the thread and checkpoint and
    ///   nothing of the content, when the row does not match its checksum or has none.
    /// - Parameter id: the checkpoint a lookup by id asked for: a damaged index can return
    ///   another row (with a valid checksum), which is `corruptData` too.
    package static func verify(
        _ row: some CheckpointRowFields, thread: ThreadID, namespace: String, id requested: CheckpointID? = nil
    ) throws(CheckpointError) -> VerifiedRow {
        let verified = VerifiedRow(
            id: try row.id(), parentID: try row.parentID(), step: try row.step(),
            storedCreatedAt: try row.storedCreatedAt())
        let computed = checkpoint(
            thread: thread, namespace: namespace, id: verified.id, parentID: verified.parentID, step: verified.step,
            createdAt: verified.storedCreatedAt, blob: row.withBytes)
        guard try row.checksum() == computed else { throw mismatch(thread: thread, checkpoint: verified.id) }
        if let requested, verified.id != requested {
            throw CheckpointError(
                .corruptData,
                "a lookup of checkpoint \(requested) of thread '\(thread)' returned checkpoint \(verified.id): the store's index is damaged"
            )
        }
        return verified
    }

    /// The checksum of an answer row.
    package static func answer(
        thread: ThreadID, namespace: String, checkpointID: CheckpointID, pauseID: UUID, response: Data,
        answeredAt: Double
    ) -> Int64 {
        var checksum = RowChecksum(kind: .answer, thread: thread, namespace: namespace)
        checksum.combine(checkpointID)
        checksum.combine(pauseID.bytes)
        checksum.combine(response)
        checksum.combine(answeredAt)
        return checksum.value
    }

    /// The error for a row whose checksum does not match: it names the thread and the
    /// checkpoint, never the content.
    package static func mismatch(thread: ThreadID, checkpoint id: CheckpointID?, what: String = "checkpoint")
        -> CheckpointError
    {
        CheckpointError(
            .corruptData,
            "a stored \(what) of thread '\(thread)'\(id.map { " (checkpoint \($0))" } ?? "") does not match its checksum: the store's bytes were damaged"
        )
    }

    /// The checksum: the 64-bit hash folded to 32 bits, which SQLite stores in 4 bytes instead
    /// of 8 (a damaged row passes with odds of one in four billion).
    private var value: Int64 { Int64(Int32(truncatingIfNeeded: state ^ (state >> 32))) }

    private static let nullSeed: UInt64 = 0x6E75_6C6C_6E75_6C6C

    private mutating func combine(_ bytes: UnsafeRawBufferPointer?) {
        guard let bytes else {
            state = XXHash64.hash(UnsafeRawBufferPointer(start: nil, count: 0), seed: state ^ Self.nullSeed)
            return
        }
        state = XXHash64.hash(bytes, seed: state)
    }

    private mutating func combine(_ data: Data) { data.withUnsafeBytes { combine($0) } }

    private mutating func combine(_ text: String) {
        var text = text
        text.withUTF8 { combine(UnsafeRawBufferPointer($0)) }
    }

    private mutating func combine(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { combine($0) }
    }

    private mutating func combine(_ value: Int64) { combine(UInt64(bitPattern: value)) }

    private mutating func combine(_ value: Double?) {
        guard let value else { return combine(UnsafeRawBufferPointer?.none) }
        combine(value.bitPattern)
    }

    private mutating func combine(_ id: CheckpointID?) {
        guard let id else { return combine(UnsafeRawBufferPointer?.none) }
        combine(id.high)
        combine(id.low)
    }

}

/// A stored checkpoint row's fields as a backend's driver returns them, for
/// ``RowChecksum/verify(_:thread:namespace:)``.
package protocol CheckpointRowFields {
    func id() throws(CheckpointError) -> CheckpointID
    func parentID() throws(CheckpointError) -> CheckpointID?
    func step() throws(CheckpointError) -> Int64
    /// The stored creation time; `nil` when the row stores none.
    func storedCreatedAt() throws(CheckpointError) -> Double?
    /// Hands a blob column's bytes to `body`, `nil` for NULL; the metadata as the canonical
    /// JSON text ``Metadata`` encodes to.
    func withBytes(_ column: RowChecksum.Column, _ body: (UnsafeRawBufferPointer?) -> Void)
    /// The stored checksum; `nil` when the row has none.
    func checksum() throws(CheckpointError) -> Int64?
    /// The decoded metadata, empty when the row has none. The default decodes the
    /// ``RowChecksum/Column/metadata`` bytes.
    func metadata() throws(CheckpointError) -> Metadata
}

/// The identity and plain columns of a checkpoint row whose checksum matched.
package struct VerifiedRow: Sendable {
    package var id: CheckpointID
    package var parentID: CheckpointID?
    package var step: Int64
    /// The stored creation time; `nil` when it is the id's own timestamp.
    package var storedCreatedAt: Double?

    package init(id: CheckpointID, parentID: CheckpointID?, step: Int64, storedCreatedAt: Double?) {
        self.id = id
        self.parentID = parentID
        self.step = step
        self.storedCreatedAt = storedCreatedAt
    }

    /// The creation time: the stored one, or the id's timestamp.
    package var createdAt: Date { storedCreatedAt.map { Date(timeIntervalSince1970: $0) } ?? id.timestamp }
}

import Foundation

// The semantics every row-per-checkpoint backend shares, written once: what a put's head check
// decides and says, the pause/resume state machine, how a stored row becomes a `Checkpoint` or
// a `CheckpointSummary`, how retention reads rows and rewrites the ones it keeps for their
// content. A backend only brings atomicity (its transaction or statement) and the bytes.

/// The head check of a put, the same on every backend.
package enum PutRules {
    /// Checks a put against the thread's head as the store sees it in the put's atomic step.
    ///
    /// - Parameters:
    ///   - head: the head of the thread's namespace, `nil` when it has no checkpoint.
    ///   - parentExists: whether `write.parentID` names a checkpoint of the thread that is still
    ///     in its history (not asked when the write has no parent).
    /// - Throws: ``CheckpointError/Code/conflict`` when `expecting` wants the parent to be the
    ///   head and it is not; ``CheckpointError/Code/invalidArgument`` when the id is not newer
    ///   than the head; ``CheckpointError/Code/notFound`` when the parent does not exist.
    package static func check(
        _ write: CheckpointWrite, expecting: PutExpectation, head: CheckpointID?, parentExists: () throws -> Bool
    ) throws {
        if expecting.requiresParentIsHead, head != write.parentID {
            throw CheckpointError(
                .conflict,
                write.parentID == nil
                    ? "thread '\(write.thread)' already has checkpoints; read its head before writing"
                    : "thread '\(write.thread)' has a new head since this writer read it; nothing was written")
        }
        if let head, write.id <= head {
            throw CheckpointError(
                .invalidArgument,
                "checkpoint \(write.id) is not newer than the thread's head \(head); make ids with CheckpointID.make(after:)"
            )
        }
        if let parentID = write.parentID, parentID != head, try !parentExists() {
            throw CheckpointError(.notFound, "thread '\(write.thread)' has no checkpoint \(parentID) to follow")
        }
    }
}

/// The pause/resume state machine, the same on every backend: an answer is recorded once, for
/// the pause of the thread's head, before it expires.
package enum ResumeRules {
    /// Decides whether an answer may be recorded, in the store's atomic step.
    ///
    /// - Parameters:
    ///   - head: the thread's head and its pause; `nil` when the thread has no checkpoint.
    ///   - answered: whether `pauseID` has an answer already.
    /// - Returns: the id of the checkpoint the answer belongs to (the head).
    /// - Throws: ``CheckpointError/Code/notFound``, ``CheckpointError/Code/alreadyResumed``,
    ///   ``CheckpointError/Code/stalePause`` or ``CheckpointError/Code/pauseExpired``, in that order.
    package static func check(
        thread: ThreadID, pauseID: UUID, head: (id: CheckpointID, pause: Pause?)?, at now: Date,
        answered: () throws -> Bool
    ) throws -> CheckpointID {
        guard let head else { throw CheckpointError(.notFound, "thread '\(thread)' has no checkpoint") }
        if try answered() { throw CheckpointError(.alreadyResumed, "pause \(pauseID) was answered already") }
        guard let pause = head.pause, pause.id == pauseID else {
            throw CheckpointError(.stalePause, "pause \(pauseID) is not the head of thread '\(thread)'")
        }
        guard !pause.isExpired(at: now) else {
            throw CheckpointError(.pauseExpired, "pause \(pauseID) expired before it was answered")
        }
        return head.id
    }
}

extension CheckpointRowFields {
    /// The row's metadata, empty when it has none.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when it is not metadata JSON.
    package func metadata() throws(CheckpointError) -> Metadata {
        guard let data = data(.metadata) else { return [:] }
        return try Metadata.decodeJSON(data)
    }

    /// The row's pause, `nil` when it has none.
    package func pause() throws(CheckpointError) -> Pause? {
        guard let data = data(.pause) else { return nil }
        return try Pause(decoding: data)
    }

    /// The row's manifest, `nil` for a row that left the history (kept for its content).
    package func manifest(owner: CheckpointID) throws(CheckpointError) -> Manifest? {
        guard let data = data(.manifest), !data.isEmpty else { return nil }
        return try Manifest(decoding: data, owner: owner)
    }

    /// A blob column's bytes, copied; `nil` for NULL.
    package func data(_ column: RowChecksum.Column) -> Data? {
        var copy: Data?
        withBytes(column) { bytes in copy = bytes.map { Data($0) } }
        return copy
    }

    /// The summary of a row that passed ``RowChecksum/verify(_:thread:namespace:)``.
    package func summary(_ row: VerifiedRow, thread: ThreadID, namespace: String) throws -> CheckpointSummary {
        CheckpointSummary(
            id: row.id, thread: thread, namespace: namespace, parentID: row.parentID, step: Int(row.step),
            createdAt: row.createdAt, metadata: try metadata())
    }

    /// The checkpoint of a row that passed ``RowChecksum/verify(_:thread:namespace:)``, its
    /// channels materialized by `channels` from its manifest.
    ///
    /// - Returns: the checkpoint and its manifest.
    ///
    /// - Parameter origins: where each list came from, asked after `channels` (see
    ///   ``Checkpoint/listOrigins``).
    package func checkpoint(
        _ row: VerifiedRow, thread: ThreadID, namespace: String, answer: PauseAnswer?,
        channels: (Manifest) throws -> [String: ChannelValue],
        origins: (Manifest) -> [String: ListOrigin] = { _ in [:] }
    ) throws -> (checkpoint: Checkpoint, manifest: Manifest) {
        guard let manifest = try manifest(owner: row.id) else {
            throw CheckpointError(.corruptData, "checkpoint \(row.id) of thread '\(thread)' has no manifest")
        }
        let summary = try summary(row, thread: thread, namespace: namespace)
        var checkpoint = Checkpoint(summary: summary, channels: try channels(manifest), pause: try pause(), answer: answer)
        checkpoint.listOrigins = origins(manifest)
        return (checkpoint, manifest)
    }

    /// What retention needs to know of a row.
    package func retentionRow(_ row: VerifiedRow, awaitsAnswer: Bool) throws(CheckpointError) -> RetentionRow {
        RetentionRow(
            id: row.id, manifest: try manifest(owner: row.id), awaitsAnswer: awaitsAnswer,
            links: try data(.segments).map { data throws(CheckpointError) in
                try RowBlobs.links(in: data, parentID: row.parentID)
            } ?? [:], createdAt: row.createdAt)
    }

    /// The row that stays of a checkpoint that left the history: no manifest, metadata or
    /// pause, only the content later checkpoints still use, with its new checksum.
    package func tombstone(
        _ row: VerifiedRow, keeping kept: (values: Set<String>, segments: Set<String>), thread: ThreadID,
        namespace: String
    ) throws(CheckpointError) -> (segments: Data?, payload: Data?, checksum: Int64) {
        let segments = try data(.segments).flatMap { data throws(CheckpointError) in
            try RowBlobs.keepingSegments(data, of: kept.segments)
        }
        let payload = try data(.payload).flatMap { data throws(CheckpointError) in
            try RowBlobs.keepingPayloads(data, of: kept.values)
        }
        let checksum = RowChecksum.checkpoint(
            thread: thread, namespace: namespace, id: row.id, parentID: row.parentID, step: row.step,
            createdAt: row.storedCreatedAt, metadata: nil, manifest: Data(), segments: segments, payload: payload,
            pause: nil)
        return (segments, payload, checksum)
    }
}

/// Checks that the rows a range read returns are the range asked for, newest first: a store
/// whose index is damaged can return a row (with a valid checksum) from outside the range or
/// out of order, which would be another history than the one written.
package struct DescendingRows {
    private let bound: CheckpointID?
    private let includesBound: Bool
    private let thread: ThreadID
    private var last: CheckpointID?

    /// - Parameters:
    ///   - before: the read's upper bound, excluded; `nil` for none.
    package init(thread: ThreadID, before: CheckpointID?) {
        self.thread = thread
        bound = before
        includesBound = false
    }

    /// - Parameters:
    ///   - through: the read's upper bound, included.
    package init(thread: ThreadID, through: CheckpointID) {
        self.thread = thread
        bound = through
        includesBound = true
    }

    /// Accepts the next row's id, or throws ``CheckpointError/Code/corruptData``.
    package mutating func accept(_ id: CheckpointID) throws(CheckpointError) {
        let outOfRange =
            if let last { id >= last } else if let bound { includesBound ? id > bound : id >= bound } else { false }
        if outOfRange {
            throw CheckpointError(
                .corruptData,
                "a range of thread '\(thread)' came back out of order (checkpoint \(id)): the store's index is damaged")
        }
        last = id
    }
}

/// A checkpoint row about to be written, computed once for every backend from a put: its
/// stored creation time, metadata text, manifest and blobs, and its checksum.
package struct NewCheckpointRow: Sendable {
    /// The creation time to store, in seconds since 1970. (Rows written before 2026-12-03
    /// hold none when it was the id's own timestamp; their readers take the id's.)
    package var createdAt: Double?
    /// The metadata's canonical JSON; `nil` when there is none.
    package var metadata: Data?
    package var manifest: Data
    package var segments: Data?
    package var payload: Data?
    package var pause: Data?
    package var checksum: Int64

    /// The row of `write`, resolved against its parent into `resolved`.
    package init(_ write: CheckpointWrite, resolved: ResolvedWrite) throws(CheckpointError) {
        createdAt = write.createdAt.timeIntervalSince1970
        metadata = write.metadata.isEmpty ? nil : try write.metadata.jsonData()
        manifest = resolved.manifest.encoded(owner: write.id)
        segments = resolved.encodedSegments(parentID: write.parentID)
        payload = resolved.encodedPayloads()
        pause = write.pause?.encoded()
        checksum = RowChecksum.checkpoint(
            thread: write.thread, namespace: write.namespace, id: write.id, parentID: write.parentID,
            step: Int64(write.step), createdAt: createdAt, metadata: metadata, manifest: manifest, segments: segments,
            payload: payload, pause: pause)
    }
}

import Checkpointing
import Foundation

/// Where each column of ``PostgresSchema/rowColumns`` sits, counted from the first.
enum PostgresRowColumn {
    static let id = 0
    static let parentID = 1
    static let step = 2
    static let createdAt = 3
    static let metadata = 4
    static let manifest = 5
    static let segments = 6
    static let payload = 7
    static let pause = 8
    static let checksum = 9
    /// The number of columns, so that a query's next column is `first + count`.
    static let count = 10
}

/// The ``PostgresSchema/rowColumns`` of one result row, from column `first` on.
///
/// `jsonb` keeps neither the key order nor the spelling of the JSON a put sent, so the
/// metadata is decoded and encoded again to the canonical text the checksum covers.
struct PostgresRowFields: CheckpointRowFields {
    let result: PostgresResult
    let row: Int
    let first: Int
    /// The decoded metadata, empty when the row has none.
    private let decodedMetadata: Metadata
    private let canonicalMetadata: Data?

    init(_ result: PostgresResult, row: Int, first: Int) throws(CheckpointError) {
        self.result = result
        self.row = row
        self.first = first
        if result.isNull(row, first + PostgresRowColumn.metadata) {
            decodedMetadata = [:]
            canonicalMetadata = nil
        } else {
            decodedMetadata = try Metadata.decodeJSON(try result.jsonb(row, first + PostgresRowColumn.metadata))
            canonicalMetadata = try decodedMetadata.jsonData()
        }
    }

    func metadata() -> Metadata { decodedMetadata }

    func id() throws(CheckpointError) -> CheckpointID { try result.checkpointID(row, first + PostgresRowColumn.id) }
    func parentID() throws(CheckpointError) -> CheckpointID? {
        try result.optionalCheckpointID(row, first + PostgresRowColumn.parentID)
    }
    func step() throws(CheckpointError) -> Int64 { try result.int64(row, first + PostgresRowColumn.step) }
    func storedCreatedAt() throws(CheckpointError) -> Double? {
        result.isNull(row, first + PostgresRowColumn.createdAt)
            ? nil : try result.double(row, first + PostgresRowColumn.createdAt)
    }
    func withBytes(_ column: RowChecksum.Column, _ body: (UnsafeRawBufferPointer?) -> Void) {
        let index: Int
        switch column {
        case .metadata:
            guard let canonicalMetadata else { return body(nil) }
            return canonicalMetadata.withUnsafeBytes { body($0) }
        case .manifest: index = PostgresRowColumn.manifest
        case .segments: index = PostgresRowColumn.segments
        case .payload: index = PostgresRowColumn.payload
        case .pause: index = PostgresRowColumn.pause
        }
        body(result.isNull(row, first + index) ? nil : result.bytes(row, first + index))
    }
    func checksum() throws(CheckpointError) -> Int64? {
        result.isNull(row, first + PostgresRowColumn.checksum)
            ? nil : try result.int64(row, first + PostgresRowColumn.checksum)
    }

    /// A blob column's bytes, copied.
    func data(_ column: Int) -> Data { result.data(row, first + column) }
    func isNull(_ column: Int) -> Bool { result.isNull(row, first + column) }

    /// Checks the row against its checksum; see ``RowChecksum/verify(_:thread:namespace:)``.
    func verified(thread: ThreadID, namespace: String, id: CheckpointID? = nil) throws(CheckpointError) -> VerifiedRow {
        try RowChecksum.verify(self, thread: thread, namespace: namespace, id: id)
    }
}

extension PostgresResult {
    /// The checkpoint row whose ``PostgresSchema/rowColumns`` start at column `first` of
    /// `row`, checked against its checksum.
    func verifiedRow(
        _ row: Int, at first: Int, thread: ThreadID, namespace: String, id: CheckpointID? = nil
    ) throws(CheckpointError) -> (row: VerifiedRow, fields: PostgresRowFields) {
        let fields = try PostgresRowFields(self, row: row, first: first)
        return (try fields.verified(thread: thread, namespace: namespace, id: id), fields)
    }

    /// The answer whose ``PostgresSchema/answerColumns`` start at column `first` of `row`,
    /// checked against its checksum; `nil` when there is none (a LEFT JOIN that matched none).
    func verifiedAnswer(
        _ row: Int, at first: Int, thread: ThreadID, namespace: String, checkpoint id: CheckpointID
    ) throws(CheckpointError) -> PauseAnswer? {
        guard !isNull(row, first) else { return nil }
        let answeredAt = try double(row, first + 2)
        let answer = PauseAnswer(
            pauseID: try UUID(bytes: data(row, first)), response: data(row, first + 1),
            answeredAt: Date(timeIntervalSince1970: answeredAt))
        let computed = RowChecksum.answer(
            thread: thread, namespace: namespace, checkpointID: id, pauseID: answer.pauseID, response: answer.response,
            answeredAt: answeredAt)
        guard !isNull(row, first + 3), try int64(row, first + 3) == computed else {
            throw RowChecksum.mismatch(thread: thread, checkpoint: id, what: "answer")
        }
        return answer
    }
}

enum PostgresRowChecksums {
    /// Gives every checkpoint and answer row that has no checksum one computed from its
    /// current content, a batch at a time (the migration that adds checksums runs it, in its
    /// transaction).
    static func computeForExistingRows(_ connection: PostgresConnection) throws {
        while true {
            let rows = try connection.query(
                text: """
                    SELECT t.thread, t.namespace, c.thread_key, \(PostgresSchema.rowColumns)
                    FROM checkpoint_rows c JOIN checkpoint_threads t ON t.key = c.thread_key
                    WHERE c.checksum IS NULL LIMIT 1000
                    """, [])
            guard rows.rowCount > 0 else { break }
            for row in 0..<rows.rowCount {
                let fields = try PostgresRowFields(rows, row: row, first: 3)
                let checksum = RowChecksum.checkpoint(
                    thread: try ThreadID(rows.text(row, 0)), namespace: rows.text(row, 1), id: try fields.id(),
                    parentID: try fields.parentID(), step: try fields.step(), createdAt: try fields.storedCreatedAt(),
                    blob: fields.withBytes)
                _ = try connection.query(
                    text: "UPDATE checkpoint_rows SET checksum = $1 WHERE thread_key = $2 AND id = $3",
                    [.int8(checksum), .int8(try rows.int64(row, 2)), .id(try fields.id())])
            }
        }
        while true {
            let rows = try connection.query(
                text: """
                    SELECT t.thread, t.namespace, a.thread_key, a.checkpoint_id, a.pause_id, a.response, a.answered_at
                    FROM checkpoint_answers a JOIN checkpoint_threads t ON t.key = a.thread_key
                    WHERE a.checksum IS NULL LIMIT 1000
                    """, [])
            guard rows.rowCount > 0 else { break }
            for row in 0..<rows.rowCount {
                let checksum = RowChecksum.answer(
                    thread: try ThreadID(rows.text(row, 0)), namespace: rows.text(row, 1),
                    checkpointID: try rows.checkpointID(row, 3), pauseID: try UUID(bytes: rows.data(row, 4)),
                    response: rows.data(row, 5), answeredAt: try rows.double(row, 6))
                _ = try connection.query(
                    text: "UPDATE checkpoint_answers SET checksum = $1 WHERE thread_key = $2 AND checkpoint_id = $3",
                    [.int8(checksum), .int8(try rows.int64(row, 2)), .bytes(rows.data(row, 3))])
            }
        }
    }
}

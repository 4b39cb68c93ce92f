import Checkpointing
import Foundation

/// Where each column of ``Schema/rowColumns`` sits, counted from the first.
enum RowColumn {
    static let id: Int32 = 0
    static let parentID: Int32 = 1
    static let step: Int32 = 2
    static let createdAt: Int32 = 3
    static let metadata: Int32 = 4
    static let manifest: Int32 = 5
    static let segments: Int32 = 6
    static let payload: Int32 = 7
    static let pause: Int32 = 8
    static let checksum: Int32 = 9
    /// The number of columns, so that a query's next column is `first + count`.
    static let count: Int32 = 10
}

/// The ``Schema/rowColumns`` of a statement's current row, from column `first` on.
struct SQLiteRowFields: CheckpointRowFields {
    let statement: SQLiteStatement
    let first: Int32

    func id() throws(CheckpointError) -> CheckpointID { try statement.checkpointID(first + RowColumn.id) }
    func parentID() throws(CheckpointError) -> CheckpointID? { try statement.optionalCheckpointID(first + RowColumn.parentID) }
    func step() -> Int64 { statement.int64(first + RowColumn.step) }
    func storedCreatedAt() -> Double? {
        statement.isNull(first + RowColumn.createdAt) ? nil : statement.double(first + RowColumn.createdAt)
    }
    func withBytes(_ column: RowChecksum.Column, _ body: (UnsafeRawBufferPointer?) -> Void) {
        // The metadata column holds the canonical JSON text the put wrote, byte for byte.
        let index: Int32 =
            switch column {
            case .metadata: RowColumn.metadata
            case .manifest: RowColumn.manifest
            case .segments: RowColumn.segments
            case .payload: RowColumn.payload
            case .pause: RowColumn.pause
            }
        body(statement.blob(first + index))
    }
    func checksum() -> Int64? { statement.isNull(first + RowColumn.checksum) ? nil : statement.int64(first + RowColumn.checksum) }
}

extension SQLiteStatement {
    /// The checkpoint row whose ``Schema/rowColumns`` start at column `first`, checked
    /// against its checksum; see ``RowChecksum/verify(_:thread:namespace:)``.
    func verifiedRow(
        at first: Int32, thread: ThreadID, namespace: String, id: CheckpointID? = nil
    ) throws(CheckpointError) -> VerifiedRow {
        try RowChecksum.verify(
            SQLiteRowFields(statement: self, first: first), thread: thread, namespace: namespace, id: id)
    }

    /// The answer whose ``Schema/answerColumns`` start at column `first`, checked against its
    /// checksum; `nil` when the row has no answer (a LEFT JOIN that matched none).
    func verifiedAnswer(
        at first: Int32, thread: ThreadID, namespace: String, checkpoint id: CheckpointID
    ) throws(CheckpointError) -> PauseAnswer? {
        guard !isNull(first) else { return nil }
        let answer = PauseAnswer(
            pauseID: try UUID(bytes: data(first)), response: data(first + 1),
            answeredAt: Date(timeIntervalSince1970: double(first + 2)))
        let computed = RowChecksum.answer(
            thread: thread, namespace: namespace, checkpointID: id, pauseID: answer.pauseID, response: answer.response,
            answeredAt: double(first + 2))
        guard !isNull(first + 3), int64(first + 3) == computed else {
            throw RowChecksum.mismatch(thread: thread, checkpoint: id, what: "answer")
        }
        return answer
    }
}

enum RowChecksums {
    /// Gives every checkpoint and answer row that has no checksum one computed from its
    /// current content (the migration that adds checksums runs it, in its transaction).
    static func computeForExistingRows(_ connection: SQLiteConnection) throws {
        var checkpoints: [(key: Int64, id: Data, checksum: Int64)] = []
        let rows = try connection.statement(
            "SELECT t.thread, t.namespace, c.thread_key, \(Schema.rowColumns) FROM checkpoints c JOIN threads t ON t.key = c.thread_key WHERE c.checksum IS NULL"
        )
        while try rows.step() {
            let thread = try ThreadID(rows.text(0))
            let fields = SQLiteRowFields(statement: rows, first: 3)
            let checksum = RowChecksum.checkpoint(
                thread: thread, namespace: rows.text(1), id: try fields.id(), parentID: try fields.parentID(),
                step: fields.step(), createdAt: fields.storedCreatedAt(), blob: fields.withBytes)
            checkpoints.append((rows.int64(2), rows.data(3 + RowColumn.id), checksum))
        }
        rows.reset()
        let update = try connection.statement("UPDATE checkpoints SET checksum = ?1 WHERE thread_key = ?2 AND id = ?3")
        for row in checkpoints {
            update.reset()
            try update.bind(1, row.checksum)
            try update.bind(2, row.key)
            try update.bind(3, row.id)
            try update.run()
        }

        var answers: [(key: Int64, id: Data, checksum: Int64)] = []
        let answerRows = try connection.statement(
            """
            SELECT t.thread, t.namespace, a.thread_key, a.checkpoint_id, a.pause_id, a.response, a.answered_at
            FROM answers a JOIN threads t ON t.key = a.thread_key WHERE a.checksum IS NULL
            """)
        while try answerRows.step() {
            let checksum = RowChecksum.answer(
                thread: try ThreadID(answerRows.text(0)), namespace: answerRows.text(1),
                checkpointID: try answerRows.checkpointID(3), pauseID: try UUID(bytes: answerRows.data(4)),
                response: answerRows.data(5), answeredAt: answerRows.double(6))
            answers.append((answerRows.int64(2), answerRows.data(3), checksum))
        }
        answerRows.reset()
        let updateAnswer = try connection.statement(
            "UPDATE answers SET checksum = ?1 WHERE thread_key = ?2 AND checkpoint_id = ?3")
        for row in answers {
            updateAnswer.reset()
            try updateAnswer.bind(1, row.checksum)
            try updateAnswer.bind(2, row.key)
            try updateAnswer.bind(3, row.id)
            try updateAnswer.run()
        }
    }
}

@testable import Checkpointing
import Foundation
import Testing

/// A store whose index is damaged can return valid rows (their checksums match) from outside
/// a range, out of order, or for a lookup of another id: that is corruptData, never other state.
@Suite("Reads return the rows asked for")
struct RowOrderTests {
    /// A row as a store returns it, with the checksum it was written with.
    struct Row: CheckpointRowFields {
        var thread: ThreadID
        var rowID: CheckpointID
        var manifest = Data([1, 0])
        func id() -> CheckpointID { rowID }
        func parentID() -> CheckpointID? { nil }
        func step() -> Int64 { 0 }
        func storedCreatedAt() -> Double? { nil }
        func withBytes(_ column: RowChecksum.Column, _ body: (UnsafeRawBufferPointer?) -> Void) {
            guard column == .manifest else { return body(nil) }
            manifest.withUnsafeBytes { body($0) }
        }
        func checksum() -> Int64? {
            RowChecksum.checkpoint(
                thread: thread, namespace: "", id: rowID, parentID: nil, step: 0, createdAt: nil, metadata: nil,
                manifest: manifest, segments: nil, payload: nil, pause: nil)
        }
    }

    @Test func aLookupThatReturnsAnotherValidRowIsCorruptData() throws {
        let row = Row(thread: thread, rowID: ids[1])
        #expect(try RowChecksum.verify(row, thread: thread, namespace: "", id: ids[1]).id == ids[1])
        let error = try #require(throws: CheckpointError.self) {
            try RowChecksum.verify(row, thread: thread, namespace: "", id: ids[2])
        }
        #expect(error.code == .corruptData)
        #expect(error.message.contains("index"), "\(error)")
        // The same row read for another thread fails its checksum.
        #expect(throws: CheckpointError.self) {
            try RowChecksum.verify(row, thread: try ThreadID("acme:other"), namespace: "", id: ids[1])
        }
    }

    let thread = try! ThreadID("acme:order")
    let ids: [CheckpointID] = {
        var ids: [CheckpointID] = []
        for _ in 0..<4 { ids.append(CheckpointID.make(after: ids.last)) }
        return ids
    }()

    @Test func rowsNewestFirstWithinTheBoundPass() throws {
        var order = DescendingRows(thread: thread, before: ids[3])
        for id in ids[0..<3].reversed() { try order.accept(id) }
        var through = DescendingRows(thread: thread, through: ids[3])
        for id in ids.reversed() { try through.accept(id) }
    }

    @Test func aRowOutsideTheBoundIsCorruptData() throws {
        var order = DescendingRows(thread: thread, before: ids[2])
        #expect(throws: CheckpointError.self) { try order.accept(ids[2]) }
        var through = DescendingRows(thread: thread, through: ids[2])
        #expect(throws: CheckpointError.self) { try through.accept(ids[3]) }
    }

    @Test func aRowOutOfOrderOrTwiceIsCorruptData() throws {
        var order = DescendingRows(thread: thread, before: nil)
        try order.accept(ids[1])
        let error = try #require(throws: CheckpointError.self) { try order.accept(ids[2]) }
        #expect(error.code == .corruptData)
        #expect(!error.isRetryable)
        var twice = DescendingRows(thread: thread, before: nil)
        try twice.accept(ids[1])
        #expect(throws: CheckpointError.self) { try twice.accept(ids[1]) }
    }
}

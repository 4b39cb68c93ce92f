@testable import Checkpointing
import Foundation
import Testing

/// A range read from a store whose index is damaged can return valid rows from outside the
/// range or out of order: that is corruptData, never another history.
@Suite("Range reads come back in range and in order")
struct RowOrderTests {
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

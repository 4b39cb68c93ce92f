import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// Every date a checkpointer stores reads back within a microsecond: a checkpoint's
    /// creation time (through a read and through history), a pause's creation and expiry, an
    /// answer's time, and (with the inbox) a listed pause's times.
    static let datesReadBack = ConformanceCheck("dates read back within a microsecond") { checkpointer in
        let thread = try uniqueThread("dates")
        // Times with sub-millisecond parts, far from any rounding boundary a store might use.
        let created = Date(timeIntervalSinceReferenceDate: 812_345_678.123_456_7)
        let pausedAt = Date(timeIntervalSinceReferenceDate: 812_345_679.654_321_2)
        let expires = Date(timeIntervalSinceReferenceDate: 812_349_999.000_123_4)
        let answered = Date(timeIntervalSinceReferenceDate: 812_345_680.987_654_3)
        let pause = try Pause(reason: "dates", prompt: Data("1".utf8), createdAt: pausedAt, expiresAt: expires)
        let write = CheckpointWrite(
            thread: thread, parentID: nil, step: 0, createdAt: created, channels: ["v": .value(Data("1".utf8))],
            pause: pause)
        try await checkpointer.put(write)
        func close(_ read: Date?, _ written: Date) -> Bool {
            guard let read else { return false }
            return abs(read.timeIntervalSince(written)) < 1e-6
        }
        if declares(.inbox) {
            let listed = try await allPausedThreads(checkpointer, InboxQuery(reason: "dates")).first?.pause
            try await require(
                close(listed?.createdAt, pausedAt) && close(listed?.expiresAt, expires),
                "the inbox lists the pause with its times (\(String(describing: listed?.createdAt)), \(String(describing: listed?.expiresAt)))")
        }
        try await checkpointer.resume(thread: thread, namespace: "", pauseID: pause.id, response: Data("2".utf8), at: answered)
        let read = try await checkpointer.checkpoint(thread: thread, namespace: "", id: write.id)
        try await require(close(read?.createdAt, created), "a read returns the creation time written: \(String(describing: read?.createdAt)) for \(created)")
        try await require(
            close(read?.pause?.createdAt, pausedAt) && close(read?.pause?.expiresAt, expires),
            "a read returns the pause's times: \(String(describing: read?.pause))")
        try await require(
            close(read?.answer?.answeredAt, answered),
            "a read returns the answer's time: \(String(describing: read?.answer?.answeredAt)) for \(answered)")
        let listed = try await checkpointer.history(thread: thread, limit: 1).first
        try await require(close(listed?.createdAt, created), "history returns the creation time written")
    }
}

import CheckpointRuntime
import Testing

/// When waiting for a reply on the caller's thread stops and starts again.
@Suite("Reply times")
struct ReplyTimesTests {
    @Test func oneSlowReplyDoesNotStopWaitingButMostlyLateOnesDo() {
        let times = ReplyTimes()
        #expect(times.waitingPays, "a new pool waits")
        times.record(late: true)  // a fresh connection's first statement
        #expect(times.waitingPays)
        for _ in 0..<7 { times.record(late: true) }
        let decisions = (0..<16).map { _ in times.waitingPays }
        #expect(decisions.filter { $0 }.count == 2, "8 of the last 16 late: only every 8th call still waits")
        for _ in 0..<9 { times.record(late: false) }
        #expect((0..<8).allSatisfy { _ in times.waitingPays }, "quick again: every call waits")
    }
}

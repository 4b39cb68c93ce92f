import CCheckpointPoll
import Glibc
import Synchronization

/// Bookkeeping for calls that run on the caller's thread (a free connection used inline)
/// instead of being handed to a connection's thread.
package enum InlineCallYield {
    /// Inline calls so far, in the whole process.
    private static let count = Atomic<Int>(0)

    /// A call that ran inline did not suspend its task: a task that loops on such calls (reads
    /// that keep finding a free connection) would keep a thread of the shared pool forever, and
    /// on a small machine every other task (another writer, a cache update) would wait for it.
    /// So every 16th inline call of the process lets the executor run what else is waiting: a
    /// loop of calls keeps a thread for 16 calls at most. (A yield after every call cost 8 µs of
    /// a 16 µs SQLite head read on the benchmark's machine; one in 16 costs half a microsecond.)
    package static func afterCall() async {
        if count.wrappingAdd(1, ordering: .relaxed).oldValue % 16 == 15 {
            await Task.yield()
        }
    }
}

/// A connection whose calls can be split into sending one request and receiving its reply,
/// so that the caller's thread can send it and wait a bounded time for the reply (see
/// ``ConnectionPool/run(sending:receiving:otherwise:)``).
package protocol RequestReplyConnection: PooledConnection {
    /// Whether the reply to the request sent has arrived (receiving it will not block),
    /// waiting up to `wait` for it.
    func replyArrives(within wait: Duration) throws -> Bool
}

/// Waits until `descriptor` has something to read, for at most `wait`.
///
/// - Returns: whether it became readable (an interrupted wait counts as not yet).
/// - Throws: the `errno` of a failed wait.
package func waitUntilReadable(_ descriptor: Int32, within wait: Duration) throws -> Bool {
    let ready = checkpoint_wait_readable(descriptor, wait.nanoseconds)
    if ready < 0 && errno != EINTR { throw POSIXWaitError(code: errno) }
    return ready > 0
}

/// A failed wait for a socket (`errno`).
package struct POSIXWaitError: Error, CustomStringConvertible {
    package var code: Int32
    package var description: String { "waiting for the socket failed: \(String(cString: strerror(code)))" }
}

/// Whether the server's recent replies came within the inline wait, which decides whether
/// waiting for a reply on the caller's thread pays.
///
/// It keeps the outcome of the last 16 replies (came in time or late). While at least half
/// were late (a distant server, a loaded one), calls stop waiting on the caller's thread,
/// except every 8th, which keeps measuring so that waiting resumes once replies are quick
/// again. One slow reply (a fresh connection's first statement, a checkpoint on the server)
/// does not stop it.
package final class ReplyTimes: Sendable {
    /// One bit per recent reply, newest lowest: 1 when it came later than the wait.
    private let late = Atomic<UInt16>(0)
    private let calls = Atomic<UInt8>(0)

    package init() {}

    /// Records whether a reply came within the wait.
    package func record(late isLate: Bool) {
        let old = late.load(ordering: .relaxed)
        late.store(old << 1 | (isLate ? 1 : 0), ordering: .relaxed)
    }

    /// Whether the next call should wait for its reply on the caller's thread.
    package var waitingPays: Bool {
        if late.load(ordering: .relaxed).nonzeroBitCount < 8 { return true }
        return calls.wrappingAdd(1, ordering: .relaxed).oldValue % 8 == 0
    }
}

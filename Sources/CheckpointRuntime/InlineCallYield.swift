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

/// A moving average of how long a server takes to answer, which decides whether waiting for
/// a reply on the caller's thread pays.
package final class ReplyTimes: Sendable {
    /// The average in nanoseconds, updated by every reply (a weight of 1/8 for the newest).
    private let average = Atomic<Int64>(0)

    package init() {}

    /// Records one reply's time from sending the request.
    package func record(_ elapsed: Duration) {
        let sample = elapsed.nanoseconds
        let old = average.load(ordering: .relaxed)
        average.store(old == 0 ? sample : old + (sample - old) / 8, ordering: .relaxed)
    }

    /// The recent average reply time.
    package var typical: Duration { .nanoseconds(average.load(ordering: .relaxed)) }
}

import CCheckpointSQLite
import Logging
import Synchronization

/// Runs WAL checkpoints on a connection of their own once the WAL grows past a threshold,
/// so that no commit pays for checkpointing (SQLite's automatic checkpoint runs inside the
/// commit that crosses its threshold).
final class WALCheckpointMonitor: Sendable {
    private let threshold: Int32
    private let connection: SerializedConnection
    private let isScheduled = Atomic<Bool>(false)
    /// The WAL size at the last scheduled checkpoint; only the writer's hook touches it.
    private let lastTrigger = Atomic<Int32>(0)
    private let logger: Logger

    init(threshold: Int, connection: SerializedConnection, logger: Logger) {
        self.threshold = Int32(clamping: threshold)
        self.connection = connection
        self.logger = logger
    }

    /// Installs the monitor as the writer's WAL hook. The connection keeps the monitor alive.
    func install(on writer: SQLiteConnection) {
        writer.walMonitor = self
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_wal_hook(
            writer.handle,
            { context, _, _, pages in
                guard let context else { return SQLITE_OK }
                Unmanaged<WALCheckpointMonitor>.fromOpaque(context).takeUnretainedValue().walDidGrow(to: pages)
                return SQLITE_OK
            }, context)
    }

    /// Called after each commit with the WAL's size in frames. Each time the WAL grew by
    /// `threshold` frames since the last checkpoint, the background connection first copies
    /// the WAL into the database with a passive checkpoint, which never holds writers back,
    /// then finishes with a restart checkpoint, which copies the few frames written meanwhile
    /// and lets the next commit start the WAL over from its beginning. Without that restart, a
    /// WAL written to without pause never restarts: every commit would then extend the file,
    /// and with `synchronous=FULL` each fsync would also commit the file system's journal.
    /// The restart holds new writes back only while it copies those last frames, and gives up
    /// after a few milliseconds when a write is under way.
    private func walDidGrow(to pages: Int32) {
        var last = lastTrigger.load(ordering: .relaxed)
        if pages < last {  // the WAL was restarted
            last = 0
            lastTrigger.store(0, ordering: .relaxed)
        }
        guard pages - last >= threshold, !isScheduled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lastTrigger.store(pages, ordering: .relaxed)
        connection.runDetached { [self] connection in
            for mode in [SQLITE_CHECKPOINT_PASSIVE, SQLITE_CHECKPOINT_RESTART] {
                var logFrames: Int32 = 0
                var checkpointed: Int32 = 0
                let result = sqlite3_wal_checkpoint_v2(connection.handle, nil, mode, &logFrames, &checkpointed)
                if result == SQLITE_BUSY { break }
                if result != SQLITE_OK {
                    logger.warning("WAL checkpoint failed", metadata: ["sqlite": "\(connection.error(result))"])
                    break
                }
                logger.trace(
                    "WAL checkpoint",
                    metadata: ["mode": "\(mode)", "frames": "\(logFrames)", "checkpointed": "\(checkpointed)"])
            }
            isScheduled.store(false, ordering: .releasing)
        }
    }
}

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

    /// Called after each commit with the WAL's size in frames. A checkpoint is scheduled each
    /// time the WAL grew by `threshold` frames since the last one (not after every commit: a
    /// passive checkpoint that runs beside new writes cannot reset the WAL, so its size alone
    /// says nothing). When the WAL reaches 8 × `threshold`, the checkpoint restarts it, which
    /// briefly holds new writes back; that bounds the WAL under a write load that never pauses.
    private func walDidGrow(to pages: Int32) {
        var last = lastTrigger.load(ordering: .relaxed)
        if pages < last {  // the WAL was reset
            last = 0
            lastTrigger.store(0, ordering: .relaxed)
        }
        guard pages - last >= threshold, !isScheduled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        lastTrigger.store(pages, ordering: .relaxed)
        let mode = pages >= threshold.multipliedReportingOverflow(by: 8).partialValue ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE
        connection.runDetached { [self] connection in
            var logFrames: Int32 = 0
            var checkpointed: Int32 = 0
            let result = sqlite3_wal_checkpoint_v2(connection.handle, nil, mode, &logFrames, &checkpointed)
            if result != SQLITE_OK && result != SQLITE_BUSY {
                logger.warning("WAL checkpoint failed", metadata: ["sqlite": "\(connection.error(result))"])
            } else {
                logger.trace("WAL checkpoint", metadata: ["frames": "\(logFrames)", "checkpointed": "\(checkpointed)"])
            }
            isScheduled.store(false, ordering: .releasing)
        }
    }
}

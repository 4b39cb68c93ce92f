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

    private func walDidGrow(to pages: Int32) {
        guard pages >= threshold, !isScheduled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        connection.runDetached { [self] connection in
            var logFrames: Int32 = 0
            var checkpointed: Int32 = 0
            let result = sqlite3_wal_checkpoint_v2(
                connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &checkpointed)
            if result != SQLITE_OK && result != SQLITE_BUSY {
                logger.warning("WAL checkpoint failed", metadata: ["sqlite": "\(connection.error(result))"])
            } else {
                logger.trace("WAL checkpoint", metadata: ["frames": "\(logFrames)", "checkpointed": "\(checkpointed)"])
            }
            isScheduled.store(false, ordering: .releasing)
        }
    }
}

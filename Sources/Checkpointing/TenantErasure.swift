import Foundation

/// What ``Checkpointer/deleteTenant(_:batchSize:)`` removed.
public struct TenantErasure: Sendable, Hashable {
    /// The tenant erased.
    public var tenant: String
    /// The threads deleted (each in every namespace).
    public var threadCount: Int
    /// The checkpoints their histories held, in every namespace (counted just before each
    /// thread was deleted).
    public var checkpointCount: Int
    /// Whether the tenant's key material was destroyed too (crypto-shredding: whatever copy
    /// of its rows remains, in a backup or a replica, never opens again).
    public var keyMaterialDestroyed = false

    /// Creates a report.
    public init(tenant: String, threadCount: Int = 0, checkpointCount: Int = 0, keyMaterialDestroyed: Bool = false) {
        self.tenant = tenant
        self.threadCount = threadCount
        self.checkpointCount = checkpointCount
        self.keyMaterialDestroyed = keyMaterialDestroyed
    }
}

extension Checkpointer {
    /// Right to erasure: deletes every thread of `tenant` (the thread id's part before `:`, the
    /// same UTF-8 bytes), in every namespace, in batches of `batchSize` threads listed from
    /// ``threads(_:)`` (inside ``ReadConsistency/readingLatest(isolation:_:)``, never from a
    /// read replica), until the listing has none left.
    ///
    /// A thread a writer starts for the tenant while this runs is deleted too, if the listing
    /// shows it before the end; stop the tenant's writers first for an erasure that nothing
    /// follows. A failure (the store unreachable) leaves the threads not yet deleted whole, and
    /// calling again goes on. With per-tenant keys, destroy the tenant's key material after
    /// this returns (`CheckpointEncryption`'s `deleteTenant(_:destroyingKeysIn:)` does both).
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for an empty tenant or a batch size
    ///   below 1; ``CheckpointError/Code/conflict`` (retryable) when the same threads are listed
    ///   again after they were deleted, twice in a row (a writer is still writing them).
    @discardableResult
    public func deleteTenant(_ tenant: String, batchSize: Int = 100) async throws -> TenantErasure {
        guard !tenant.isEmpty, !tenant.utf8.contains(0), !tenant.contains(":") else {
            throw CheckpointError(.invalidArgument, "a tenant is the non-empty part of a thread id before ':'")
        }
        guard batchSize >= 1 else { throw CheckpointError(.invalidArgument, "a batch size must be at least 1") }
        // The listing and the statistics from the primary (see ``ReadConsistency``).
        return try await ReadConsistency.readingLatest { try await eraseTheLatest(tenant, batchSize: batchSize) }
    }

    private func eraseTheLatest(_ tenant: String, batchSize: Int) async throws -> TenantErasure {
        var erasure = TenantErasure(tenant: tenant)
        var deleted: Set<ThreadID> = []
        var repeats = 0
        while true {
            let page = try await threads(ThreadQuery(tenant: tenant, order: .oldestActivityFirst, limit: batchSize, readsLatest: true))
            guard !page.items.isEmpty else { return erasure }
            let threads = Set(page.items.map(\.thread))
            if threads.isSubset(of: deleted) {
                repeats += 1
                guard repeats < 2 else {
                    var error = CheckpointError(
                        .conflict,
                        "threads of tenant '\(tenant)' are listed again after they were deleted: a writer is still "
                            + "writing them; \(erasure.threadCount) threads were deleted so far")
                    error.isRetryable = true
                    throw error
                }
            } else {
                repeats = 0
            }
            for thread in threads.sorted() {
                let held = try await storageStatistics(thread: thread).checkpointCount
                try await deleteThread(thread)
                erasure.checkpointCount += held
                if deleted.insert(thread).inserted { erasure.threadCount += 1 }
            }
        }
    }
}

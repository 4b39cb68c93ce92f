import Checkpointing
import Foundation
import Synchronization

/// A thread of its own that runs submitted jobs one at a time, in order.
///
/// Used instead of a `DispatchQueue` because waking a parked thread with a condition
/// variable takes a few microseconds, where a dispatch hop on Linux measured about 50 µs
/// at the median: more than a whole SQLite write.
///
/// It is also a `TaskExecutor`: a task that prefers it (`withTaskExecutorPreference`) runs its
/// nonisolated code on this thread, and then the connection's work runs inline, with no
/// thread hop at all.
package final class JobThread: TaskExecutor, @unchecked Sendable {
    // Safe: `jobs` and `isStopped` are only touched with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var isStopped = false
    /// A thread-specific slot that holds, on each job thread, the `JobThread` it runs: asking
    /// "am I on this thread?" is then one load and a pointer comparison, where comparing
    /// thread ids took a lock (and a pool asks it of each of its connections on every call).
    private static let currentSlot: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    /// Jobs submitted and not yet taken, readable without the lock while spinning.
    private let pending = Atomic<Int>(0)
    private let idleSpin: Duration

    /// - Parameter idleSpin: how long the thread keeps polling for a next job before it parks.
    package init(name: String, idleSpin: Duration = .zero) {
        self.idleSpin = idleSpin
        let slot = Self.currentSlot
        let thread = Thread { [self] in
            // The closure holds `self` for as long as the thread runs.
            pthread_setspecific(slot, Unmanaged.passUnretained(self).toOpaque())
            run()
        }
        thread.name = name
        thread.start()
    }

    private func run() {
        var batch: [() -> Void] = []
        while true {
            spinWhileIdle()
            condition.lock()
            while jobs.isEmpty && !isStopped { condition.wait() }
            if jobs.isEmpty && isStopped {
                condition.unlock()
                return
            }
            swap(&batch, &jobs)
            pending.subtract(batch.count, ordering: .relaxed)
            condition.unlock()
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Waking a parked thread costs tens of microseconds on a virtual machine, more than a
    /// write; a thread that polls for a short while after its last job takes the next one of a
    /// burst (a read then a save, a save then the next) without that cost.
    private func spinWhileIdle() {
        guard idleSpin > .zero else { return }
        let deadline = ContinuousClock.now + idleSpin
        while pending.load(ordering: .relaxed) == 0 {
            for _ in 0..<64 where pending.load(ordering: .relaxed) == 0 {}
            if ContinuousClock.now >= deadline { return }
        }
    }

    /// Whether the caller runs on this thread.
    package var isCurrent: Bool {
        pthread_getspecific(Self.currentSlot) == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Queues a job; it runs after every job queued before it.
    package func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        pending.add(1, ordering: .relaxed)
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on this thread and returns its result: inline when the caller already runs
    /// here, otherwise by queueing it and suspending until it is done. The one way a backend
    /// hands a blocking C call to its own thread (the SQLite connection, the pool's workers).
    ///
    /// A task cancelled before the work started gets ``CheckpointError/Code/cancelled`` and
    /// nothing runs; work that started runs to its end (a write is never left half done) and
    /// reports its own outcome.
    @inlinable
    package func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try throwIfCancelled()
        if isCurrent { return try body() }
        let cancelled = Atomic<Bool>(false)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                submit {
                    if cancelled.load(ordering: .acquiring) {
                        continuation.resume(throwing: CheckpointError.cancellation)
                        return
                    }
                    continuation.resume(with: Result { try body() })
                }
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
    }

    /// Runs `body` on this thread whether or not the caller's task is cancelled (for closing).
    @inlinable
    package func performRegardlessOfCancellation<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        if isCurrent { return body() }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<T, Never>) in
            submit { continuation.resume(returning: body()) }
        }
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        submit { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Lets the thread finish its queued jobs and exit.
    package func stop() {
        condition.lock()
        isStopped = true
        condition.signal()
        condition.unlock()
    }
}

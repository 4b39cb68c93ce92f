import Checkpointing
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ``CheckpointStorage`` that keeps every checkpoint whole, in JSON files of one directory:
/// an example of a third-party backend, written against the public API only.
///
/// ```swift
/// let storage = try FileStorage(directory: URL(filePath: "/var/lib/agent/checkpoints"))
/// let checkpointer = StorageCheckpointer(storage)
/// ```
///
/// Threads live in bucket files named by a stable 64-bit hash of the thread id's UTF-8 bytes
/// (a thread id can be 255 bytes, longer than a file name may be); a bucket holds each of its
/// threads under its exact id, so two ids that share a hash stay apart. Every call takes a
/// lock on the directory (`flock` on its `.lock` file, shared for reads, exclusive for
/// changes), so that two processes using one directory never both append after the same head.
/// A change is written to a new file, flushed to disk and renamed over the old one: a crash
/// leaves the old file or the new one, never half of either.
///
/// What it is not: fast (every change rewrites its thread's file, and the file calls block
/// the calling thread) or economical (no delta storage: each checkpoint stores its whole
/// state). It is for small deployments, and to show what a backend implements.
public actor FileStorage: CheckpointStorage {
    /// The directory the files are in.
    public nonisolated let directory: URL
    private let lockDescriptor: Int32
    private var isOpen = true

    /// Opens (and creates when missing) a directory of thread files.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the directory cannot be
    ///   created or its lock file cannot be opened.
    public init(directory: URL) throws(CheckpointError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError(
                .invalidConfiguration,
                "the directory \(directory.path) cannot be created: \((error as NSError).localizedDescription)",
                underlying: error)
        }
        let descriptor = open(directory.appending(path: ".lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CheckpointError(
                .invalidConfiguration, "the lock file of \(directory.path) cannot be opened: \(systemError())",
                nativeCode: "errno \(errno)")
        }
        lockDescriptor = descriptor
    }

    deinit {
        if isOpen { closeDescriptor(lockDescriptor) }
    }

    /// Closes the directory's lock file; ``StorageCheckpointer`` calls it once, from its own
    /// `close()`, and refuses later calls itself.
    public func close() {
        guard isOpen else { return }
        isOpen = false
        closeDescriptor(lockDescriptor)
    }

    // MARK: - The primitives

    /// Appends a checkpoint if the rules approve; see ``CheckpointStorage/append(_:checking:)``.
    public func append(_ checkpoint: Checkpoint, checking rules: AppendRules) throws {
        try change(checkpoint.thread) { bucket in
            try bucket.modify(checkpoint.thread, checkpoint.namespace) { space in
                try rules.check(head: space.checkpoints.last?.id) { id in space.checkpoints.contains { $0.id == id } }
                space.checkpoints.append(StoredCheckpoint(checkpoint))
            }
        }
    }

    /// Reads a checkpoint; see ``CheckpointStorage/checkpoint(thread:namespace:id:)``.
    public func checkpoint(thread: ThreadID, namespace: String, id: CheckpointID?) throws -> Checkpoint? {
        try read(thread) { bucket in
            guard let space = bucket.space(thread, namespace) else { return nil }
            let stored = id.map { id in space.checkpoints.first { $0.id == id } } ?? space.checkpoints.last
            return try stored?.checkpoint(thread: thread, namespace: namespace)
        }
    }

    /// Lists records newest first; see ``CheckpointStorage/records(thread:namespace:before:limit:)``.
    public func records(thread: ThreadID, namespace: String, before: CheckpointID?, limit: Int) throws
        -> [CheckpointRecord]
    {
        try read(thread) { bucket in
            let checkpoints = bucket.space(thread, namespace)?.checkpoints ?? []
            return try checkpoints.reversed().lazy.filter { stored in before.map { stored.id < $0 } ?? true }
                .prefix(limit).map { try $0.record(thread: thread, namespace: namespace) }
        }
    }

    /// Records an answer if the rules approve; see
    /// ``CheckpointStorage/recordAnswer(_:thread:namespace:checking:)``.
    public func recordAnswer(_ answer: PauseAnswer, thread: ThreadID, namespace: String, checking rules: AnswerRules)
        throws
    {
        try change(thread) { bucket in
            try bucket.modify(thread, namespace) { space in
                let head = space.checkpoints.last
                let target = try rules.check(head: head?.id, pause: try head?.pause?.pause()) {
                    space.checkpoints.contains { $0.answer?.pauseID == rules.pauseID }
                }
                guard let index = space.checkpoints.firstIndex(where: { $0.id == target }) else { return }
                space.checkpoints[index].answer = StoredAnswer(answer)
            }
        }
    }

    /// Deletes checkpoints; see ``CheckpointStorage/delete(_:thread:namespace:)``.
    public func delete(_ ids: [CheckpointID], thread: ThreadID, namespace: String) throws {
        let doomed = Set(ids)
        try change(thread) { bucket in
            try bucket.modify(thread, namespace) { space in space.checkpoints.removeAll { doomed.contains($0.id) } }
        }
    }

    /// Deletes a thread; see ``CheckpointStorage/deleteThread(_:)``.
    public func deleteThread(_ thread: ThreadID) throws {
        try change(thread) { bucket in bucket.threads.removeAll { $0.id.sameBytes(as: thread.rawValue) } }
    }

    /// Counts a thread's checkpoints and channel bytes; see ``CheckpointStorage/storageStatistics(thread:)``.
    public func storageStatistics(thread: ThreadID) throws -> StorageStatistics {
        try read(thread) { bucket in
            var statistics = StorageStatistics(checkpointCount: 0, payloadCount: 0, payloadByteCount: 0)
            for space in bucket.threads.first(where: { $0.id.sameBytes(as: thread.rawValue) })?.namespaces ?? [] {
                for checkpoint in space.checkpoints {
                    statistics.checkpointCount += 1
                    statistics.payloadCount += checkpoint.channels.count
                    statistics.payloadByteCount += checkpoint.channels.reduce(0) { $0 + $1.byteCount }
                }
            }
            return statistics
        }
    }

    /// Every waiting pause, by reading every file: the inbox of a small store.
    public func waitingPauses(_ query: InboxQuery) throws -> [PausedThread] {
        var waiting: [PausedThread] = []
        try everySpace { thread, space in
            guard let head = space.checkpoints.last, head.answer == nil, let pause = try head.pause?.pause() else { return }
            waiting.append(PausedThread(thread: thread, namespace: space.name, checkpointID: head.id, pause: pause))
        }
        return waiting
    }

    /// Every thread's namespaces, by reading every file: the thread listing of a small store.
    /// The activity is computed from the checkpoints kept and their answers.
    public func threads(_ query: ThreadQuery) throws -> [ThreadSummary] {
        var summaries: [ThreadSummary] = []
        try everySpace { thread, space in
            guard let head = space.checkpoints.last else { return }
            let activity = space.checkpoints.flatMap { [Date(bits: $0.createdAt)] + ($0.answer.map { [Date(bits: $0.answeredAt)] } ?? []) }
                .max() ?? Date(bits: head.createdAt)
            summaries.append(
                ThreadSummary(
                    thread: thread, namespace: space.name, headID: head.id, lastActivity: activity,
                    checkpointCount: space.checkpoints.count,
                    waitingPause: head.answer == nil ? try head.pause?.pause() : nil))
        }
        return summaries
    }

    /// Visits every namespace of every thread, under the shared lock.
    private func everySpace(_ visit: (ThreadID, SpaceRecord) throws -> Void) throws {
        try locked(exclusive: false) {
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            } catch {
                throw CheckpointError(.backendFailure, "the directory \(directory.path) cannot be listed", underlying: error)
            }
            // Only bucket files (16 hex digits): anything else a person left in the directory is
            // not this storage's, and must not break the inbox or the listing.
            for name in names where Self.isBucketFileName(name) {
                for thread in try load(directory.appending(path: name)).threads {
                    let id = try ThreadID(thread.id)
                    for space in thread.namespaces { try visit(id, space) }
                }
            }
        }
    }

    // MARK: - Files

    /// Runs `body` on a thread's bucket under the shared lock.
    private func read<T>(_ thread: ThreadID, _ body: (Bucket) throws -> T) throws -> T {
        try locked(exclusive: false) { try body(try load(file(of: thread))) }
    }

    /// Runs `body` on a thread's bucket under the exclusive lock, and writes the bucket back
    /// when `body` returns (not when it throws: a refused change stores nothing).
    private func change(_ thread: ThreadID, _ body: (inout Bucket) throws -> Void) throws {
        try locked(exclusive: true) {
            let url = file(of: thread)
            var bucket = try load(url)
            try body(&bucket)
            try save(bucket, to: url)
        }
    }

    private func locked<T>(exclusive: Bool, _ body: () throws -> T) throws -> T {
        while flock(lockDescriptor, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else {
                throw CheckpointError(
                    .backendFailure, "the lock of \(directory.path) cannot be taken: \(systemError())", nativeCode: "errno \(errno)")
            }
        }
        defer { flock(lockDescriptor, LOCK_UN) }
        return try body()
    }

    private static func isBucketFileName(_ name: String) -> Bool {
        name.utf8.count == 21 && name.hasSuffix(".json")
            && name.utf8.prefix(16).allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    /// The bucket file of a thread: a stable hash (FNV-1a, 64 bits) of its UTF-8 bytes.
    private func file(of thread: ThreadID) -> URL {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in thread.rawValue.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        let name = String(hash, radix: 16)
        return directory.appending(path: String(repeating: "0", count: 16 - name.count) + name + ".json")
    }

    private func load(_ url: URL) throws -> Bucket {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return Bucket()
        } catch {
            throw CheckpointError(.backendFailure, "the file \(url.lastPathComponent) cannot be read", underlying: error)
        }
        do {
            let bucket = try JSONDecoder().decode(Bucket.self, from: data)
            guard bucket.format == Bucket.currentFormat else {
                throw CheckpointError(
                    .corruptData, "the file \(url.lastPathComponent) has format \(bucket.format), not \(Bucket.currentFormat)")
            }
            return bucket
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(.corruptData, "the file \(url.lastPathComponent) is not a thread file", underlying: error)
        }
    }

    /// Writes a bucket to a new file, flushes it and renames it over the old one (or removes
    /// the file of an empty bucket).
    private func save(_ bucket: Bucket, to url: URL) throws {
        if bucket.threads.isEmpty {
            if unlink(url.path) != 0 && errno != ENOENT {
                throw CheckpointError(
                    .backendFailure, "the file \(url.lastPathComponent) cannot be removed: \(systemError())",
                    nativeCode: "errno \(errno)")
            }
            return
        }
        let data: Data
        do {
            data = try JSONEncoder().encode(bucket)
        } catch {
            throw CheckpointError(.encodingFailed, "a thread file could not be encoded", underlying: error)
        }
        let temporary = url.path + ".new"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw writeFailure(url) }
        var written = 0
        let complete = data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return false }
            while written < bytes.count {
                let count = write(descriptor, base + written, bytes.count - written)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return false }
                written += count
            }
            return fsync(descriptor) == 0
        }
        let failure = complete ? nil : writeFailure(url)
        closeDescriptor(descriptor)
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard rename(temporary, url.path) == 0 else { throw writeFailure(url) }
        // The rename itself is on disk once the directory is flushed.
        let directoryDescriptor = open(directory.path, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            closeDescriptor(directoryDescriptor)
        }
    }

    /// A failed write: retryable when the disk is full (space may be freed), nothing changed.
    private func writeFailure(_ url: URL) -> CheckpointError {
        let code = errno
        var error = CheckpointError(
            .backendFailure,
            "the file \(url.lastPathComponent) could not be written (\(systemError(code))); nothing was changed",
            nativeCode: "errno \(code)")
        error.isRetryable = code == ENOSPC
        return error
    }
}

/// The system's `close` (inside a storage, `close()` names ``CheckpointStorage/close()``).
private func closeDescriptor(_ descriptor: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(descriptor)
    #elseif canImport(Darwin)
    _ = Darwin.close(descriptor)
    #endif
}

/// The system's text for an `errno` value (the current one by default).
private func systemError(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

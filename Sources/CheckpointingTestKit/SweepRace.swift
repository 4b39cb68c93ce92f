import Checkpointing
import Foundation

/// Two sweepers on one store (two processes' checkpointers) and a writer that keeps saving to
/// some of the idle threads while they sweep: no namespace is counted twice, and no save that
/// succeeded is lost (a thread the writer saved to stays, its head the save). A save may fail
/// (`notFound`, `conflict`: its thread was swept first), never succeed and then vanish.
///
/// - Parameters:
///   - first: one checkpointer of the store.
///   - second: another checkpointer of the same store (another pool, another connection).
public func checkSweepersAndWriterRace(first: any Checkpointer, second: any Checkpointer, threads: Int = 600) async throws {
    let base = Date(timeIntervalSince1970: 1_000_200_000)
    let tenant = "race-\(UUID().uuidString.prefix(8))"
    var heads: [ThreadID: CheckpointID] = [:]
    for index in 0..<threads {
        let thread = try ThreadID("\(tenant):\(index)")
        heads[thread] = try await CheckpointerConformance.putAt(first, thread, after: nil, createdAt: base + Double(index % 7))
    }
    let written = heads
    let now = Date()
    let policy = IdleThreadPolicy(idleFor: .seconds(3600))
    let (reports, saved) = try await withThrowingTaskGroup(of: (IdleSweepReport?, [ThreadID: CheckpointID]).self) { group in
        for sweeper in [first, second] {
            group.addTask { (try await sweeper.sweep(policy, now: now, batchSize: 25), [:]) }
        }
        group.addTask {
            var saved: [ThreadID: CheckpointID] = [:]
            for index in stride(from: 0, to: threads, by: 3) {
                let thread = try ThreadID("\(tenant):\(index)")
                let write = CheckpointWrite(
                    thread: thread, parentID: written[thread], step: 1, createdAt: Date(),
                    channels: ["v": .value(Data("saved \(index)".utf8))])
                do {
                    try await first.put(write)
                    saved[thread] = write.id
                } catch let error as CheckpointError where error.code == .notFound || error.code == .conflict {
                    continue  // swept first: the save reports it, nothing is lost silently
                }
            }
            return (nil, saved)
        }
        var reports: [IdleSweepReport] = []
        var saved: [ThreadID: CheckpointID] = [:]
        for try await (report, writes) in group {
            if let report { reports.append(report) }
            saved.merge(writes) { a, _ in a }
        }
        return (reports, saved)
    }
    let deleted = reports.reduce(0) { $0 + $1.deletedCount }
    var remaining = 0
    for (thread, id) in saved {
        let head = try await first.head(thread: thread)
        guard head?.id == id else {
            throw ConformanceFailure(
                message: "thread \(thread) was saved to (\(id)) during the sweep and then lost: head \(head?.id.description ?? "none")",
                file: #filePath, line: #line)
        }
    }
    for thread in written.keys where try await first.head(thread: thread) != nil { remaining += 1 }
    guard remaining == saved.count else {
        throw ConformanceFailure(
            message: "\(remaining) threads remain, but \(saved.count) were saved to during the sweep", file: #filePath, line: #line)
    }
    guard deleted == threads - saved.count else {
        throw ConformanceFailure(
            message: "the sweepers report \(deleted) deletions of \(threads - saved.count) idle threads (counted twice, or missed)",
            file: #filePath, line: #line)
    }
}

import CheckpointPostgres
import Checkpointing
import Foundation

/// Writes conversations of `size` messages on `writers` tasks at once, each preferring its own
/// connection's thread; returns puts per second.
func throughput(_ checkpointer: PostgresCheckpointer, writers: Int, putsPerWriter: Int, label: String) async throws -> Double {
    let encoder = JSONEncoder()
    let element = try encoder.encode(message(1))
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for writer in 0..<writers {
            group.addTask {
                try await withTaskExecutorPreference(checkpointer.connectionExecutor(writer)) {
                    var parent: CheckpointID?
                    var thread = try ThreadID("\(label)-\(writer)-0")
                    for index in 0..<putsPerWriter {
                        if index % 25 == 0 {
                            thread = try ThreadID("\(label)-\(writer)-\(index)")
                            parent = nil
                        }
                        let write = appendingWrite(thread: thread, parent: parent, step: index % 25, element: element)
                        try await checkpointer.put(write)
                        parent = write.id
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(writers * putsPerWriter) / seconds
}

/// The floor's throughput: `writers` OS threads, each with its own raw libpq connection,
/// inserting one appended message (the bytes of our put's new content) per statement.
func rawThroughput(url: String, writers: Int, insertsPerWriter: Int) throws -> Double {
    let floors = try (0..<writers).map { _ in try RawPostgres(url: url) }
    let element = try JSONEncoder().encode(message(1))
    let group = DispatchGroup()
    let start = ContinuousClock.now
    for (index, floor) in floors.enumerated() {
        group.enter()
        let thread = Thread {
            for _ in 0..<insertsPerWriter { floor.write(thread: "raw-\(index)", data: element) }
            group.leave()
        }
        thread.start()
    }
    group.wait()
    let elapsed = ContinuousClock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(writers * insertsPerWriter) / seconds
}

/// Postgres: the same conversations, next to raw libpq on the same kind of socket.
func postgresScenarios(_ rows: inout [Row], url: String) async throws {
    let pgThreads = Int(option("--pg-threads") ?? "") ?? 40
    let schema = "bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let base = url + "?schema=\(schema)"
    // Each conversation opens its own checkpointer and floor connection: how fast a
    // round trip is depends on the CPU the server's process for that connection landed on
    // (on a small VM, 50 or 150 µs), so one pair of connections would measure placement,
    // not code. Fresh pairs give both sides the same mix.
    func mergeResults(_ results: [ConversationResult]) -> ConversationResult {
        results.reduce(into: ConversationResult()) { $0.add($1) }
    }
    var pooledResults: [ConversationResult] = []
    var affinityResults: [ConversationResult] = []
    for index in 0..<pgThreads {
        let checkpointer = try await PostgresCheckpointer(
            url: base + "&pool_max=2" + (option("--pg-spin").map { "&idle_spin_us=\($0)" } ?? "")
                + (option("--pg-parameters").map { "&" + $0 } ?? ""))
        let floor = try RawPostgres(url: url)
        pooledResults.append(
            try await conversationScenario(
                label: "pg-\(index)", checkpointer: checkpointer, floor: floor, threads: 1, maxMessages: 200,
                floorSizes: [16...25], readSizes: [20, 200]))
        affinityResults.append(
            try await withTaskExecutorPreference(checkpointer.connectionExecutor(0)) {
                try await conversationScenario(
                    label: "pg-affinity-\(index)", checkpointer: checkpointer, floor: floor, threads: 1,
                    maxMessages: 200, floorSizes: [16...25], readSizes: [20, 200])
            })
        try await checkpointer.close()
    }
    let pooled = mergeResults(pooledResults)
    let affinity = mergeResults(affinityResults)
    print("postgres: state at 20 messages: \(pooled.stateBytes) bytes of JSON")
    report(&rows, "postgres: put, 16-25 messages", merged(pooled.puts, 16...25), floor: ("raw libpq INSERT of the whole state", merged(pooled.floorPuts, 16...25)))
    report(&rows, "postgres: put, 191-200 messages", merged(pooled.puts, 191...200), floor: ("our put at 16-25 messages", merged(pooled.puts, 16...25)))
    report(&rows, "postgres: head read (bytes), 20 messages", pooled.reads[20] ?? Samples(), floor: ("raw libpq single-row SELECT", pooled.floorReads))
    report(&rows, "postgres: head read + typed decode after a save, 20 messages", pooled.typedReads[20] ?? Samples(), floor: ("our head read (bytes) right after a save", pooled.readsAfterSave[20] ?? Samples()))
    report(&rows, "postgres: head read (bytes), 200 messages", pooled.reads[200] ?? Samples())
    report(&rows, "postgres: head read + typed decode after a save, 200 messages", pooled.typedReads[200] ?? Samples(), floor: ("the same at 20 messages", pooled.typedReads[20] ?? Samples()))
    report(&rows, "postgres: typed head read by a new façade, 20 messages", pooled.freshTypedReads[20] ?? Samples())
    report(&rows, "postgres, connection executor: put, 16-25 messages", merged(affinity.puts, 16...25), floor: ("raw libpq INSERT of the whole state", merged(affinity.floorPuts, 16...25)))
    report(&rows, "postgres, connection executor: put, 191-200 messages", merged(affinity.puts, 191...200), floor: ("our put at 16-25 messages", merged(affinity.puts, 16...25)))
    report(&rows, "postgres, connection executor: head read (bytes), 20 messages", affinity.reads[20] ?? Samples(), floor: ("raw libpq single-row SELECT", affinity.floorReads))

    let checkpointer = try await PostgresCheckpointer(url: base + "&pool_max=8")
    let putsPerWriter = Int(option("--pg-puts") ?? "") ?? 500
    let one = try await throughput(checkpointer, writers: 1, putsPerWriter: putsPerWriter, label: "tp1")
    let eight = try await throughput(checkpointer, writers: 8, putsPerWriter: putsPerWriter, label: "tp8")
    print(String(format: "postgres throughput: 1 writer %.0f puts/s, 8 writers on 8 threads %.0f puts/s: %.2fx", one, eight, eight / one))
    let rawOne = try rawThroughput(url: url, writers: 1, insertsPerWriter: putsPerWriter)
    let rawEight = try rawThroughput(url: url, writers: 8, insertsPerWriter: putsPerWriter)
    print(String(format: "raw libpq INSERT throughput, for reference: 1 connection %.0f/s, 8 connections on 8 threads %.0f/s: %.2fx", rawOne, rawEight, rawEight / rawOne))
    try await checkpointer.close()

    if option("--pg-inbox") != "no" {
        try await postgresInbox(&rows, url: url, schema: schema)
    }
}

import CheckpointSQLite
import Checkpointing
import Foundation

/// SQLite, synchronous=NORMAL: conversations grow to 200 messages.
func sqliteNormal(_ rows: inout [Row], directory: URL, threadCount: Int) async throws {
    let encoder = JSONEncoder()
    let checkpointer = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("normal.db").path))
    let floor = RawSQLite(path: directory.appendingPathComponent("normal-floor.db").path, synchronous: "NORMAL")
    let result = try await conversationScenario(
        label: "normal", checkpointer: checkpointer, floor: floor, threads: threadCount, maxMessages: 200,
        floorSizes: [16...25], readSizes: [20, 200])
    var hops = Samples()
    for _ in 0..<2000 { _ = try await time(&hops) { try await checkpointer.pragma("synchronous") } }
    report(&rows, "sqlite: trivial writer round trip (PRAGMA)", hops)
    var bytesPuts = Samples()
    let element = try encoder.encode(message(1))
    for index in 0..<20 {
        let thread = try ThreadID("bytes-\(index)")
        var parent: CheckpointID?
        for step in 0..<25 {
            let write = appendingWrite(thread: thread, parent: parent, step: step, element: element)
            try await time(&bytesPuts) { try await checkpointer.put(write) }
            parent = write.id
        }
    }
    report(&rows, "sqlite normal: put (bytes level, one appended message)", bytesPuts)
    print("state at 20 messages: \(result.stateBytes) bytes of JSON")
    report(&rows, "sqlite normal: put, 16-25 messages", merged(result.puts, 16...25), floor: ("raw INSERT of the whole state", merged(result.floorPuts, 16...25)))
    report(&rows, "sqlite normal: put, 191-200 messages", merged(result.puts, 191...200))
    report(&rows, "sqlite normal: head read (bytes), 20 messages", result.reads[20] ?? Samples(), floor: ("raw single-row SELECT", result.floorReads))
    report(&rows, "sqlite normal: head read (bytes) right after a save, 20 messages", result.readsAfterSave[20] ?? Samples(), floor: ("raw single-row SELECT", result.floorReads))
    report(&rows, "sqlite normal: head read + typed decode after a save, 20 messages", result.typedReads[20] ?? Samples(), floor: ("our head read (bytes) right after a save", result.readsAfterSave[20] ?? Samples()))
    report(&rows, "sqlite normal: head read (bytes), 200 messages", result.reads[200] ?? Samples())
    report(&rows, "sqlite normal: head read + typed decode after a save, 200 messages", result.typedReads[200] ?? Samples(), floor: ("the same at 20 messages", result.typedReads[20] ?? Samples()))
    report(&rows, "sqlite normal: typed head read by a new façade, 20 messages", result.freshTypedReads[20] ?? Samples())
    report(&rows, "sqlite normal: typed head read by a new façade, 200 messages", result.freshTypedReads[200] ?? Samples())
    try await checkpointer.close()
}

/// SQLite, synchronous=NORMAL, with the caller's task preferring the writer's thread: the
/// same calls without thread hops.
func sqliteWriterExecutor(_ rows: inout [Row], directory: URL, threadCount: Int) async throws {
    let checkpointer = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("affinity.db").path))
    let floor = RawSQLite(path: directory.appendingPathComponent("affinity-floor.db").path, synchronous: "NORMAL")
    let result = try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        try await conversationScenario(
            label: "affinity", checkpointer: checkpointer, floor: floor, threads: threadCount, maxMessages: 200,
            floorSizes: [16...25], readSizes: [20, 200])
    }
    report(&rows, "sqlite normal, writer executor: put, 16-25 messages", merged(result.puts, 16...25), floor: ("raw INSERT of the whole state", merged(result.floorPuts, 16...25)))
    report(&rows, "sqlite normal, writer executor: put, 191-200 messages", merged(result.puts, 191...200))
    report(&rows, "sqlite normal, writer executor: head read (bytes), 20 messages", result.reads[20] ?? Samples(), floor: ("raw single-row SELECT", result.floorReads))
    report(&rows, "sqlite normal, writer executor: head read + typed decode after a save, 20 messages", result.typedReads[20] ?? Samples())
    report(&rows, "sqlite normal, writer executor: head read (bytes), 200 messages", result.reads[200] ?? Samples())
    try await checkpointer.close()

    // The same heads read by a checkpointer without the list cache: every segment from the file.
    var coldConfiguration = SQLiteCheckpointer.Configuration(path: directory.appendingPathComponent("affinity.db").path)
    coldConfiguration.contentCacheBytes = 0
    let cold = try await SQLiteCheckpointer(configuration: coldConfiguration)
    var coldReads = Samples()
    var coldFloor = Samples()
    try await withTaskExecutorPreference(cold.writerExecutor) {
        for index in 0..<threadCount {
            let thread = try ThreadID("bench-affinity-\(index)")
            for _ in 0..<3 {
                _ = try await time(&coldReads) { try await cold.head(thread: thread) }
                _ = time(&coldFloor) { floor.read(thread: thread.rawValue) }
            }
        }
    }
    report(&rows, "sqlite normal, writer executor, no content cache: head read (bytes), 200 messages", coldReads, floor: ("raw single-row SELECT (25 messages)", coldFloor))
    try await cold.close()
}

/// The floor's own cost at 200 messages: a raw INSERT of the whole 200-message state.
func sqliteFloorAt200(_ rows: inout [Row], directory: URL, threadCount: Int) throws {
    let encoder = JSONEncoder()
    let floor = RawSQLite(path: directory.appendingPathComponent("floor-200.db").path, synchronous: "NORMAL")
    let big = try encoder.encode(ConversationState(messages: (1...200).map(message)))
    var samples = Samples()
    for index in 0..<(threadCount * 10) { time(&samples) { floor.write(thread: "floor-\(index % threadCount)", data: big) } }
    report(&rows, "raw INSERT of a 200-message state (\(big.count) bytes), for reference", samples)
}

/// SQLite, synchronous=FULL: every commit is fsynced, so fewer conversations.
func sqliteFull(_ rows: inout [Row], directory: URL, threadCount: Int) async throws {
    var configuration = SQLiteCheckpointer.Configuration(path: directory.appendingPathComponent("full.db").path)
    configuration.synchronous = .full
    let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
    let floor = RawSQLite(path: directory.appendingPathComponent("full-floor.db").path, synchronous: "FULL")
    let result = try await conversationScenario(
        label: "full", checkpointer: checkpointer, floor: floor, threads: max(10, threadCount / 2), maxMessages: 25,
        floorSizes: [16...25], readSizes: [])
    report(&rows, "sqlite full: put, 16-25 messages", merged(result.puts, 16...25), floor: ("raw INSERT of the whole state", merged(result.floorPuts, 16...25)))
    let affinity = try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        try await conversationScenario(
            label: "full-affinity", checkpointer: checkpointer, floor: floor, threads: max(10, threadCount / 2),
            maxMessages: 25, floorSizes: [16...25], readSizes: [])
    }
    report(&rows, "sqlite full, writer executor: put, 16-25 messages", merged(affinity.puts, 16...25), floor: ("raw INSERT of the whole state", merged(affinity.floorPuts, 16...25)))
    try await checkpointer.close()
}

/// In memory, for reference.
func inMemory(_ rows: inout [Row], threadCount: Int) async throws {
    let checkpointer = InMemoryCheckpointer()
    let result = try await conversationScenario(
        label: "memory", checkpointer: checkpointer, floor: nil, threads: threadCount, maxMessages: 25,
        floorSizes: [], readSizes: [20])
    report(&rows, "memory: put, 16-25 messages", merged(result.puts, 16...25))
    report(&rows, "memory: head read (bytes), 20 messages", result.reads[20] ?? Samples())
    report(&rows, "memory: head read + typed decode after a save, 20 messages", result.typedReads[20] ?? Samples())
}

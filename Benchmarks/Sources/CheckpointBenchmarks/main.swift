// Checkpoint write and read latency of every backend, next to the raw sqlite3 floor doing the
// same write in the same run, so that the library's overhead is a ratio.
//
//   swift run -c release checkpoint-benchmarks [--threads N] [--json results.json]
//       [--only sqlite|postgres|redis] [--postgres URL] [--redis URL] [--pg-threads N] [--pg-puts N]
//       [--pg-inbox no] [--redis-threads N]
//
// The Postgres and Redis scenarios run when server URLs are given (--postgres, --redis, or
// CHECKPOINT_BENCH_POSTGRES_URL, CHECKPOINT_BENCH_REDIS_URL); scripts/benchmark.sh starts
// throwaway servers and passes them.
import CSQLiteFloor
import CheckpointEncryption
import CHiredisFloor
import CPostgresFloor
import CheckpointRedisCache
import CheckpointPostgres
import CheckpointSQLite
import Checkpointing
import Foundation

/// Puts of conversations of non-Equatable messages growing to 200 messages.
func plainConversationPuts(_ checkpointer: any Checkpointer, threads: Int) async throws -> [Int: Samples] {
    var puts: [Int: Samples] = [:]
    for index in 0..<threads {
        let thread = try checkpointer.thread("bench-plain-\(index)", as: PlainConversationState.self)
        var state = PlainConversationState()
        for size in 1...200 {
            let next = message(size)
            state.messages.append(PlainMessage(role: next.role, text: next.text))
            state.turn = size
            _ = try await time(&puts[size, default: Samples()]) { try await thread.save(state) }
        }
    }
    return puts
}

/// The file size of one 500-turn conversation of ~300-character messages.
func storageOf<State: Codable & Sendable>(
    _ type: State.Type, at path: String, append: (inout State, Message) -> Void, initial: State
) async throws -> (file: Int, text: Int, json: Int) {
    let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: path))
    let thread = try checkpointer.thread("storage", as: State.self)
    var state = initial
    var textBytes = 0
    var jsonBytes = 0
    let encoder = JSONEncoder()
    for turn in 1...500 {
        let next = message(turn)
        textBytes += next.text.utf8.count
        jsonBytes += try encoder.encode(next).count
        append(&state, next)
        try await thread.save(state, metadata: ["turn": .int(turn)])
    }
    try await checkpointer.close()
    var db: OpaquePointer?
    sqlite3_open(path, &db)
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nil, nil, nil)
    sqlite3_close(db)
    let fileBytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    return (fileBytes, textBytes, jsonBytes)
}

/// Puts of one conversation growing to 25 messages; the samples of sizes 16 to 25.
func profiledPuts<State: Codable & Sendable>(
    _ type: State.Type, make: () -> State, append: (inout State, Int) -> Void, thread: CheckpointThread<State>
) async throws -> [Double] {
    var state = make()
    var samples = Samples()
    for size in 1...25 {
        append(&state, size)
        if size >= 16 {
            _ = try await time(&samples) { try await thread.save(state) }
        } else {
            try await thread.save(state)
        }
    }
    return samples.nanoseconds
}

// MARK: Scenarios

struct Row: Codable {
    var scenario: String
    var samples: Int
    var p50Microseconds: Double
    var p99Microseconds: Double
    var floor: String?
    var floorP50Microseconds: Double?
    var floorP99Microseconds: Double?
    var ratioP50: Double?
    var ratioP99: Double?
}

func report(_ rows: inout [Row], _ scenario: String, _ samples: Samples, floor: (String, Samples)? = nil) {
    var row = Row(
        scenario: scenario, samples: samples.nanoseconds.count, p50Microseconds: samples.p50 / 1000,
        p99Microseconds: samples.p99 / 1000)
    if let (name, floorSamples) = floor {
        row.floor = name
        row.floorP50Microseconds = floorSamples.p50 / 1000
        row.floorP99Microseconds = floorSamples.p99 / 1000
        row.ratioP50 = samples.p50 / floorSamples.p50
        row.ratioP99 = samples.p99 / floorSamples.p99
    }
    rows.append(row)
}

func option(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return CommandLine.arguments[index + 1]
}

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

/// The write of inbox thread `index`: one in `pausedEvery` threads pauses.
func inboxWrite(_ index: Int, pausedEvery: Int) throws -> CheckpointWrite {
    let pause = index % pausedEvery == 0
        ? try Pause(reason: index % 3 == 0 ? "refund" : "email", prompt: Data("{\"amount\":42}".utf8))
        : nil
    return CheckpointWrite(
        thread: try ThreadID("tenant-\(index % 50):thread-\(index)"), parentID: nil, step: 0,
        channels: ["turn": .value(Data("1".utf8)), "messages": .list([Data("{}".utf8)])], pause: pause)
}

/// Times inbox pages (from the start and from the middle, without and with a reason filter)
/// on a large and a small inbox, alternating which goes first, and reports them.
func measureInbox(_ rows: inout [Row], _ label: String, large: any Checkpointer, small: any Checkpointer) async throws {
    var largePages = Samples()
    var smallPages = Samples()
    var largeReason = Samples()
    var smallReason = Samples()
    for round in 0..<300 {
        let cursor = round % 2 == 0 ? nil : InboxCursor(createdAt: .distantPast, thread: "tenant-25", namespace: "")
        let query = InboxQuery(after: cursor, limit: 100)
        let filtered = InboxQuery(reason: "refund", after: cursor, limit: 100)
        if round % 4 < 2 {
            _ = try await time(&largePages) { try await large.pausedThreads(query) }
            _ = try await time(&smallPages) { try await small.pausedThreads(query) }
            _ = try await time(&largeReason) { try await large.pausedThreads(filtered) }
            _ = try await time(&smallReason) { try await small.pausedThreads(filtered) }
        } else {
            _ = try await time(&smallPages) { try await small.pausedThreads(query) }
            _ = try await time(&largePages) { try await large.pausedThreads(query) }
            _ = try await time(&smallReason) { try await small.pausedThreads(filtered) }
            _ = try await time(&largeReason) { try await large.pausedThreads(filtered) }
        }
    }
    let count = try await allPages(large)
    report(&rows, "\(label)inbox page of 100, 100k threads (\(count) paused)", largePages, floor: ("same query, 1k paused threads only", smallPages))
    report(&rows, "\(label)inbox page of 100 by reason, 100k threads", largeReason, floor: ("same query, 1k paused threads only", smallReason))
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

/// Counts every waiting thread by paging through the inbox.
func allPages(_ checkpointer: any Checkpointer) async throws -> Int {
    var query = InboxQuery(limit: 250)
    var count = 0
    while true {
        let page = try await checkpointer.pausedThreads(query)
        count += page.items.count
        guard let next = page.next else { return count }
        query.after = next
    }
}

/// Whether `--only` (when given) names this group of scenarios.
func runs(_ group: String) -> Bool {
    guard let only = option("--only") else { return true }
    return only == group
}

/// Runs every scenario off the main actor, as a server's tasks would run: awaiting from the
/// main actor would add a main-queue hop to every call.
nonisolated func runBenchmarks(threadCount: Int) async throws -> (rows: [Row], storage: [String: Int]) {
    var rows: [Row] = []
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let encoder = JSONEncoder()
    print("checkpoint-benchmarks: \(threadCount) conversations per scenario, \(ProcessInfo.processInfo.activeProcessorCount) cores")

    // SQLite, synchronous=NORMAL: conversations grow to 200 messages.
    if runs("sqlite") {
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
        report(&rows, "sqlite normal: head read + typed decode, 20 messages", result.typedReads[20] ?? Samples())
        report(&rows, "sqlite normal: head read (bytes), 200 messages", result.reads[200] ?? Samples())
        report(&rows, "sqlite normal: head read + typed decode, 200 messages", result.typedReads[200] ?? Samples())
        try await checkpointer.close()
    }

    // SQLite, synchronous=NORMAL, with the caller's task preferring the writer's thread: the
    // same calls without thread hops.
    if runs("sqlite") {
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
        report(&rows, "sqlite normal, writer executor: head read + typed decode, 20 messages", result.typedReads[20] ?? Samples())
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

    // The floor's own cost at 200 messages: a raw INSERT of the whole 200-message state.
    if runs("sqlite") {
        let floor = RawSQLite(path: directory.appendingPathComponent("floor-200.db").path, synchronous: "NORMAL")
        let big = try encoder.encode(ConversationState(messages: (1...200).map(message)))
        var samples = Samples()
        for index in 0..<(threadCount * 10) { time(&samples) { floor.write(thread: "floor-\(index % threadCount)", data: big) } }
        report(&rows, "raw INSERT of a 200-message state (\(big.count) bytes), for reference", samples)
    }

    // The cost of sealing: the same puts, plain and with the whole state sealed, alternating
    // conversation by conversation (and which goes first) on one writer executor.
    if runs("sqlite") || runs("sealing") {
        let checkpointer = try await SQLiteCheckpointer(
            configuration: .init(path: directory.appendingPathComponent("sealed.db").path))
        let sealing = Sealing.wholeState(
            SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])))
        var plain = Samples()
        var sealed = Samples()
        try await withTaskExecutorPreference(checkpointer.writerExecutor) {
            for index in 0..<threadCount {
                let order: [(String, Sealing?)] = [("plain", nil), ("sealed", sealing)]
                for (label, options) in index % 2 == 0 ? order : order.reversed() {
                    let result = try await conversationScenario(
                        label: "\(label)-\(index)", checkpointer: checkpointer, floor: nil, threads: 1, maxMessages: 25,
                        floorSizes: [], readSizes: [], sealing: options)
                    if options == nil {
                        plain.nanoseconds += merged(result.puts, 16...25).nanoseconds
                    } else {
                        sealed.nanoseconds += merged(result.puts, 16...25).nanoseconds
                    }
                }
            }
        }
        report(&rows, "sqlite normal, writer executor: put, whole state sealed, 16-25 messages", sealed, floor: ("the same put, not sealed", plain))
        var plainProfile = Samples()
        var sealedProfile = Samples()
        let fields = Sealing.markedFields(sealing.sealer)
        try await withTaskExecutorPreference(checkpointer.writerExecutor) {
            for index in 0..<threadCount {
                func plain() async throws {
                    plainProfile.nanoseconds += try await profiledPuts(
                        ProfiledState.self, make: { ProfiledState() },
                        append: { state, size in state.messages.append(message(size)); state.turn = size },
                        thread: try checkpointer.thread("profile-plain-\(index)", as: ProfiledState.self))
                }
                func sealed() async throws {
                    sealedProfile.nanoseconds += try await profiledPuts(
                        SealedProfileState.self, make: { SealedProfileState() },
                        append: { state, size in state.messages.append(message(size)); state.turn = size },
                        thread: try checkpointer.thread("profile-sealed-\(index)", as: SealedProfileState.self, sealing: fields))
                }
                if index % 2 == 0 {
                    try await plain()
                    try await sealed()
                } else {
                    try await sealed()
                    try await plain()
                }
            }
        }
        report(&rows, "sqlite normal, writer executor: put, one 1 KB field sealed, 16-25 messages", sealedProfile, floor: ("the same put, field not sealed", plainProfile))
        try await checkpointer.close()
    }

    // SQLite, synchronous=FULL: every commit is fsynced, so fewer conversations.
    if runs("sqlite") {
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

    // In memory, for reference.
    if runs("sqlite") {
        let checkpointer = InMemoryCheckpointer()
        let result = try await conversationScenario(
            label: "memory", checkpointer: checkpointer, floor: nil, threads: threadCount, maxMessages: 25,
            floorSizes: [], readSizes: [20])
        report(&rows, "memory: put, 16-25 messages", merged(result.puts, 16...25))
        report(&rows, "memory: head read (bytes), 20 messages", result.reads[20] ?? Samples())
        report(&rows, "memory: head read + typed decode, 20 messages", result.typedReads[20] ?? Samples())
    }

    // The inbox: 100,000 threads of which 1,000 are paused, next to 1,000 paused threads alone.
    if runs("sqlite") {
        func populate(_ checkpointer: SQLiteCheckpointer, threads: Int, pausedEvery: Int) async throws {
            try await withTaskExecutorPreference(checkpointer.writerExecutor) {
                for index in 0..<threads { try await checkpointer.put(try inboxWrite(index, pausedEvery: pausedEvery)) }
            }
        }
        let large = try await SQLiteCheckpointer(
            configuration: .init(path: directory.appendingPathComponent("inbox-large.db").path))
        let small = try await SQLiteCheckpointer(
            configuration: .init(path: directory.appendingPathComponent("inbox-small.db").path))
        try await populate(large, threads: 100_000, pausedEvery: 100)
        try await populate(small, threads: 1_000, pausedEvery: 1)
        try await measureInbox(&rows, "", large: large, small: small)
        try await large.close()
        try await small.close()
    }

    // Postgres: the same conversations, next to raw libpq on the same kind of socket.
    if runs("postgres"), let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"] {
        let pgThreads = Int(option("--pg-threads") ?? "") ?? 40
        let schema = "bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let base = url + "?schema=\(schema)"
        // Each conversation opens its own checkpointer and floor connection: how fast a
        // round trip is depends on the CPU the server's process for that connection landed on
        // (on a small VM, 50 or 150 µs), so one pair of connections would measure placement,
        // not code. Fresh pairs give both sides the same mix.
        typealias Result = (puts: [Int: Samples], floorPuts: [Int: Samples], reads: [Int: Samples], typedReads: [Int: Samples], floorReads: Samples, stateBytes: Int)
        func mergeResults(_ results: [Result]) -> Result {
            var merged: Result = ([:], [:], [:], [:], Samples(), 0)
            for result in results {
                for (size, samples) in result.puts { merged.puts[size, default: Samples()].nanoseconds += samples.nanoseconds }
                for (size, samples) in result.floorPuts { merged.floorPuts[size, default: Samples()].nanoseconds += samples.nanoseconds }
                for (size, samples) in result.reads { merged.reads[size, default: Samples()].nanoseconds += samples.nanoseconds }
                for (size, samples) in result.typedReads { merged.typedReads[size, default: Samples()].nanoseconds += samples.nanoseconds }
                merged.floorReads.nanoseconds += result.floorReads.nanoseconds
                merged.stateBytes = max(merged.stateBytes, result.stateBytes)
            }
            return merged
        }
        var pooledResults: [Result] = []
        var affinityResults: [Result] = []
        for index in 0..<pgThreads {
            let checkpointer = try await PostgresCheckpointer(url: base + "&pool_max=2" + (option("--pg-spin").map { "&idle_spin_us=\($0)" } ?? ""))
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
        report(&rows, "postgres: head read + typed decode, 20 messages", pooled.typedReads[20] ?? Samples())
        report(&rows, "postgres: head read (bytes), 200 messages", pooled.reads[200] ?? Samples())
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

        // The inbox on Postgres: 100,000 threads of which 1,000 are paused, next to 1,000
        // paused threads alone, each in a schema of its own.
        if option("--pg-inbox") != "no" {
            func populate(_ checkpointer: PostgresCheckpointer, threads: Int, pausedEvery: Int) async throws {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<8 {
                        group.addTask {
                            try await withTaskExecutorPreference(checkpointer.connectionExecutor(writer)) {
                                for index in stride(from: writer, to: threads, by: 8) {
                                    try await checkpointer.put(try inboxWrite(index, pausedEvery: pausedEvery))
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                _ = try await checkpointer.diagnosticQuery("ANALYZE checkpoint_threads, checkpoint_rows")
            }
            let large = try await PostgresCheckpointer(url: url + "?schema=\(schema)_inbox_large&pool_max=8")
            let small = try await PostgresCheckpointer(url: url + "?schema=\(schema)_inbox_small&pool_max=8")
            try await populate(large, threads: 100_000, pausedEvery: 100)
            try await populate(small, threads: 1_000, pausedEvery: 1)
            try await measureInbox(&rows, "postgres: ", large: large, small: small)
            try await large.close()
            try await small.close()
        }
    }

    // The Redis cache over Postgres: cached head reads next to a raw hiredis GET of the same
    // bytes, and cached puts next to the base store's puts.
    if runs("redis"), let redisURL = option("--redis") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_REDIS_URL"],
        let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"]
    {
        let conversations = Int(option("--redis-threads") ?? "") ?? 40
        let schema = "bench_redis_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let prefix = "bench-" + UUID().uuidString.prefix(8)
        let parsed = try CheckpointerURL(redisURL)
        var cachedPuts = Samples()
        var basePuts = Samples()
        var cachedReads = Samples()
        var cachedReadsPool = Samples()
        var floorReads = Samples()
        var floorReadsPool = Samples()
        var coldReads = Samples()
        var floorReadsCold = Samples()
        for index in 0..<conversations {
            // Fresh connections per conversation, as for Postgres: each side gets the same mix
            // of server process placements.
            let base = try await PostgresCheckpointer(url: url + "?schema=\(schema)&pool_max=2")
            let cache = try await RedisCachedCheckpointer(
                base: base, configuration: .init(url: CheckpointerURL(redisURL + "?prefix=\(prefix)&pool_max=2")))
            let floor = try RawRedis(host: parsed.host ?? "127.0.0.1", port: parsed.port ?? 6379)
            let cachedThread = try cache.thread("cached-\(index)", as: ConversationState.self)
            let baseThread = try base.thread("base-\(index)", as: ConversationState.self)
            var state = ConversationState()
            for size in 1...25 {
                state.messages.append(message(size))
                state.turn = size
                if size % 2 == 0 {
                    _ = try await time(&cachedPuts) { try await cachedThread.save(state) }
                    _ = try await time(&basePuts) { try await baseThread.save(state) }
                } else {
                    _ = try await time(&basePuts) { try await baseThread.save(state) }
                    _ = try await time(&cachedPuts) { try await cachedThread.save(state) }
                }
                if size < 16 {
                    cachedPuts.nanoseconds.removeLast()
                    basePuts.nanoseconds.removeLast()
                }
            }
            var key = Data("\(prefix):h:\(cachedThread.id.rawValue.utf8.count):".utf8)
            key.append(contentsOf: cachedThread.id.rawValue.utf8)
            let id = cachedThread.id
            for round in 0..<10 {
                if round % 2 == 0 { _ = time(&floorReadsPool) { floor.get(key) } }
                _ = try await time(&cachedReadsPool) { try await cache.head(thread: id) }
                if round % 2 == 1 { _ = time(&floorReadsPool) { floor.get(key) } }
            }
            try await withTaskExecutorPreference(cache.connectionExecutor(0)) {
                for round in 0..<10 {
                    if round % 2 == 0 { _ = time(&floorReads) { floor.get(key) } }
                    _ = try await time(&cachedReads) { try await cache.head(thread: id) }
                    if round % 2 == 1 { _ = time(&floorReads) { floor.get(key) } }
                }
            }
            // Another instance, keeping nothing locally: every hit is checked and decoded.
            let other = try await RedisCachedCheckpointer(
                base: InMemoryCheckpointer(),
                configuration: .init(url: CheckpointerURL(redisURL + "?prefix=\(prefix)&pool_max=1&local_heads=0")))
            try await withTaskExecutorPreference(other.connectionExecutor(0)) {
                for round in 0..<10 {
                    if round % 2 == 0 { _ = time(&floorReadsCold) { floor.get(key) } }
                    _ = try await time(&coldReads) { try await other.head(thread: id) }
                    if round % 2 == 1 { _ = time(&floorReadsCold) { floor.get(key) } }
                }
            }
            try await other.close()
            let statistics = cache.statistics
            if index == conversations - 1 {
                print("redis cache: \(statistics.hits) hits, \(statistics.misses) misses, \(statistics.fallbacks) fallbacks in the last conversation")
            }
            try await cache.close()
        }
        report(&rows, "redis cache: head read (20..25 messages), Redis connection executor", cachedReads, floor: ("raw hiredis GET of the same bytes", floorReads))
        report(&rows, "redis cache: head read (25 messages), from the shared pool", cachedReadsPool, floor: ("raw hiredis GET of the same bytes", floorReadsPool))
        report(&rows, "redis cache: head read (25 messages), another instance's entry, checked and decoded each time", coldReads, floor: ("raw hiredis GET of the same bytes", floorReadsCold))
        report(&rows, "redis cache over postgres: put, 16-25 messages", cachedPuts, floor: ("the same put on postgres alone", basePuts))
    }

    // Storage: one 500-turn conversation, one ~300-character message a turn, with an
    // Equatable message type and with one that is not.
    var storage: [String: Int] = [:]
    if runs("sqlite") {
        let equatable = try await storageOf(
            ConversationState.self, at: directory.appendingPathComponent("storage.db").path,
            append: { state, next in
                state.messages.append(next)
                state.turn += 1
            }, initial: ConversationState())
        let plain = try await storageOf(
            PlainConversationState.self, at: directory.appendingPathComponent("storage-plain.db").path,
            append: { state, next in
                state.messages.append(PlainMessage(role: next.role, text: next.text))
                state.turn += 1
            }, initial: PlainConversationState())
        storage = [
            "textBytes": equatable.text, "messageJSONBytes": equatable.json, "fileBytes": equatable.file,
            "plainFileBytes": plain.file,
        ]
        let checkpointer = try await SQLiteCheckpointer(
            configuration: .init(path: directory.appendingPathComponent("plain.db").path))
        let puts = try await plainConversationPuts(checkpointer, threads: threadCount)
        report(&rows, "sqlite normal: put, 16-25 messages, non-Equatable message", merged(puts, 16...25))
        report(&rows, "sqlite normal: put, 191-200 messages, non-Equatable message", merged(puts, 191...200))
        try await checkpointer.close()
    }

    return (rows, storage)
}

/// `--profile put|read`: a tight loop of one operation on the writer executor, for a profiler.
nonisolated func profileLoop(_ operation: String) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-profile-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    var configuration = SQLiteCheckpointer.Configuration(path: directory.appendingPathComponent("p.db").path)
    if operation.hasSuffix("-full") { configuration.synchronous = .full }
    let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
    let element = try JSONEncoder().encode(message(1))
    var samples = Samples()
    try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        for index in 0..<400 {
            let thread = try ThreadID("profile-\(index)")
            var parent: CheckpointID?
            for step in 0..<50 {
                let write = appendingWrite(thread: thread, parent: parent, step: step, element: element)
                if operation.hasPrefix("put") || step < 20 {
                    try await time(&samples) { try await checkpointer.put(write) }
                } else {
                    _ = try await time(&samples) { try await checkpointer.head(thread: thread) }
                }
                parent = write.id
            }
        }
    }
    print("\(operation): p50 \(samples.p50 / 1000) µs p99 \(samples.p99 / 1000) µs over \(samples.nanoseconds.count)")
    try await checkpointer.close()
}

/// Times façade saves of 400 conversations growing to 50 messages.
func saveConversations(_ checkpointer: any Checkpointer, sealing: Sealing?) async throws -> Samples {
    var samples = Samples()
    for index in 0..<400 {
        let thread = try checkpointer.thread("save-\(index)", as: ConversationState.self, sealing: sealing)
        var state = ConversationState()
        for size in 1...50 {
            state.messages.append(message(size))
            state.turn = size
            _ = try await time(&samples) { try await thread.save(state) }
        }
    }
    return samples
}

/// `--profile save`: the typed façade's save over the in-memory backend, for a profiler.
nonisolated func profileSave(sealing: Sealing? = nil) async throws {
    let samples = try await saveConversations(InMemoryCheckpointer(), sealing: sealing)
    print("save: p50 \(samples.p50 / 1000) µs p99 \(samples.p99 / 1000) µs over \(samples.nanoseconds.count)")
}

if option("--profile") == "seal" {
    let sealer = SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())]))
    let thread = try ThreadID("t")
    let plaintext = try JSONEncoder().encode(message(1))
    var samples = Samples()
    for _ in 0..<20000 {
        _ = try time(&samples) { try sealer.seal(plaintext, thread: thread, associatedData: Data("ad".utf8)) }
    }
    print("seal \(plaintext.count) bytes: p50 \(samples.p50 / 1000) µs")
    exit(0)
}

/// `--profile pg-read|pg-put`: alternating loops of ours and the raw libpq floor on one
/// connection's thread, for a profiler and for stable medians.
nonisolated func profilePostgres(_ operation: String) async throws {
    guard let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"] else {
        fatalError("--postgres URL is required")
    }
    let schema = "profile_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let checkpointer = try await PostgresCheckpointer(url: url + "?schema=\(schema)&pool_max=2")
    let floor = try RawPostgres(url: url)
    let thread = try checkpointer.thread("profile", as: ConversationState.self)
    var state = ConversationState()
    var ours = Samples()
    var raw = Samples()
    let encoder = JSONEncoder()
    try await withTaskExecutorPreference(checkpointer.connectionExecutor(0)) {
        for size in 1...20 {
            state.messages.append(message(size))
            try await thread.save(state)
        }
        floor.write(thread: "profile", data: try encoder.encode(state))
        let id = try ThreadID("profile")
        var experiment = Samples()
        floor.prepareExperiment(
            """
            SELECT t.key, c.id, c.parent_id, c.step, c.created_at, c.metadata, c.manifest, c.pause, a.pause_id, a.response, a.answered_at
            FROM \(schema).checkpoint_threads t JOIN \(schema).checkpoint_rows c ON c.thread_key = t.key
            LEFT JOIN \(schema).checkpoint_answers a ON a.thread_key = c.thread_key AND a.checkpoint_id = c.id
            WHERE t.thread = $1 AND t.namespace = '' AND c.id = t.head_id
            """)
        defer { print(String(format: "our head SELECT on the raw connection: p50 %.1f µs", experiment.p50 / 1000)) }
        for round in 0..<3000 {
            if operation == "pg-read" {
                // Which goes first alternates: the one that follows the other runs on a warmer
                // or colder server process, and that alone moves a median by tens of µs.
                if round % 2 == 0 { _ = time(&raw) { floor.read(thread: "profile") } }
                _ = try await time(&ours) { try await checkpointer.head(thread: id) }
                if round % 2 == 1 { _ = time(&raw) { floor.read(thread: "profile") } }
                if round % 3 == 0 { _ = time(&experiment) { floor.runExperiment(thread: "profile") } }
            } else {
                if round % 25 == 0 {
                    state.messages.removeAll()
                }
                state.messages.append(message(round))
                let bytes = try encoder.encode(state)
                _ = try await time(&ours) { try await thread.save(state) }
                time(&raw) { floor.write(thread: "profile", data: bytes) }
            }
        }
    }
    print(String(format: "%@: ours p50 %.1f µs, floor p50 %.1f µs, ratio %.2f", operation, ours.p50 / 1000, raw.p50 / 1000, ours.p50 / raw.p50))
    try await checkpointer.close()
}

/// `--profile redis-read`: cached head reads on the Redis connection's thread, next to raw GETs.
nonisolated func profileRedisRead() async throws {
    guard let redisURL = option("--redis") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_REDIS_URL"] else {
        fatalError("--redis URL is required")
    }
    let prefix = "profile-" + UUID().uuidString.prefix(8)
    let cache = try await RedisCachedCheckpointer(
        base: InMemoryCheckpointer(), configuration: .init(url: CheckpointerURL(redisURL + "?prefix=\(prefix)")))
    let parsed = try CheckpointerURL(redisURL)
    let floor = try RawRedis(host: parsed.host ?? "127.0.0.1", port: parsed.port ?? 6379)
    let thread = try cache.thread("profile", as: ConversationState.self)
    var state = ConversationState()
    for size in 1...20 {
        state.messages.append(message(size))
        try await thread.save(state)
    }
    var key = Data("\(prefix):h:7:".utf8)
    key.append(contentsOf: "profile".utf8)
    var ours = Samples()
    var raw = Samples()
    let id = thread.id
    func cpuNanoseconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) * 1e9 + Double(spec.tv_nsec)
    }
    var oursCPU = 0.0
    var rawCPU = 0.0
    let rounds = Int(option("--rounds") ?? "") ?? 20_000
    try await withTaskExecutorPreference(cache.connectionExecutor(0)) {
        for round in 0..<rounds {
            let side = option("--side")
            var start = cpuNanoseconds()
            if round % 2 == 0, side != "ours" { _ = time(&raw) { floor.get(key) } }
            rawCPU += cpuNanoseconds() - start
            start = cpuNanoseconds()
            if side != "raw" { _ = try await time(&ours) { try await cache.head(thread: id) } }
            oursCPU += cpuNanoseconds() - start
            start = cpuNanoseconds()
            if round % 2 == 1, side != "ours" { _ = time(&raw) { floor.get(key) } }
            rawCPU += cpuNanoseconds() - start
        }
    }
    print(String(format: "redis-read: ours p50 %.1f µs, raw GET p50 %.1f µs, ratio %.2f; client CPU per call: ours %.1f µs, raw %.1f µs", ours.p50 / 1000, raw.p50 / 1000, ours.p50 / raw.p50, oursCPU / Double(rounds) / 1000, rawCPU / Double(rounds) / 1000))
    try await cache.close()
}

if option("--profile") == "redis-read" {
    try await profileRedisRead()
    exit(0)
}

if let mode = option("--profile"), mode.hasPrefix("pg-") {
    try await profilePostgres(mode)
    exit(0)
}

/// `--profile save-field`: in-memory façade saves with one 1 KB sealed field, next to the
/// same state with the field plain, alternating.
nonisolated func profileSaveField() async throws {
    let checkpointer = InMemoryCheckpointer()
    let fields = Sealing.markedFields(
        SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])))
    var plain = Samples()
    var sealed = Samples()
    for index in 0..<400 {
        plain.nanoseconds += try await profiledPuts(
            ProfiledState.self, make: { ProfiledState() },
            append: { state, size in state.messages.append(message(size)); state.turn = size },
            thread: try checkpointer.thread("plain-\(index)", as: ProfiledState.self))
        sealed.nanoseconds += try await profiledPuts(
            SealedProfileState.self, make: { SealedProfileState() },
            append: { state, size in state.messages.append(message(size)); state.turn = size },
            thread: try checkpointer.thread("sealed-\(index)", as: SealedProfileState.self, sealing: fields))
    }
    print(String(format: "save-field: plain p50 %.2f µs, one sealed field p50 %.2f µs", plain.p50 / 1000, sealed.p50 / 1000))
}

if option("--profile") == "save-field" {
    try await profileSaveField()
    exit(0)
}

if option("--profile") == "save" {
    try await profileSave()
    exit(0)
}

/// `--profile growth`: façade saves in memory (no store cost), Equatable and non-Equatable
/// messages, at 16-25 and 191-200 messages.
nonisolated func profileGrowth() async throws {
    let memory = InMemoryCheckpointer()
    var equatable: [Int: Samples] = [:]
    for index in 0..<150 {
        let thread = try memory.thread("growth-\(index)", as: ConversationState.self)
        var state = ConversationState()
        for size in 1...200 {
            state.messages.append(message(size))
            _ = try await time(&equatable[size, default: Samples()]) { try await thread.save(state) }
        }
    }
    let plain = try await plainConversationPuts(InMemoryCheckpointer(), threads: 150)
    for (label, samples) in [("Equatable", equatable), ("non-Equatable", plain)] {
        let small = merged(samples, 16...25).p50 / 1000
        let large = merged(samples, 191...200).p50 / 1000
        print(String(format: "%@: p50 %.2f µs at 16-25 messages, %.2f µs at 191-200 (%.2fx)", label, small, large, large / small))
    }
}

if option("--profile") == "growth" {
    try await profileGrowth()
    exit(0)
}

/// `--profile sqlite-save[-sealed]`: façade saves on SQLite on the writer executor.
nonisolated func profileSQLiteSave(sealed: Bool) async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-profile-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: directory.appendingPathComponent("p.db").path))
    let sealing: Sealing? =
        sealed
        ? .wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])))
        : nil
    let samples = try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        try await saveConversations(checkpointer, sealing: sealing)
    }
    print("sqlite save\(sealed ? " sealed" : ""): p50 \(samples.p50 / 1000) µs p99 \(samples.p99 / 1000) µs")
}

if let mode = option("--profile"), mode.hasPrefix("sqlite-save") {
    try await profileSQLiteSave(sealed: mode.hasSuffix("sealed"))
    exit(0)
}

if option("--profile") == "save-sealed" {
    try await profileSave(
        sealing: .wholeState(
            SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())]))))
    exit(0)
}

if let operation = option("--profile") {
    try await profileLoop(operation)
    exit(0)
}

let threadCount = Int(option("--threads") ?? "") ?? 150
let (rows, storage) = try await runBenchmarks(threadCount: threadCount)

// MARK: Output

func format(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "" }
    return String(format: value >= 100 ? "%.0f" : "%.2f", value)
}

let header = ["scenario", "n", "p50 µs", "p99 µs", "floor p50 µs", "floor p99 µs", "ratio p50", "ratio p99"]
let table = [header] + rows.map { row in
    [
        row.scenario, "\(row.samples)", format(row.p50Microseconds), format(row.p99Microseconds),
        format(row.floorP50Microseconds), format(row.floorP99Microseconds), format(row.ratioP50), format(row.ratioP99),
    ]
}
let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
for (index, line) in table.enumerated() {
    print(line.enumerated().map { column, cell in
        column == 0 ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            : String(repeating: " ", count: widths[column] - cell.count) + cell
    }.joined(separator: "  "))
    if index == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
}
if let put20 = rows.first(where: { $0.scenario == "sqlite normal: put, 16-25 messages" }),
    let put200 = rows.first(where: { $0.scenario == "sqlite normal: put, 191-200 messages" })
{
    print(String(format: "put p50 at 200 messages / at 20 messages: %.2f", put200.p50Microseconds / put20.p50Microseconds))
}
if let put20 = rows.first(where: { $0.scenario == "sqlite normal: put, 16-25 messages, non-Equatable message" }),
    let put200 = rows.first(where: { $0.scenario == "sqlite normal: put, 191-200 messages, non-Equatable message" })
{
    print(
        String(
            format: "put p50 at 200 messages / at 20 messages, non-Equatable message: %.2f",
            put200.p50Microseconds / put20.p50Microseconds))
}
if let file = storage["fileBytes"], let text = storage["textBytes"], let json = storage["messageJSONBytes"] {
    print(
        String(
            format: "500-turn conversation: file %d bytes; messages %d bytes of text (%.2fx), %d bytes as JSON (%.2fx)",
            file, text, Double(file) / Double(text), json, Double(file) / Double(json)))
    if let plain = storage["plainFileBytes"] {
        print(
            String(
                format: "500-turn conversation, non-Equatable message: file %d bytes (%.2fx the text)", plain,
                Double(plain) / Double(text)))
    }
}
if let path = option("--json") {
    struct Output: Codable { var rows: [Row]; var storage: [String: Int] }
    let output = JSONEncoder()
    output.outputFormatting = [.prettyPrinted, .sortedKeys]
    try output.encode(Output(rows: rows, storage: storage)).write(to: URL(fileURLWithPath: path))
    print("wrote \(path)")
}

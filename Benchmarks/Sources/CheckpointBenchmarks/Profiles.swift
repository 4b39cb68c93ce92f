import CheckpointEncryption
import CheckpointPostgres
import CheckpointRedisCache
import CheckpointSQLite
@_spi(Benchmarks) import Checkpointing
import Foundation

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

/// `--profile typed-read[-200][-fresh]`: `latest()` after each save of conversations at 20 (or 200) messages
/// over the in-memory backend (the façade's own cost), by the façade that saved, or by a new
/// façade each time (`-fresh`: the whole state decoded).
nonisolated func profileTypedRead(fresh: Bool, start: Int) async throws {
    let sqlite = CommandLine.arguments.contains("--sqlite")
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("typed-read-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let checkpointer: any Checkpointer =
        sqlite
        ? try await SQLiteCheckpointer(configuration: .init(path: directory.appendingPathComponent("p.db").path))
        : InMemoryCheckpointer()
    var samples = Samples()
    var bytesReads = Samples()
    var secondReads = Samples()
    for index in 0..<200 {
        let thread = try checkpointer.thread("read-\(index)", as: ConversationState.self)
        var state = ConversationState(messages: (1..<start).map(message))
        try await thread.save(state)
        _ = try await thread.latest()
        for size in start...(start + 40) {
            state.messages.append(message(size))
            state.turn = size
            try await thread.save(state)
            let reader = fresh ? try checkpointer.thread("read-\(index)", as: ConversationState.self) : thread
            _ = try await time(&bytesReads) { try await checkpointer.head(thread: thread.id) }
            if CommandLine.arguments.contains("--again") {
                _ = try await time(&secondReads) { try await checkpointer.head(thread: thread.id) }
            }
            // The next turn starts from what was read, as an agent's does.
            state = try await time(&samples) { try await reader.latest() } ?? state
        }
    }
    print("typed read: p50 \(samples.p50 / 1000) µs p99 \(samples.p99 / 1000) µs over \(samples.nanoseconds.count); the bytes-level head read just before: p50 \(bytesReads.p50 / 1000) µs, a second one (--again): \(secondReads.p50 / 1000) µs")
}

/// `--profile decode`: one message (and a whole 20-message list) decoded by `JSONDecoder` and
/// by the fast decoder, alternating, 20,000 times each.
func profileDecode() throws {
    let one = try JSONEncoder().encode(message(7))
    let elements = try (1...20).map { try JSONEncoder().encode(message($0)) }
    let joined = try JSONEncoder().encode((1...20).map(message))
    var foundation = Samples(), fast = Samples(), foundationList = Samples(), fastList = Samples()
    let decoder = JSONDecoder()
    for _ in 0..<20000 {
        _ = try time(&foundation) { try decoder.decode(Message.self, from: one) }
        _ = time(&fast) { FastJSONDecoder().decode(Message.self, from: one) }
    }
    for _ in 0..<2000 {
        _ = try time(&foundationList) { try decoder.decode([Message].self, from: joined) }
        _ = time(&fastList) { elements.map { FastJSONDecoder().decode(Message.self, from: $0) } }
    }
    print("one message (\(one.count) bytes): JSONDecoder p50 \(foundation.p50 / 1000) µs, fast p50 \(fast.p50 / 1000) µs")
    print("20 messages: JSONDecoder (one array) p50 \(foundationList.p50 / 1000) µs, fast (per element) p50 \(fastList.p50 / 1000) µs")
}

/// `--profile seal`: seals one message's bytes 20,000 times.
func profileSeal() throws {
    let sealer = SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())]))
    let thread = try ThreadID("t")
    let plaintext = try JSONEncoder().encode(message(1))
    var samples = Samples()
    for _ in 0..<20000 {
        _ = try time(&samples) { try sealer.seal(plaintext, thread: thread, associatedData: Data("ad".utf8)) }
    }
    print("seal \(plaintext.count) bytes: p50 \(samples.p50 / 1000) µs")
}

/// `--profile pg-read|pg-put`: alternating loops of ours and the raw libpq floor on one
/// connection's thread, for a profiler and for stable medians; `pg-read-pool|pg-put-pool`:
/// the same from Swift's shared pool (no executor preference).
nonisolated func profilePostgres(_ mode: String) async throws {
    let fromPool = mode.hasSuffix("-pool")
    let operation = fromPool ? String(mode.dropLast(5)) : mode
    guard let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"] else {
        fatalError("--postgres URL is required")
    }
    let schema = "profile_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let checkpointer = try await PostgresCheckpointer(
        url: url + "?schema=\(schema)&pool_max=2" + (option("--pg-parameters").map { "&" + $0 } ?? ""))
    let floor = try RawPostgres(url: url)
    let thread = try checkpointer.thread("profile", as: ConversationState.self)
    var state = ConversationState()
    var ours = Samples()
    var raw = Samples()
    let encoder = JSONEncoder()
    try await withTaskExecutorPreference(fromPool ? nil : checkpointer.connectionExecutor(0)) {
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
    print(String(format: "%@: ours p50 %.1f µs, floor p50 %.1f µs, ratio %.2f", mode, ours.p50 / 1000, raw.p50 / 1000, ours.p50 / raw.p50))
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

/// Runs the `--profile` named `mode` (each a loop of one operation, for a profiler) instead of
/// the benchmarks.
nonisolated func runProfile(_ mode: String) async throws {
    if mode == "seal" {
        try profileSeal()
    } else if mode == "redis-read" {
        try await profileRedisRead()
    } else if mode.hasPrefix("pg-") {
        try await profilePostgres(mode)
    } else if mode == "save-field" {
        try await profileSaveField()
    } else if mode == "save" {
        try await profileSave()
    } else if mode == "decode" {
        try profileDecode()
    } else if mode.hasPrefix("typed-read") {
        try await profileTypedRead(fresh: mode.hasSuffix("fresh"), start: mode.contains("200") ? 200 : 20)
    } else if mode == "growth" {
        try await profileGrowth()
    } else if mode.hasPrefix("sqlite-save") {
        try await profileSQLiteSave(sealed: mode.hasSuffix("sealed"))
    } else if mode == "save-sealed" {
        try await profileSave(
            sealing: .wholeState(
                SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())]))))
    } else {
        try await profileLoop(mode)
    }
}

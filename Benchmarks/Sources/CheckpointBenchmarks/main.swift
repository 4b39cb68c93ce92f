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
    print("checkpoint-benchmarks: \(threadCount) conversations per scenario, \(ProcessInfo.processInfo.activeProcessorCount) cores")

    if runs("sqlite") { try await sqliteNormal(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteWriterExecutor(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try sqliteFloorAt200(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") || runs("sealing") { try await sealingCost(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteFull(&rows, directory: directory, threadCount: threadCount) }
    if runs("sqlite") { try await inMemory(&rows, threadCount: threadCount) }
    if runs("sqlite") { try await sqliteInbox(&rows, directory: directory) }
    if runs("postgres"), let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"] {
        try await postgresScenarios(&rows, url: url)
    }
    if runs("redis"), let redisURL = option("--redis") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_REDIS_URL"],
        let url = option("--postgres") ?? ProcessInfo.processInfo.environment["CHECKPOINT_BENCH_POSTGRES_URL"]
    {
        try await redisScenarios(&rows, redisURL: redisURL, url: url)
    }
    var storage: [String: Int] = [:]
    if runs("sqlite") { storage = try await storageScenarios(&rows, directory: directory, threadCount: threadCount) }
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
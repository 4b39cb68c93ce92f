import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Every target, in the order they run.
let allTargets: [FuzzTarget] = [
    .manifest, .segments, .payloads, .elements, .materialize, .pause, .metadata, .checkpointCodec, .cacheEntry, .sealed,
    .ids, .threadID, .sqliteURL, .postgresURL, .redisURL, .memoryURL, .keySource, .keyText,
]

// MARK: - What a crash or a hang leaves behind

/// The input being run, where a signal handler can reach it without allocating or locking:
/// a crash writes it to a file before the process dies.
private enum CrashRecord {
    static let capacity = 1 << 20
    nonisolated(unsafe) static let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
    nonisolated(unsafe) static var length = 0
    /// The file a crash writes the input to, as a C string.
    nonisolated(unsafe) static var path = UnsafeMutablePointer<CChar>.allocate(capacity: 4096)
    /// The message a crash prints, as a C string.
    nonisolated(unsafe) static var message = UnsafeMutablePointer<CChar>.allocate(capacity: 4096)
    /// The handlers that were installed before, by signal number.
    nonisolated(unsafe) static let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)

    static func set(_ input: Data, artifact: String, target: String) {
        length = min(input.count, capacity)
        input.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { buffer.update(from: base.assumingMemoryBound(to: UInt8.self), count: length) }
        }
        copy(artifact, to: path)
        copy("\nCheckpointFuzz: CRASH in target \(target); input written to \(artifact)\n", to: message)
    }

    private static func copy(_ text: String, to destination: UnsafeMutablePointer<CChar>) {
        let utf8 = Array(text.utf8.prefix(4095))
        for (index, byte) in utf8.enumerated() { destination[index] = CChar(bitPattern: byte) }
        destination[utf8.count] = 0
    }

    /// Writes the input being run, then hands the signal to the handler that was there before
    /// (Swift's backtracer, which prints the crash), then to the default action, which ends
    /// the process even when that handler returns (or cannot run, out of memory).
    static func install() {
        copy("", to: path)  // no file until an input runs
        copy("\nCheckpointFuzz: CRASH before any input ran\n", to: message)
        for signal in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE] {
            var action = sigaction()
            action.sa_flags = SA_SIGINFO | Int32(truncatingIfNeeded: SA_RESETHAND)
            sigemptyset(&action.sa_mask)
            #if canImport(Glibc)
                action.__sigaction_handler.sa_sigaction = { signal, info, context in
                    CrashRecord.handle(signal, info, context)
                }
            #else
                action.__sigaction_u.__sa_sigaction = { signal, info, context in
                    CrashRecord.handle(signal, info, context)
                }
            #endif
            sigaction(signal, &action, previous + Int(signal))
        }
    }

    static func handle(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
        _ = write(2, message, strlen(message))
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if file >= 0 {
            _ = write(file, buffer, length)
            close(file)
        }
        let old = previous[Int(signal)]
        if old.sa_flags & SA_SIGINFO != 0 {
            #if canImport(Glibc)
                old.__sigaction_handler.sa_sigaction?(signal, info, context)
            #else
                old.__sigaction_u.__sa_sigaction?(signal, info, context)
            #endif
        }
        // SA_RESETHAND restored the default action: the signal ends the process now.
        var fallback = sigaction()
        sigemptyset(&fallback.sa_mask)
        sigaction(signal, &fallback, nil)
        raise(signal)
    }
}

/// Reports an input that runs longer than the time limit, and ends the process.
private final class Watchdog: Sendable {
    private let started = Atomic<UInt64>(0)
    private let limit: UInt64
    private let state = Mutex<(input: Data, target: String, artifact: String)>((Data(), "", ""))

    init(limitMilliseconds: Int) {
        limit = UInt64(limitMilliseconds) * 1_000_000
        let thread = Thread { [self] in watch() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    func begin(_ input: Data, target: String, artifact: String) {
        state.withLock { $0 = (input, target, artifact) }
        started.store(Self.now(), ordering: .releasing)
    }

    func end() { started.store(0, ordering: .releasing) }

    private func watch() {
        while true {
            usleep(20_000)
            let start = started.load(ordering: .acquiring)
            guard start != 0, Self.now() &- start > limit else { continue }
            let (input, target, artifact) = state.withLock { $0 }
            _ = FileManager.default.createFile(atPath: artifact, contents: input)
            FileHandle.standardError.write(
                Data(
                    "\nCheckpointFuzz: HANG in target \(target): one input ran longer than \(limit / 1_000_000) ms; written to \(artifact)\n"
                        .utf8))
            exit(3)
        }
    }
}

// MARK: - The plain driver

/// Settings of a plain run.
struct PlainOptions {
    var targets: [FuzzTarget] = allTargets
    var runs = 2000
    var seed: UInt64 = 1
    var timeoutMilliseconds = 2000
    var corpus = "Fuzz/corpus"
    var artifacts = ".build/fuzz-artifacts"
    var maximumLength = 4096
    var memoryMegabytes = 2048
}

/// The seeds of a target: the files of its corpus folder, then the ones the library makes.
func seeds(of target: FuzzTarget, corpus: String) throws -> [Data] {
    var seeds: [Data] = []
    let folder = URL(fileURLWithPath: corpus).appendingPathComponent(target.name)
    if let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) {
        for name in names.sorted() where !name.hasPrefix(".") {
            if let data = FileManager.default.contents(atPath: folder.appendingPathComponent(name).path) { seeds.append(data) }
        }
    }
    for seed in try target.seeds() where !seeds.contains(seed) { seeds.append(seed) }
    return seeds
}

/// A short, stable name for an input's file.
func digestName(_ data: Data) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in data {
        hash ^= UInt64(byte)
        hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
}

/// Runs every target over its seeds and `runs` mutations of them; returns the number of findings.
func runPlain(_ options: PlainOptions) throws -> Int {
    try FileManager.default.createDirectory(atPath: options.artifacts, withIntermediateDirectories: true)
    // A length field that makes a decoder allocate without bound hits this limit and crashes
    // (reported as a crash, with its input) instead of swapping the machine to a halt.
    if options.memoryMegabytes > 0 {
        #if canImport(Glibc)
            let resource = Int32(RLIMIT_DATA.rawValue)
        #else
            let resource = RLIMIT_DATA
        #endif
        var limit = rlimit()
        getrlimit(resource, &limit)
        limit.rlim_cur = min(rlim_t(options.memoryMegabytes) << 20, limit.rlim_max)
        setrlimit(resource, &limit)
    }
    CrashRecord.install()
    let watchdog = Watchdog(limitMilliseconds: options.timeoutMilliseconds)
    var findings = 0
    let started = Date()
    var total = 0
    for (offset, target) in options.targets.enumerated() {
        let begin = Date()
        var pool = try seeds(of: target, corpus: options.corpus)
        let seedCount = pool.count
        var mutator = Mutator(
            seed: options.seed &+ UInt64(offset) &* 0x1_0000_0001, maximumLength: options.maximumLength,
            dictionary: target.dictionary)
        var decoded = 0
        var targetFindings = 0
        var reported: Set<String> = []
        for index in 0..<(seedCount + options.runs) {
            let input = index < seedCount ? pool[index] : mutator.mutate(pool[mutator.pick(pool.count)], others: pool)
            let artifact = "\(options.artifacts)/\(target.name)-\(digestName(input))"
            CrashRecord.set(input, artifact: artifact + ".crash", target: target.name)
            watchdog.begin(input, target: target.name, artifact: artifact + ".hang")
            let outcome: Outcome
            do {
                outcome = try target.runBothWays(input)
            } catch {
                watchdog.end()
                targetFindings += 1
                if reported.insert(error.description).inserted {
                    _ = FileManager.default.createFile(atPath: artifact + ".finding", contents: input)
                    printError("CheckpointFuzz: FINDING in \(target.name): \(error.description); input written to \(artifact).finding")
                }
                continue
            }
            watchdog.end()
            if outcome.isDecoded {
                decoded += 1
                // Inputs that decode are worth mutating further (a cheap stand-in for coverage).
                if index >= seedCount, pool.count < 512 { pool.append(input) }
            }
        }
        let inputs = seedCount + options.runs
        total += inputs
        findings += targetFindings
        let seconds = Date().timeIntervalSince(begin)
        say(
            "\(target.name): \(inputs) inputs (\(seedCount) seeds), \(decoded) decoded, \(inputs - decoded - targetFindings) rejected, \(targetFindings) findings, \(String(format: "%.2f", seconds)) s"
        )
    }
    say(
        "CheckpointFuzz: \(options.targets.count) targets, \(total) inputs, \(findings) findings, 0 crashes, 0 hangs, \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
    )
    return findings
}

/// Runs files through a target and prints what each did.
func replay(_ files: [String], targets: [FuzzTarget]) -> Int {
    var failures = 0
    for file in files {
        guard let input = FileManager.default.contents(atPath: file) else {
            printError("CheckpointFuzz: cannot read \(file)")
            failures += 1
            continue
        }
        for target in targets {
            do {
                let outcome = try target.runBothWays(input)
                say("\(file): \(target.name): \(outcome.isDecoded ? "decoded" : "rejected (\(outcome))")")
            } catch {
                say("\(file): \(target.name): FINDING: \(error.description)")
                failures += 1
            }
        }
    }
    return failures
}

/// Writes each target's seeds into `folder/<target>/`, as the committed corpus.
func writeSeeds(to folder: String, targets: [FuzzTarget]) throws {
    for target in targets {
        let directory = URL(fileURLWithPath: folder).appendingPathComponent(target.name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for seed in try target.seeds() {
            try seed.write(to: directory.appendingPathComponent("seed-\(digestName(seed))"))
        }
    }
}

/// Prints a line at once (unbuffered, so that a crash right after it does not lose it).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Prints a line on standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

extension Mutator {
    /// A random index below `count`.
    mutating func pick(_ count: Int) -> Int { Int.random(in: 0..<max(count, 1), using: &generator) }
}

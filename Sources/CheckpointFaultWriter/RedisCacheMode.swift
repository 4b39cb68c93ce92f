// `redis-cache SQLITE-PATH REDIS-URL`: one RedisCachedCheckpointer over SQLite, a writer task
// and two reader tasks on one thread, while scripts/fault-tests.sh SIGKILLs, restarts (from
// its append-only file) and freezes the Redis server. Runs until SIGTERM.
//
// The writer saves turn after turn and records the last acknowledged turn; after each save it
// lets the readers make 0 to 8 reads (chosen at random) before the next one, as an agent that
// thinks between turns would (back-to-back saves keep a cache update under way all the time,
// and readers then always read the base store, never Redis). Each reader reads the head
// through the cache, again and again, and counts a stale read whenever the head it gets is
// older than the last save acknowledged before the read started (the failure seen on 2c08c9d:
// after Redis came back, a head older than an acknowledged save served as a hit), and a wrong
// read when the state it gets is not
// what that turn saved. Two readers, so that one may read while the other's call is the one
// the circuit breaker lets through to a Redis that just came back. Every call that throws is
// a failed call (through the cache, none may: Redis faults fall through to the base store).
//
// Prints "status ..." every 500 reads and "done ..." at the end, each with: saves, reads,
// stale, wrong, failed, and the cache's hits, misses, fallbacks and corrupt entries.
//
// Checked once against a library that serves stale heads: with owed invalidations ignored
// and the per-instance floor of heads off, a CI-sized run (5 kills, 3 freezes) counted 16
// stale reads; with the run id check off too, 27.

import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import Dispatch
import Foundation
import Synchronization

struct CacheState: Codable, Sendable, Equatable {
    var turn = 0
    /// The messages of the last 8 turns: a list that is rewritten, so the state stays small
    /// however many turns the writer saves.
    var recent: [String] = []
}

func cacheState(turn: Int) -> CacheState {
    guard turn > 0 else { return CacheState() }
    return CacheState(turn: turn, recent: (max(1, turn - 7)...turn).map { "turn \($0) " + String(repeating: "y", count: $0 % 50) })
}

/// The writer's wait for the readers' next reads: resumed by the read that completes them,
/// or when the run stops.
final class ReadGate: Sendable {
    private struct State {
        var reads = 0
        var open = false
        var waiter: (target: Int, continuation: CheckedContinuation<Void, Never>)?
    }
    private let state = Mutex(State())

    /// A reader finished a read.
    func read() {
        let ready = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.reads += 1
            guard let waiter = state.waiter, state.reads >= waiter.target else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        ready?.resume()
    }

    /// Returns once the readers have finished `count` more reads, or the gate was opened.
    func wait(forReads count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if count <= 0 || state.open { return true }
                state.waiter = (state.reads + count, continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Lets every wait, present and future, return at once.
    func open() {
        let waiting = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.open = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiting?.resume()
    }
}

final class CacheRun: Sendable {
    let stop = Atomic<Bool>(false)
    let gate = ReadGate()
    /// The last turn whose save returned.
    let acknowledged = Atomic<Int>(0)
    let saves = Atomic<Int>(0)
    let reads = Atomic<Int>(0)
    let stale = Atomic<Int>(0)
    let wrong = Atomic<Int>(0)
    let failed = Atomic<Int>(0)

    var stopped: Bool { stop.load(ordering: .acquiring) }

    func line(_ kind: String, _ cache: RedisCachedCheckpointer) -> String {
        let statistics = cache.statistics
        return "\(kind) saves \(saves.load(ordering: .relaxed)) reads \(reads.load(ordering: .relaxed))"
            + " stale \(stale.load(ordering: .relaxed)) wrong \(wrong.load(ordering: .relaxed))"
            + " failed \(failed.load(ordering: .relaxed)) hits \(statistics.hits) misses \(statistics.misses)"
            + " fallbacks \(statistics.fallbacks) corrupt \(statistics.corruptEntries)"
    }

    /// Counts a failed call; the first few are told on stderr.
    func failure(_ what: String, _ error: any Error) {
        if failed.add(1, ordering: .relaxed).newValue <= 10 { warn("failed call (\(what)): \(error)") }
    }
}

func runRedisCache(sqlitePath: String, redisURL: String, readers: Int = 2) async throws {
    let run = CacheRun()
    signal(SIGTERM, SIG_IGN)
    let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    terminate.setEventHandler {
        run.stop.store(true, ordering: .releasing)
        run.gate.open()
    }
    terminate.resume()

    let base = try await SQLiteCheckpointer(configuration: .init(path: sqlitePath))
    let cache = try await RedisCachedCheckpointer(base: base, configuration: .init(url: CheckpointerURL(redisURL)))
    let id = try ThreadID("fault:redis")

    await withTaskGroup(of: Void.self) { group in
        group.addTask {
            do {
                try await writeTurns(cache: cache, thread: id, run: run)
            } catch {
                run.failure("opening the writer's thread", error)
            }
        }
        for reader in 0..<readers {
            group.addTask {
                do {
                    try await readHeads(cache: cache, thread: id, run: run, reader: reader)
                } catch {
                    run.failure("opening the reader's thread", error)
                }
            }
        }
    }

    // Nobody writes any more: once the last cache update is done, a read through the cache
    // returns the last acknowledged turn.
    await cache.flush()
    let last = run.acknowledged.load(ordering: .acquiring)
    do {
        let head = try await cache.thread(id, as: CacheState.self).latest()
        run.reads.add(1, ordering: .relaxed)
        if (head?.turn ?? 0) < last {
            run.stale.add(1, ordering: .relaxed)
            warn("stale read after the run: turn \(head?.turn ?? 0), turn \(last) was acknowledged")
        } else if head != cacheState(turn: last) {
            run.wrong.add(1, ordering: .relaxed)
            warn("wrong read after the run: not the state of turn \(last)")
        }
    } catch {
        run.failure("the read after the run", error)
    }
    emit(run.line("done", cache))
    do { try await cache.close() } catch { run.failure("close", error) }
}

/// Saves turns until told to stop; prunes now and then so that the file stays small.
private func writeTurns(cache: RedisCachedCheckpointer, thread id: ThreadID, run: CacheRun) async throws {
    let thread = try cache.thread(id, as: CacheState.self)
    var turn = 0
    do {
        turn = try await thread.latest()?.turn ?? 0
    } catch {
        run.failure("the writer's first read", error)
    }
    while !run.stopped {
        let next = cacheState(turn: turn + 1)
        do {
            try await thread.save(next, metadata: ["turn": .int(next.turn)])
            turn = next.turn
            run.acknowledged.store(turn, ordering: .releasing)
            run.saves.add(1, ordering: .relaxed)
        } catch {
            run.failure("save of turn \(next.turn)", error)
            // Follow what the store holds (the save may or may not have landed).
            if let head = try? await thread.latest() { turn = head.turn }
            continue
        }
        if turn % 2000 == 0 {
            do { _ = try await thread.prune(keepingLatest: 100) } catch { run.failure("prune", error) }
        }
        await run.gate.wait(forReads: Int.random(in: 0...8))
    }
}

/// Reads the head through the cache until told to stop.
private func readHeads(cache: RedisCachedCheckpointer, thread id: ThreadID, run: CacheRun, reader: Int) async throws {
    let thread = try cache.thread(id, as: CacheState.self)
    while !run.stopped {
        let floor = run.acknowledged.load(ordering: .acquiring)
        do {
            let head = try await thread.latest()
            let reads = run.reads.add(1, ordering: .relaxed).newValue
            let turn = head?.turn ?? 0
            if turn < floor {
                if run.stale.add(1, ordering: .relaxed).newValue <= 10 {
                    warn("stale read \(reads) (reader \(reader)): turn \(turn), but turn \(floor) was acknowledged before the read started")
                }
            } else if let head, head != cacheState(turn: turn) {
                if run.wrong.add(1, ordering: .relaxed).newValue <= 10 {
                    warn("wrong read \(reads): the state read as turn \(turn) is not what turn \(turn) saved")
                }
            }
            if reads % 500 == 0 { emit(run.line("status", cache)) }
        } catch {
            run.failure("head read", error)
        }
        run.gate.read()
    }
    run.gate.open()  // the writer waits for no more reads
}

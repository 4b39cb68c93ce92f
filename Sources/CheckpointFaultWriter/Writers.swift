// The writers whose saves the fault tests must never lose, and the checker that proves it.

import Checkpointing
import Foundation

struct FaultState: Codable, Sendable, Equatable {
    var messages: [String] = []
    var turn = 0
}

func text(turn: Int, thread: Int) -> String { "thread \(thread) turn \(turn): " + String(repeating: "x", count: turn % 40) }

/// The state after `turn` turns of thread `index`.
func faultState(turn: Int, thread index: Int) -> FaultState {
    FaultState(messages: (0..<turn).map { text(turn: $0 + 1, thread: index) }, turn: turn)
}

/// `write`: saves turns of a few threads until it is killed, printing each acknowledged save.
func write(url: String, threads count: Int) async throws {
    let checkpointer = try await openCheckpointer(url)
    let threads = try (0..<count).map { try checkpointer.thread("fault:\($0)", as: FaultState.self) }
    var states: [FaultState] = []
    for thread in threads { states.append(try await thread.latest() ?? FaultState()) }
    while true {
        for (index, thread) in threads.enumerated() {
            states[index].turn += 1
            states[index].messages.append(text(turn: states[index].turn, thread: index))
            try await thread.save(states[index], metadata: ["turn": .int(states[index].turn)])
            emit("ack \(index) \(states[index].turn)")
        }
    }
}

/// A short wait before trying a failed call again: 5, 10, 20, 40, 80, then 100 ms. (A
/// retry's delay, not a wait for something to happen: the call itself tells whether the
/// store is back.)
func backoff(_ attempt: Int) async {
    try? await Task.sleep(for: .milliseconds(min(100, 5 << min(attempt, 5))))
}

/// Runs `body` until it succeeds, trying again after ``backoff(_:)`` when it throws a
/// `CheckpointError` whose `isRetryable` is true; exits the process on any other error.
func retrying<T>(_ what: String, _ body: () async throws -> T) async -> T {
    var attempt = 0
    while true {
        do {
            return try await body()
        } catch let error as CheckpointError where error.isRetryable {
            emit("retry \(error.code)")
            attempt += 1
            await backoff(attempt)
        } catch {
            fail("non-retryable error while trying to \(what): \(error)")
        }
    }
}

/// `write-retrying`: like `write`, but a store that goes away (a server restarting) is waited
/// out: every error whose `isRetryable` is true is retried after a short backoff. A save that
/// failed that way may have committed before the connection broke, so before trying it again
/// the writer reads the head: it holds either the previous turn (the save is tried again) or
/// this one (it landed, unacknowledged: `landed THREAD TURN`). Any other head, and any error
/// that is not retryable, ends the process with status 1 and a message on stderr.
func writeRetrying(url: String, threads count: Int) async throws {
    let checkpointer = await retrying("open the store") { try await openCheckpointer(url) }
    let threads = try (0..<count).map { try checkpointer.thread("fault:\($0)", as: FaultState.self) }
    var states: [FaultState] = []
    for thread in threads {
        states.append(await retrying("read the head") { try await thread.latest() } ?? FaultState())
    }
    while true {
        for (index, thread) in threads.enumerated() {
            var next = states[index]
            next.turn += 1
            next.messages.append(text(turn: next.turn, thread: index))
            await saveRetrying(next, thread: thread, index: index)
            states[index] = next
        }
    }
}

private func saveRetrying(_ state: FaultState, thread: CheckpointThread<FaultState>, index: Int) async {
    var attempt = 0
    // An attempt failed in a way that may have committed: a conflict now may be that commit.
    var uncertain = false
    while true {
        do {
            let id = try await thread.save(state, metadata: ["turn": .int(state.turn)])
            emit("ack \(index) \(state.turn) \(id)")
            return
        } catch let error as CheckpointError where error.isRetryable || (uncertain && error.code == .conflict) {
            emit("retry \(error.code)")
            uncertain = true
            attempt += 1
            await backoff(attempt)
            let head = await retrying("read the head after a failed save") { try await thread.latest() }
            if head == state {
                emit("landed \(index) \(state.turn)")
                return
            }
            var previous = state
            previous.turn -= 1
            previous.messages.removeLast()
            guard head == previous || (head == nil && previous.turn == 0) else {
                fail(
                    "thread \(index): after a failed save of turn \(state.turn) the head is "
                        + (head.map { "at turn \($0.turn)" } ?? "missing") + ", neither that turn nor the one before")
            }
        } catch {
            fail("non-retryable error saving thread \(index) turn \(state.turn): \(error)")
        }
    }
}

/// `check`: after the writer is gone, every thread's head is at least its last acknowledged
/// turn and reads back as written; an acknowledgement that names its checkpoint (`ack THREAD
/// TURN ID`) is read by id and must hold exactly that turn. Fails with "lost N acknowledged
/// saves: ..." when some are missing (all threads counted), or at the first damaged one. With `all`, the history lists
/// every turn once, newest first, and the newest 50 checkpoints and every 25th before them
/// read back as written.
func check(url: String, log path: String, all: Bool) async throws {
    let checkpointer = try await openCheckpointer(url)
    var acknowledged: [Int: Int] = [:]
    var byID: [Int: [(turn: Int, id: CheckpointID)]] = [:]
    let log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    for line in log.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 3 || parts.count == 4, parts[0] == "ack", let thread = Int(parts[1]), let turn = Int(parts[2])
        else { continue }
        acknowledged[thread] = max(acknowledged[thread] ?? 0, turn)
        if parts.count == 4 {
            guard let id = try? CheckpointID(String(parts[3])) else { fail("a bad checkpoint id in the log: \(line)") }
            byID[thread, default: []].append((turn, id))
        }
    }
    var checked = 0
    // Acknowledged saves the store does not have: counted over every thread before failing.
    var lost = 0
    var losses: [String] = []
    for (index, acked) in acknowledged.sorted(by: { $0.key < $1.key }) {
        let thread = try checkpointer.thread("fault:\(index)", as: FaultState.self)
        guard let head = try await thread.latest() else {
            lost += acked
            losses.append("thread \(index): no head, \(acked) turns acknowledged")
            continue
        }
        if head.turn < acked {
            lost += acked - head.turn
            losses.append("thread \(index): head at turn \(head.turn), \(acked) acknowledged")
        }
        let expected = faultState(turn: head.turn, thread: index)
        guard head == expected else { fail("thread \(index): the head does not read back as written") }
        checked += 1
        for (turn, id) in byID[index] ?? [] where turn <= head.turn {
            let state: FaultState
            do {
                state = try await thread.state(at: id)
            } catch let error as CheckpointError where error.code == .notFound {
                lost += 1
                losses.append("thread \(index): acknowledged checkpoint \(id) of turn \(turn) is not found")
                continue
            }
            guard state.turn == turn, state.messages.elementsEqual(expected.messages.prefix(turn)) else {
                fail("thread \(index): acknowledged checkpoint \(id) of turn \(turn) reads back as turn \(state.turn) or other messages")
            }
            checked += 1
        }
        guard losses.isEmpty else { continue }
        guard all else { continue }
        var before: CheckpointID?
        var nextTurn = head.turn
        while true {
            let page = try await thread.history(before: before, limit: 100)
            for summary in page {
                guard summary.metadata["turn"] == .int(nextTurn) else {
                    fail(
                        "thread \(index): history lists turn \(summary.metadata["turn"].map { "\($0)" } ?? "none") where turn \(nextTurn) belongs"
                    )
                }
                if head.turn - nextTurn < 50 || nextTurn % 25 == 0 {
                    let state = try await thread.state(at: summary.id)
                    guard state.turn == nextTurn, state.messages.elementsEqual(expected.messages.prefix(nextTurn)) else {
                        fail("thread \(index): checkpoint \(summary.id) does not read back as written")
                    }
                }
                nextTurn -= 1
                checked += 1
            }
            guard let last = page.last, page.count == 100 else { break }
            before = last.id
        }
        if nextTurn != 0 { fail("thread \(index): the history ends at turn \(nextTurn + 1), not at turn 1") }
    }
    try await checkpointer.close()
    guard lost == 0 else { fail("lost \(lost) acknowledged saves: " + losses.prefix(3).joined(separator: "; ")) }
    emit("ok: \(acknowledged.count) threads, \(checked) checkpoints read back as written")
}

// A writer for scripts/fault-tests.sh: saves turns of a few threads until it is killed,
// printing each acknowledged save; and a checker that verifies, after the kill, that no
// acknowledged save was lost and that every stored checkpoint reads back exactly as written.
//
//   checkpoint-fault-writer write URL THREADS        # prints "ack THREAD TURN" per save
//   checkpoint-fault-writer check URL ACK-LOG [--all] # exit 0 when nothing was lost or damaged;
//                                                     # --all reads every checkpoint, not only heads

import CheckpointSQLite
import Checkpointing
import Foundation

struct FaultState: Codable, Sendable {
    var messages: [String] = []
    var turn = 0
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("checkpoint-fault-writer: \(message)\n".utf8))
    exit(1)
}

func text(turn: Int, thread: Int) -> String { "thread \(thread) turn \(turn): " + String(repeating: "x", count: turn % 40) }

let arguments = CommandLine.arguments
guard arguments.count >= 4 else { fail("usage: write URL THREADS | check URL ACK-LOG") }
let configuration = try CheckpointerConfiguration(url: arguments[2])

do {
    let checkpointer = try await configuration.makeCheckpointer(backends: [SQLiteCheckpointer.backend])
    switch arguments[1] {
    case "write":
        let count = Int(arguments[3]) ?? 2
        let threads = try (0..<count).map { try checkpointer.thread("fault:\($0)", as: FaultState.self) }
        var states = try await threads.asyncMap { try await $0.latest() ?? FaultState() }
        while true {
            for (index, thread) in threads.enumerated() {
                states[index].turn += 1
                states[index].messages.append(text(turn: states[index].turn, thread: index))
                try await thread.save(states[index], metadata: ["turn": .int(states[index].turn)])
                FileHandle.standardOutput.write(Data("ack \(index) \(states[index].turn)\n".utf8))
            }
        }
    case "check":
        var acknowledged: [Int: Int] = [:]
        let log = (try? String(contentsOfFile: arguments[3], encoding: .utf8)) ?? ""
        for line in log.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "ack", let thread = Int(parts[1]), let turn = Int(parts[2]) else { continue }
            acknowledged[thread] = max(acknowledged[thread] ?? 0, turn)
        }
        var checked = 0
        for (index, acked) in acknowledged.sorted(by: { $0.key < $1.key }) {
            let thread = try checkpointer.thread("fault:\(index)", as: FaultState.self)
            guard let head = try await thread.latest() else { fail("thread \(index): no head, \(acked) turns acknowledged") }
            guard head.turn >= acked else { fail("thread \(index): head at turn \(head.turn), \(acked) acknowledged: lost") }
            let expectedHead = (1...head.turn).map { text(turn: $0, thread: index) }
            guard head.messages == expectedHead else { fail("thread \(index): the head does not read back as written") }
            checked += 1
            var before: CheckpointID?
            // --all: the history lists every turn once, newest first, and the checkpoints'
            // states read back as written (every one of the newest 50, and every 25th before).
            var nextTurn = head.turn
            while arguments.contains("--all") {
                let page = try await thread.history(before: before, limit: 100)
                for summary in page {
                    guard summary.metadata["turn"] == .int(nextTurn) else {
                        fail("thread \(index): history lists turn \(summary.metadata["turn"].map { "\($0)" } ?? "none") where turn \(nextTurn) belongs")
                    }
                    if head.turn - nextTurn < 50 || nextTurn % 25 == 0 {
                        let state = try await thread.state(at: summary.id)
                        let expected = (1...nextTurn).map { text(turn: $0, thread: index) }
                        guard state.turn == nextTurn, state.messages == expected else {
                            fail("thread \(index): checkpoint \(summary.id) does not read back as written")
                        }
                    }
                    nextTurn -= 1
                    checked += 1
                }
                guard let last = page.last, page.count == 100 else { break }
                before = last.id
            }
            if arguments.contains("--all"), nextTurn != 0 {
                fail("thread \(index): the history ends at turn \(nextTurn + 1), not at turn 1")
            }
        }
        try await checkpointer.close()
        FileHandle.standardOutput.write(Data("ok: \(acknowledged.count) threads, \(checked) checkpoints read back as written\n".utf8))
    default:
        fail("unknown command \(arguments[1])")
    }
} catch {
    fail("\(error)")
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

// An agent loop that checkpoints every turn. Stop it and run it again: it continues where it was.
//
//   swift run example-agent                 # 3 turns on ./agent-checkpoints.db
//   swift run example-agent --turns 5       # more turns per run
//   swift run example-agent --rewind 2      # time travel: fork the thread from turn 2
//   CHECKPOINTER_URL=memory: swift run example-agent   # another backend, same code
//
// The replies are scripted: no model, no network.
import CheckpointSQLite
import Checkpointing
import Foundation

/// One chat message.
struct Message: Codable, Sendable, Equatable {
    var role: String
    var text: String
}

/// Everything the agent needs to pick up where it stopped. Each property is a channel:
/// `messages` only grows, so each save stores just the new messages.
struct AgentState: Codable, Sendable {
    var messages: [Message] = []
    var turn = 0
    var topic = "onboarding"
}

let userLines = [
    "Hi! I'd like to set up checkpointing for my agent.",
    "Which backend should I start with?",
    "What happens if two processes write the same thread?",
    "Can I go back to an earlier turn?",
    "How big does the database get?",
    "Thanks, that helps!",
]

func reply(to line: String, turn: Int) -> String {
    switch turn % userLines.count {
    case 0: "Welcome! Every turn of this conversation is a checkpoint in a SQLite file."
    case 1: "SQLite is the embedded default: one file, no server. Another backend is a URL change."
    case 2: "Exactly one wins; the other gets a conflict error, reloads and tries again."
    case 3: "Yes: rewind to any checkpoint and the next save forks the thread from there."
    case 4: "Each save stores only what changed, so it grows with the text, not with the turns."
    default: "You're welcome. Stop me any time: I'll continue from the last checkpoint."
    }
}

func option(_ name: String) -> Int? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return Int(CommandLine.arguments[index + 1])
}

let turnsPerRun = option("--turns") ?? 3
let configuration = try CheckpointerConfiguration.fromEnvironment(default: "sqlite://./agent-checkpoints.db")
print("Opening checkpointer at \(configuration)")
let checkpointer = try await configuration.makeCheckpointer(backends: [SQLiteCheckpointer.backend])
let thread = try checkpointer.thread("demo-user:support", as: AgentState.self)

var state: AgentState
if let rewindTurn = option("--rewind") {
    let history = try await thread.history(limit: 10_000, where: ["turn": .int(rewindTurn)])
    guard let target = history.first else {
        print("No checkpoint for turn \(rewindTurn) in this thread.")
        exit(1)
    }
    state = try await thread.rewind(to: target.id)
    print("Rewound to turn \(rewindTurn) (checkpoint \(target.id)); the next save forks the thread.")
} else if let saved = try await thread.latest() {
    state = saved
    print("Resuming thread '\(thread.id)' after turn \(saved.turn): \(saved.messages.count) messages so far.")
} else {
    state = AgentState()
    print("Starting thread '\(thread.id)': no checkpoint yet.")
}

for _ in 0..<turnsPerRun {
    while true {
        var next = state
        next.turn += 1
        let line = userLines[(next.turn - 1) % userLines.count]
        next.messages.append(Message(role: "user", text: line))
        next.messages.append(Message(role: "assistant", text: reply(to: line, turn: next.turn - 1)))
        do {
            let id = try await thread.save(next, metadata: ["turn": .int(next.turn), "source": "loop"])
            state = next
            print("")
            print("turn \(state.turn)")
            print("  user:  \(line)")
            print("  agent: \(state.messages[state.messages.count - 1].text)")
            print("  saved checkpoint \(id) (\(state.messages.count) messages)")
            break
        } catch let error as CheckpointError where error.code == .conflict {
            // Another process saved this thread first: take its state and play the turn again.
            print("  another writer saved turn \(next.turn) first; reloading and retrying")
            state = try await thread.latest() ?? AgentState()
        }
    }
}

let statistics = try await checkpointer.storageStatistics(thread: thread.id)
print("")
print(
    "Thread '\(thread.id)' holds \(statistics.checkpointCount) checkpoints in \(statistics.payloadByteCount) bytes of payload."
)
print("Run me again to continue from turn \(state.turn + 1); --rewind N forks from turn N.")
try await checkpointer.close()

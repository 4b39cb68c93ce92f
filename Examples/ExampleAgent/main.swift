// An agent loop that checkpoints every turn. Stop it and run it again: it continues where it was.
//
//   swift run example-agent                    # 3 turns on ./agent-checkpoints.db
//   swift run example-agent --turns 5          # more turns per run
//   swift run example-agent --rewind 2         # time travel: fork the thread from turn 2
//   swift run example-agent --inbox            # threads waiting for a person
//   swift run example-agent --answer yes       # answer the agent's question (yes or no)
//   CHECKPOINTER_URL=memory: swift run example-agent   # another backend, same code
//   CHECKPOINTER_URL=postgres://user:pass@host/db swift run example-agent
//   CHECKPOINTER_CACHE_URL=redis://localhost:6379/0 swift run example-agent   # a Redis cache in front
//
// At turn 5 the user asks for a refund, and the agent pauses until a person approves it.
// The replies are scripted: no model, no network.
import CheckpointPostgres
import CheckpointRedisCache
import CheckpointSQLite
import Checkpointing
import Foundation
import Logging

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

/// What the agent asks a person, and the person's decision.
struct RefundRequest: Codable, Sendable {
    var question: String
    var amount: Int
}

struct RefundDecision: Codable, Sendable {
    var approved: Bool
    var reviewer: String
}

let userLines = [
    "Hi! I'd like to set up checkpointing for my agent.",
    "Which backend should I start with?",
    "What happens if two processes write the same thread?",
    "Can I go back to an earlier turn?",
    "Please refund my last invoice, 42 EUR.",
    "Thanks, that helps!",
]
let refundTurn = 4

func reply(turn: Int) -> String {
    switch turn % userLines.count {
    case 0: "Welcome! Every turn of this conversation is a checkpoint in a SQLite file."
    case 1: "SQLite is the embedded default: one file, no server. Another backend is a URL change."
    case 2: "Exactly one wins; the other gets a conflict error, reloads and tries again."
    case 3: "Yes: rewind to any checkpoint and the next save forks the thread from there."
    case refundTurn: "A refund needs a person's approval. I'll wait for it."
    default: "You're welcome. Stop me any time: I'll continue from the last checkpoint."
    }
}

let usage = """
    usage: example-agent [--turns N] [--no-approvals] [--verbose]
           example-agent --rewind N [--turns N]
           example-agent --inbox
           example-agent --answer yes|no [--reviewer NAME]
    """

/// Stops with the usage for an argument the agent does not know or a value it cannot use: a
/// typo (`--anwser yes`) must not run the agent as if nothing had been asked.
func checkArguments() {
    func refuse(_ problem: String) -> Never {
        FileHandle.standardError.write(Data("example-agent: \(problem)\n\(usage)\n".utf8))
        exit(2)
    }
    let arguments = Array(CommandLine.arguments.dropFirst())
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        switch argument {
        case "--inbox", "--no-approvals", "--verbose":
            index += 1
        case "--turns", "--rewind", "--answer", "--reviewer":
            guard index + 1 < arguments.count else { refuse("\(argument) needs a value") }
            let value = arguments[index + 1]
            switch argument {
            case "--turns", "--rewind":
                guard let number = Int(value), number >= 0 else { refuse("\(argument) takes a whole number, not '\(value)'") }
            case "--answer":
                guard ["yes", "no", "y", "n"].contains(value.lowercased()) else { refuse("--answer takes yes or no, not '\(value)'") }
            default:
                break
            }
            index += 2
        default:
            refuse("unknown argument '\(argument)'")
        }
    }
}

func option(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else {
        return nil
    }
    return CommandLine.arguments[index + 1]
}

/// The agent, or a person's side of it (`--inbox`, `--answer`).
func runAgent() async throws {
    let configuration = try CheckpointerConfiguration.fromEnvironment(default: "sqlite://./agent-checkpoints.db")
    print("Opening checkpointer at \(configuration)")
    // The library logs through swift-log; warnings and errors only here (--verbose: also what
    // it does, such as the migrations it applies on first open).
    var logger = Logger(label: "example-agent")
    logger.logLevel = CommandLine.arguments.contains("--verbose") ? .info : .warning
    let checkpointer = try await configuration.makeCheckpointer(
        backends: [SQLiteCheckpointer.backend, PostgresCheckpointer.backend],
        caches: [RedisCachedCheckpointer.cacheLayer], logger: logger)
    let thread = try checkpointer.thread("demo-user:support", as: AgentState.self)

    // A person's side: the inbox, and answering.
    if CommandLine.arguments.contains("--inbox") {
        let page = try await checkpointer.pausedThreads(InboxQuery(limit: 20))
        print(page.items.isEmpty ? "No thread is waiting for a person." : "Waiting for a person:")
        for item in page.items {
            let request = try item.prompt(as: RefundRequest.self)
            print("  \(item.thread) [\(item.pause.reason)] \"\(request.question)\" since \(item.pause.createdAt)")
        }
        try await checkpointer.close()
        exit(0)
    }
    if let answer = option("--answer") {
        _ = try await thread.latest()
        guard let pause = thread.pause else {
            print("Nothing is waiting for an answer.")
            try await checkpointer.close()
            exit(0)
        }
        let decision = RefundDecision(approved: answer.lowercased().hasPrefix("y"), reviewer: option("--reviewer") ?? "you")
        do {
            try await thread.resume(pause.id, with: decision)
            print("Answered pause \(pause.id): \(decision.approved ? "approved" : "declined") by \(decision.reviewer).")
            print("Run the agent again and it goes on from the answer.")
        } catch let error as CheckpointError where error.code == .alreadyResumed {
            print("Pause \(pause.id) was answered already; the first answer stands.")
        } catch let error as CheckpointError where error.code == .stalePause {
            print("The agent went on without this answer.")
        }
        try await checkpointer.close()
        exit(0)
    }

    // The agent's side.
    var state: AgentState
    if let rewindTurn = option("--rewind").flatMap(Int.init) {
        let history = try await thread.history(limit: 10_000, where: ["turn": .int(rewindTurn)])
        guard let target = history.first else {
            print("No checkpoint for turn \(rewindTurn) in this thread.")
            try await checkpointer.close()
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

    // A paused thread is waiting, answered, or expired unanswered: each goes its own way.
    switch thread.pauseStatus() {
    case .waiting:
        print("Still waiting for a person to answer: run with --inbox to see the question, --answer yes to approve.")
        try await checkpointer.close()
        exit(0)
    case .answered:
        if let decision = try thread.answer(as: RefundDecision.self) {
            let text = decision.approved ? "\(decision.reviewer) approved the refund: it is on its way." : "\(decision.reviewer) declined the refund."
            state.messages.append(Message(role: "assistant", text: text))
            print("")
            print("The answer arrived: \(text)")
        }
    case .expired:
        let text = "Nobody could review the refund in time; please ask again."
        state.messages.append(Message(role: "assistant", text: text))
        print("")
        print("The question expired unanswered: \(text)")
    case .notPaused:
        break
    }

    let approvals = !CommandLine.arguments.contains("--no-approvals")
    var pausedNow = false
    for _ in 0..<(option("--turns").flatMap(Int.init) ?? 3) {
        while true {
            var next = state
            next.turn += 1
            let lineIndex = (next.turn - 1) % userLines.count
            let line = userLines[lineIndex]
            if lineIndex == 0, next.turn > 1 {
                print("")
                print("(the scripted conversation of \(userLines.count) turns is over: it plays again from its first line)")
            }
            next.messages.append(Message(role: "user", text: line))
            next.messages.append(Message(role: "assistant", text: reply(turn: next.turn - 1)))
            do {
                if approvals && lineIndex == refundTurn {
                    let pause = try await thread.pause(
                        next, reason: "refund-approval", prompt: RefundRequest(question: "Refund 42 EUR to demo-user?", amount: 42),
                        metadata: ["turn": .int(next.turn), "source": "loop"])
                    state = next
                    pausedNow = true
                    print("")
                    print("turn \(state.turn)")
                    print("  user:  \(line)")
                    print("  agent: \(state.messages[state.messages.count - 1].text)")
                    print("  paused for a person (pause \(pause.id)); run with --inbox, then --answer yes")
                    break
                }
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
        if pausedNow { break }
    }

    let statistics = try await checkpointer.storageStatistics(thread: thread.id)
    print("")
    print(
        "Thread '\(thread.id)' holds \(statistics.checkpointCount) checkpoints in \(statistics.payloadByteCount) bytes of payload."
    )
    if !pausedNow {
        print("Run me again to continue from turn \(state.turn + 1); --rewind N forks from turn N.")
    }
    try await checkpointer.close()
}

checkArguments()
do {
    try await runAgent()
} catch {
    // A clear message and a failing exit status rather than a crash: the store may be down,
    // or another process may have won a race.
    FileHandle.standardError.write(Data("example-agent: \(error)\n".utf8))
    exit((error as? CheckpointError)?.isRetryable == true ? 75 : 1)
}

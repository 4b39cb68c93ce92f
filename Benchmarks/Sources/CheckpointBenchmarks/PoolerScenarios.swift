import CheckpointPostgres
import Checkpointing
import Foundation

/// Postgres behind a transaction pooler: the unnamed-statement mode a pooler needs against the
/// prepared mode on the same direct server, then the same conversations through PgBouncer
/// against direct, then 64 agents sharing a pool of 8 connections through PgBouncer.
///
/// Every checkpointer here uses the database's default schema (a transaction pooler keeps no
/// `search_path`), with thread ids of this run's own.
func postgresPoolerScenarios(_ rows: inout [Row], url: String, bouncerURL: String) async throws {
    let rounds = Int(option("--pooler-rounds") ?? "") ?? 16
    let run = UUID().uuidString.lowercased().prefix(8)
    var prepared = ConversationResult()
    var unnamed = ConversationResult()
    var bounced = ConversationResult()
    // Fresh checkpointers each round, the three in a different order each time: which CPU a
    // server process lands on moves a round trip by tens of microseconds, so all three get
    // the same mix of placements and of whatever else the machine runs.
    let modes: [(String, String)] = [
        ("prepared", url + "?pool_max=2&pooler=session"),
        ("unnamed", url + "?pool_max=2&pooler=transaction"),
        ("bouncer", bouncerURL + "?pool_max=2"),
    ]
    for round in 0..<rounds {
        for offset in 0..<modes.count {
            let (mode, modeURL) = modes[(round + offset) % modes.count]
            let checkpointer = try await PostgresCheckpointer(url: modeURL)
            let result = try await conversationScenario(
                label: "pooler-\(run)-\(mode)-\(round)", checkpointer: checkpointer, floor: nil, threads: 4,
                maxMessages: 25, floorSizes: [], readSizes: [20])
            switch mode {
            case "prepared": prepared.add(result)
            case "unnamed": unnamed.add(result)
            default: bounced.add(result)
            }
            try await checkpointer.close()
        }
    }
    report(&rows, "postgres, unnamed statements (pooler=transaction), direct: put, 16-25 messages", merged(unnamed.puts, 16...25), floor: ("prepared statements, same server, same run", merged(prepared.puts, 16...25)))
    report(&rows, "postgres, unnamed statements (pooler=transaction), direct: head read (bytes), 20 messages", unnamed.reads[20] ?? Samples(), floor: ("prepared statements, same run", prepared.reads[20] ?? Samples()))
    report(&rows, "postgres through PgBouncer (transaction mode): put, 16-25 messages", merged(bounced.puts, 16...25), floor: ("direct, prepared statements, same run", merged(prepared.puts, 16...25)))
    report(&rows, "postgres through PgBouncer (transaction mode): head read (bytes), 20 messages", bounced.reads[20] ?? Samples(), floor: ("direct, prepared statements, same run", prepared.reads[20] ?? Samples()))

    let agents = Int(option("--pooler-agents") ?? "") ?? 64
    let turns = Int(option("--pooler-turns") ?? "") ?? 40
    let throughBouncer = try await crowd(url: bouncerURL + "?pool_max=8", agents: agents, turns: turns, label: "crowd-\(run)-bouncer")
    let direct = try await crowd(url: url + "?pool_max=8", agents: agents, turns: turns, label: "crowd-\(run)-direct")
    let directUnnamed = try await crowd(
        url: url + "?pool_max=8&pooler=transaction", agents: agents, turns: turns, label: "crowd-\(run)-unnamed")
    report(&rows, "postgres through PgBouncer, \(agents) agents on a pool of 8: put", throughBouncer.puts, floor: ("the same directly", direct.puts))
    report(&rows, "postgres, unnamed statements, direct, \(agents) agents on a pool of 8: put", directUnnamed.puts, floor: ("prepared statements", direct.puts))
    print(
        String(
            format: "postgres, %d agents on a pool of 8: through PgBouncer %.0f puts/s (p99 %.0f µs); directly %.0f puts/s (p99 %.0f µs); directly with unnamed statements %.0f puts/s (p99 %.0f µs)",
            agents, throughBouncer.perSecond, throughBouncer.puts.p99 / 1000, direct.perSecond, direct.puts.p99 / 1000,
            directUnnamed.perSecond, directUnnamed.puts.p99 / 1000))
}

/// `agents` tasks at once, each saving its own conversation `turns` times (one message more
/// each turn, starting at 10) through one checkpointer at `url`: every put's latency, and the
/// puts per second of the whole crowd.
private func crowd(url: String, agents: Int, turns: Int, label: String) async throws -> (puts: Samples, perSecond: Double) {
    let checkpointer = try await PostgresCheckpointer(url: url)
    let start = ContinuousClock.now
    let samples = try await withThrowingTaskGroup(of: Samples.self) { group in
        for agent in 0..<agents {
            group.addTask {
                var samples = Samples()
                let thread = try checkpointer.thread("\(label)-\(agent)", as: ConversationState.self)
                var state = ConversationState(messages: (1..<10).map(message))
                for turn in 0..<turns {
                    state.messages.append(message(10 + turn))
                    state.turn = turn
                    _ = try await time(&samples) { try await thread.save(state) }
                }
                return samples
            }
        }
        return try await group.reduce(into: Samples()) { $0.nanoseconds += $1.nanoseconds }
    }
    let elapsed = ContinuousClock.now - start
    try await checkpointer.close()
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (samples, Double(agents * turns) / seconds)
}

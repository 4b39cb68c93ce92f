import Checkpointing
import Foundation

/// The state the incremental-decoding check evolves: lists that grow, shrink and are edited,
/// a dictionary, an optional list and a scalar.
public struct EvolvingState: Codable, Sendable, Equatable {
    /// The conversation.
    public var messages: [TestMessage] = []
    /// Notes keyed by name: a value channel that changes now and then.
    public var notes: [String: Int] = [:]
    /// An optional list, absent in some states.
    public var tags: [String]?
    /// A value that changes every turn.
    public var turn = 0

    /// Creates an empty state.
    public init() {}
}

extension CheckpointerConformance {
    static let decodingChecks: [ConformanceCheck] = [incrementalDecodingEqualsFullDecoding]

    /// A façade decodes a read reusing what it decoded before (the channels whose bytes are the
    /// same, the prefix of a list that grew). After random sequences of its own saves, other
    /// façades' saves, other writers' raw appends, edits, shrinks, replaced lists and forks,
    /// every state it reads must equal what a façade that never decoded the thread reads.
    static let incrementalDecodingEqualsFullDecoding = ConformanceCheck(
        "a façade's decoded state equals a full decode after random saves, forks and other writers' appends"
    ) { checkpointer in
        for seed: UInt64 in [1, 2, 3] {
            try await checkIncrementalDecoding(checkpointer, seed: seed, steps: 40)
        }
    }

    private static func checkIncrementalDecoding(_ checkpointer: any Checkpointer, seed: UInt64, steps: Int) async throws {
        var random = SplitMix64(seed: seed)
        let id = try uniqueThread("decode-\(seed)")
        let reader = try checkpointer.facade(id, as: EvolvingState.self)
        let other = try checkpointer.facade(id, as: EvolvingState.self)
        let rawWrites = CheckpointerConformance.sealing == nil
        var expected = EvolvingState()
        var counter = 0
        func nextMessage() -> TestMessage {
            counter += 1
            return TestMessage(role: counter % 2 == 0 ? "user" : "assistant", text: "\(seed).\(counter) " + sampleText(40 + counter % 90, seed: counter))
        }
        try await reader.save(expected)
        for step in 0..<steps {
            let operation = Int.random(in: 0..<10, using: &random)
            var described: String
            switch operation {
            case 0, 1, 2:
                // The reader appends and saves, then reads the head its own save made.
                var state = try await reader.latest() ?? EvolvingState()
                for _ in 0..<Int.random(in: 1...3, using: &random) { state.messages.append(nextMessage()) }
                state.turn += 1
                try await reader.save(state)
                expected = state
                described = "own append"
            case 3:
                // Another façade appends.
                var state = try await other.latest() ?? EvolvingState()
                state.messages.append(nextMessage())
                if Bool.random(using: &random) { state.notes["n\(step)"] = step }
                try await other.save(state)
                expected = state
                described = "other façade's append"
            case 4 where rawWrites:
                // Another writer appends bytes without a façade.
                let head = try await checkpointer.head(thread: id)
                let message = nextMessage()
                let element = try JSONEncoder().encode(message)
                let turn = Data("\(expected.turn + 100)".utf8)
                try await checkpointer.put(
                    CheckpointWrite(
                        thread: id, parentID: head?.id, step: (head?.step ?? -1) + 1,
                        channels: [
                            "messages": .append([element]), "turn": .value(turn), "notes": .unchanged,
                        ].merging(expected.tags == nil ? [:] : ["tags": .unchanged]) { $1 }),
                    expecting: .parentIsHead)
                expected.messages.append(message)
                expected.turn += 100
                described = "raw append"
            case 5:
                // An edit in the middle (same length), then a shrink.
                var state = try await reader.latest() ?? EvolvingState()
                if !state.messages.isEmpty {
                    let index = Int.random(in: 0..<state.messages.count, using: &random)
                    state.messages[index].text += " (edited)"
                }
                if state.messages.count > 2, Bool.random(using: &random) { state.messages.removeLast() }
                try await reader.save(state)
                expected = state
                described = "edit or shrink"
            case 6:
                // Another façade replaces the list with one of the same length, every element changed.
                var state = try await other.latest() ?? EvolvingState()
                state.messages = state.messages.map { TestMessage(role: $0.role, text: $0.text + "'") }
                state.tags = Bool.random(using: &random) ? (state.tags ?? []) + ["t\(step)"] : nil
                try await other.save(state)
                expected = state
                described = "replaced list"
            case 7, 8:
                // Time travel (a fork from a past checkpoint), or a past state read, then the head.
                let history = try await checkpointer.history(thread: id, namespace: "", limit: 30)
                guard let past = history.randomElement(using: &random)?.id else { continue }
                let forks = operation == 7
                var state = try await forks ? reader.rewind(to: past) : reader.state(at: past)
                let full = try await checkpointer.facade(id, as: EvolvingState.self).state(at: past)
                try await require(state == full, "seed \(seed) step \(step): the state of \(past) differs from a full decode")
                described = forks ? "fork" : "past read"
                if forks {
                    state.messages.append(nextMessage())
                    try await reader.save(state)
                    expected = state
                }
            default:
                // Only a value changes.
                var state = try await reader.latest() ?? EvolvingState()
                state.notes["k\(Int.random(in: 0..<4, using: &random))"] = step
                try await reader.save(state)
                expected = state
                described = "value change"
            }
            let read = try await reader.latest()
            let full = try await checkpointer.facade(id, as: EvolvingState.self).latest()
            try await require(
                read == full,
                "seed \(seed) step \(step) (\(described)): the reader's decoded head differs from a full decode")
            try await require(
                full == expected,
                "seed \(seed) step \(step) (\(described)): the head is not the state last written")
        }
    }
}

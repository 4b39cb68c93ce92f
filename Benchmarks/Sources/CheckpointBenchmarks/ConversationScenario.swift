import Checkpointing
import Foundation

/// What one run of ``conversationScenario`` measured, per conversation size where it is sized.
struct ConversationResult {
    var puts: [Int: Samples] = [:]
    var floorPuts: [Int: Samples] = [:]
    /// Bytes-level head reads.
    var reads: [Int: Samples] = [:]
    /// The first of them after each save (the others read an unchanged head).
    var readsAfterSave: [Int: Samples] = [:]
    /// `latest()` right after a save, by a façade that decoded the state before that save (as
    /// an agent reads after each turn): what is decoded is the change.
    var typedReads: [Int: Samples] = [:]
    /// `latest()` by a façade that never decoded the thread (a process that just started):
    /// the whole state is decoded.
    var freshTypedReads: [Int: Samples] = [:]
    var floorReads = Samples()
    var stateBytes = 0

    /// Adds another run's samples to this one's.
    mutating func add(_ other: ConversationResult) {
        func add(_ samples: inout [Int: Samples], _ more: [Int: Samples]) {
            for (size, more) in more { samples[size, default: Samples()].nanoseconds += more.nanoseconds }
        }
        add(&puts, other.puts)
        add(&floorPuts, other.floorPuts)
        add(&reads, other.reads)
        add(&readsAfterSave, other.readsAfterSave)
        add(&typedReads, other.typedReads)
        add(&freshTypedReads, other.freshTypedReads)
        floorReads.nanoseconds += other.floorReads.nanoseconds
        stateBytes = max(stateBytes, other.stateBytes)
    }
}

/// Grows `threads` conversations one message per save up to `maxMessages`; times every save,
/// the floor's INSERT of the whole state at the sizes in `floorSizes`, and head reads at
/// `readSizes`.
func conversationScenario(
    label: String, checkpointer: any Checkpointer, floor: (any Floor)?, threads: Int, maxMessages: Int,
    floorSizes: [ClosedRange<Int>], readSizes: [Int], sealing: Sealing? = nil
) async throws -> ConversationResult {
    var result = ConversationResult()
    let encoder = JSONEncoder()
    let pacing = try encoder.encode(ConversationState(messages: (1...20).map(message)))
    for index in 0..<threads {
        let id = "bench-\(label)-\(index)"
        let thread = try checkpointer.thread(id, as: ConversationState.self, sealing: sealing)
        var state = ConversationState()
        for size in 1...maxMessages {
            state.messages.append(message(size))
            state.turn = size
            // Ours and the floor alternate which goes first, so that neither always follows the
            // other's fsync or cache effects.
            var floorBytes: Data?
            if let floor, floorSizes.contains(where: { $0.contains(size) }) {
                let bytes = try encoder.encode(state)
                if size == 20 { result.stateBytes = bytes.count }
                floorBytes = bytes
                if size % 2 == 0 { time(&result.floorPuts[size, default: Samples()]) { floor.write(thread: id, data: bytes) } }
            }
            _ = try await time(&result.puts[size, default: Samples()]) { try await thread.save(state) }
            if let floor, let bytes = floorBytes {
                if size % 2 == 1 { time(&result.floorPuts[size, default: Samples()]) { floor.write(thread: id, data: bytes) } }
            } else if let floor, size > 185 {
                // Same pacing as at 16-25 messages (a floor INSERT of a 20-message state after each
                // put), so that the 20 and 200 message puts run under the same conditions; the
                // floor's own 200-message INSERT is measured in a phase of its own below.
                floor.write(thread: "pacing", data: pacing)
            }
            // The agent reads the state before its next turn (untimed) and goes on from it, so
            // that the read timed after the next save finds what this one decoded.
            if readSizes.contains(size + 1) { state = try await thread.latest() ?? state }
            if readSizes.contains(size) {
                let threadID = thread.id
                for round in 0..<4 {
                    // Ours and the floor alternate which goes first.
                    if let floor, size == 20, round % 2 == 0 { _ = time(&result.floorReads) { floor.read(thread: id) } }
                    _ = try await time(&result.reads[size, default: Samples()]) {
                        try await checkpointer.head(thread: threadID)
                    }
                    if round == 0, let last = result.reads[size]?.nanoseconds.last { result.readsAfterSave[size, default: Samples()].nanoseconds.append(last) }
                    if let floor, size == 20, round % 2 == 1 { _ = time(&result.floorReads) { floor.read(thread: id) } }
                    if round == 0 {
                        _ = try await time(&result.typedReads[size, default: Samples()]) { try await thread.latest() }
                    } else {
                        let fresh = try checkpointer.thread(id, as: ConversationState.self, sealing: sealing)
                        _ = try await time(&result.freshTypedReads[size, default: Samples()]) { try await fresh.latest() }
                    }
                }
            }
        }
    }
    return result
}

import Checkpointing
import Foundation

/// Grows `threads` conversations one message per save up to `maxMessages`; times every save,
/// the floor's INSERT of the whole state at the sizes in `floorSizes`, and head reads at
/// `readSizes`.
func conversationScenario(
    label: String, checkpointer: any Checkpointer, floor: (any Floor)?, threads: Int, maxMessages: Int,
    floorSizes: [ClosedRange<Int>], readSizes: [Int], sealing: Sealing? = nil
) async throws -> (puts: [Int: Samples], floorPuts: [Int: Samples], reads: [Int: Samples], typedReads: [Int: Samples], floorReads: Samples, stateBytes: Int) {
    var puts: [Int: Samples] = [:]
    var floorPuts: [Int: Samples] = [:]
    var reads: [Int: Samples] = [:]
    var typedReads: [Int: Samples] = [:]
    var floorReads = Samples()
    var stateBytes = 0
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
                if size == 20 { stateBytes = bytes.count }
                floorBytes = bytes
                if size % 2 == 0 { time(&floorPuts[size, default: Samples()]) { floor.write(thread: id, data: bytes) } }
            }
            _ = try await time(&puts[size, default: Samples()]) { try await thread.save(state) }
            if let floor, let bytes = floorBytes {
                if size % 2 == 1 { time(&floorPuts[size, default: Samples()]) { floor.write(thread: id, data: bytes) } }
            } else if let floor, size > 185 {
                // Same pacing as at 16-25 messages (a floor INSERT of a 20-message state after each
                // put), so that the 20 and 200 message puts run under the same conditions; the
                // floor's own 200-message INSERT is measured in a phase of its own below.
                floor.write(thread: "pacing", data: pacing)
            }
            if readSizes.contains(size) {
                let threadID = thread.id
                for round in 0..<4 {
                    // Ours and the floor alternate which goes first.
                    if let floor, size == 20, round % 2 == 0 { _ = time(&floorReads) { floor.read(thread: id) } }
                    _ = try await time(&reads[size, default: Samples()]) {
                        try await checkpointer.head(thread: threadID)
                    }
                    if let floor, size == 20, round % 2 == 1 { _ = time(&floorReads) { floor.read(thread: id) } }
                    _ = try await time(&typedReads[size, default: Samples()]) { try await thread.latest() }
                }
            }
        }
    }
    return (puts, floorPuts, reads, typedReads, floorReads, stateBytes)
}

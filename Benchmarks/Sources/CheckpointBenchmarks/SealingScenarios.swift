import CheckpointEncryption
import CheckpointSQLite
import Checkpointing
import Foundation

/// Puts of one conversation growing to 25 messages; the samples of sizes 16 to 25.
func profiledPuts<State: Codable & Sendable>(
    _ type: State.Type, make: () -> State, append: (inout State, Int) -> Void, thread: CheckpointThread<State>
) async throws -> [Double] {
    var state = make()
    var samples = Samples()
    for size in 1...25 {
        append(&state, size)
        if size >= 16 {
            _ = try await time(&samples) { try await thread.save(state) }
        } else {
            try await thread.save(state)
        }
    }
    return samples.nanoseconds
}

/// The cost of sealing: the same puts, plain and with the whole state sealed, alternating
/// conversation by conversation (and which goes first) on one writer executor.
func sealingCost(_ rows: inout [Row], directory: URL, threadCount: Int) async throws {
    let checkpointer = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("sealed.db").path))
    let sealing = Sealing.wholeState(
        SodiumSealer(keys: try StaticKeyProvider(keys: [SecretKey(id: "k1", base64: SecretKey.generateBase64())])))
    var plain = Samples()
    var sealed = Samples()
    try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        for index in 0..<threadCount {
            let order: [(String, Sealing?)] = [("plain", nil), ("sealed", sealing)]
            for (label, options) in index % 2 == 0 ? order : order.reversed() {
                let result = try await conversationScenario(
                    label: "\(label)-\(index)", checkpointer: checkpointer, floor: nil, threads: 1, maxMessages: 25,
                    floorSizes: [], readSizes: [], sealing: options)
                if options == nil {
                    plain.nanoseconds += merged(result.puts, 16...25).nanoseconds
                } else {
                    sealed.nanoseconds += merged(result.puts, 16...25).nanoseconds
                }
            }
        }
    }
    report(&rows, "sqlite normal, writer executor: put, whole state sealed, 16-25 messages", sealed, floor: ("the same put, not sealed", plain))
    var plainProfile = Samples()
    var sealedProfile = Samples()
    let fields = Sealing.markedFields(sealing.sealer)
    try await withTaskExecutorPreference(checkpointer.writerExecutor) {
        for index in 0..<threadCount {
            func plain() async throws {
                plainProfile.nanoseconds += try await profiledPuts(
                    ProfiledState.self, make: { ProfiledState() },
                    append: { state, size in state.messages.append(message(size)); state.turn = size },
                    thread: try checkpointer.thread("profile-plain-\(index)", as: ProfiledState.self))
            }
            func sealed() async throws {
                sealedProfile.nanoseconds += try await profiledPuts(
                    SealedProfileState.self, make: { SealedProfileState() },
                    append: { state, size in state.messages.append(message(size)); state.turn = size },
                    thread: try checkpointer.thread("profile-sealed-\(index)", as: SealedProfileState.self, sealing: fields))
            }
            if index % 2 == 0 {
                try await plain()
                try await sealed()
            } else {
                try await sealed()
                try await plain()
            }
        }
    }
    report(&rows, "sqlite normal, writer executor: put, one 1 KB field sealed, 16-25 messages", sealedProfile, floor: ("the same put, field not sealed", plainProfile))
    try await checkpointer.close()
}

import CSQLiteFloor
import CheckpointSQLite
import Checkpointing
import Foundation

/// Puts of conversations of non-Equatable messages growing to 200 messages.
func plainConversationPuts(_ checkpointer: any Checkpointer, threads: Int) async throws -> [Int: Samples] {
    var puts: [Int: Samples] = [:]
    for index in 0..<threads {
        let thread = try checkpointer.thread("bench-plain-\(index)", as: PlainConversationState.self)
        var state = PlainConversationState()
        for size in 1...200 {
            let next = message(size)
            state.messages.append(PlainMessage(role: next.role, text: next.text))
            state.turn = size
            _ = try await time(&puts[size, default: Samples()]) { try await thread.save(state) }
        }
    }
    return puts
}

/// The file size of one 500-turn conversation of ~300-character messages.
func storageOf<State: Codable & Sendable>(
    _ type: State.Type, at path: String, append: (inout State, Message) -> Void, initial: State
) async throws -> (file: Int, text: Int, json: Int) {
    let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: path))
    let thread = try checkpointer.thread("storage", as: State.self)
    var state = initial
    var textBytes = 0
    var jsonBytes = 0
    let encoder = JSONEncoder()
    for turn in 1...500 {
        let next = message(turn)
        textBytes += next.text.utf8.count
        jsonBytes += try encoder.encode(next).count
        append(&state, next)
        try await thread.save(state, metadata: ["turn": .int(turn)])
    }
    try await checkpointer.close()
    var db: OpaquePointer?
    sqlite3_open(path, &db)
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nil, nil, nil)
    sqlite3_close(db)
    let fileBytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    return (fileBytes, textBytes, jsonBytes)
}

/// Storage: one 500-turn conversation, one ~300-character message a turn, with an
/// Equatable message type and with one that is not.
func storageScenarios(_ rows: inout [Row], directory: URL, threadCount: Int) async throws -> [String: Int] {
    var storage: [String: Int] = [:]
    let equatable = try await storageOf(
        ConversationState.self, at: directory.appendingPathComponent("storage.db").path,
        append: { state, next in
            state.messages.append(next)
            state.turn += 1
        }, initial: ConversationState())
    let plain = try await storageOf(
        PlainConversationState.self, at: directory.appendingPathComponent("storage-plain.db").path,
        append: { state, next in
            state.messages.append(PlainMessage(role: next.role, text: next.text))
            state.turn += 1
        }, initial: PlainConversationState())
    storage = [
        "textBytes": equatable.text, "messageJSONBytes": equatable.json, "fileBytes": equatable.file,
        "plainFileBytes": plain.file,
    ]
    let checkpointer = try await SQLiteCheckpointer(
        configuration: .init(path: directory.appendingPathComponent("plain.db").path))
    let puts = try await plainConversationPuts(checkpointer, threads: threadCount)
    report(&rows, "sqlite normal: put, 16-25 messages, non-Equatable message", merged(puts, 16...25))
    report(&rows, "sqlite normal: put, 191-200 messages, non-Equatable message", merged(puts, 191...200))
    try await checkpointer.close()
    return storage
}

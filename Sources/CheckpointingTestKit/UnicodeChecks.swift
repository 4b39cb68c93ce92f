import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// Text is compared by its UTF-8 bytes on every backend, as the stores compare it: "café"
    /// spelled with U+00E9 (NFC) and with "e" and U+0301 (NFD) are two thread ids, two
    /// namespaces, two pause reasons, two tenants, two metadata keys and two metadata values,
    /// although Swift's `==` on `String` calls them equal.
    static let canonicallyEquivalentTextIsDistinct = ConformanceCheck(
        "NFC and NFD spellings of one text are two threads, namespaces, reasons, tenants and metadata keys"
    ) { checkpointer in
        let label = UUID().uuidString.prefix(8)
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        try await require(composed == decomposed && Array(composed.utf8) != Array(decomposed.utf8), "the test's premise")

        // Thread ids.
        let nfc = try ThreadID("\(composed)-\(label)")
        let nfd = try ThreadID("\(decomposed)-\(label)")
        try await require(nfc != nfd && Set([nfc, nfd]).count == 2, "ThreadID compares and hashes bytes")
        try await require((nfc < nfd) != (nfd < nfc), "ThreadID orders the two one way")
        let first = try checkpointer.facade(nfc, as: TestAgentState.self)
        let second = try checkpointer.facade(nfd, as: TestAgentState.self)
        try await first.save(TestAgentState(turn: 1))
        try await require(try await second.latest() == nil, "the NFD thread has no state after a save to the NFC one")
        try await second.save(TestAgentState(turn: 2))  // a first save: it would conflict on one shared thread
        try await require(try await first.latest()?.turn == 1, "the NFC thread keeps its own state")
        try await require(try await second.latest()?.turn == 2, "the NFD thread keeps its own state")
        try await require(try await checkpointer.history(thread: nfc).count == 1, "one checkpoint in the NFC thread")
        try await require(
            try await checkpointer.storageStatistics(thread: nfd).checkpointCount == 1, "one checkpoint in the NFD thread")
        try await checkpointer.deleteThread(nfc)
        try await require(try await checkpointer.head(thread: nfc) == nil, "deleting the NFC thread deletes it")
        try await require(try await second.latest()?.turn == 2, "and leaves the NFD thread alone")

        // Namespaces.
        let thread = try uniqueThread("namespaces-nfc-nfd")
        let composedSpace = try checkpointer.facade(thread, namespace: composed, as: TestAgentState.self)
        let decomposedSpace = try checkpointer.facade(thread, namespace: decomposed, as: TestAgentState.self)
        try await composedSpace.save(TestAgentState(turn: 3))
        try await require(try await decomposedSpace.latest() == nil, "the NFD namespace is empty after a save to the NFC one")
        try await decomposedSpace.save(TestAgentState(turn: 4))
        try await composedSpace.save(TestAgentState(turn: 5))
        try await require(try await composedSpace.latest()?.turn == 5, "the NFC namespace keeps its own state")
        try await require(try await decomposedSpace.latest()?.turn == 4, "the NFD namespace keeps its own state")
        try await require(try await composedSpace.history().count == 2, "two checkpoints in the NFC namespace")
        try await require(
            try await checkpointer.history(thread: thread, namespace: decomposed).count == 1,
            "one checkpoint in the NFD namespace")
        try await require(
            try await checkpointer.prune(thread: thread, namespace: composed, keepingLatest: 1) == 1,
            "pruning the NFC namespace removes its older checkpoint")
        try await require(try await decomposedSpace.latest()?.turn == 4, "and leaves the NFD namespace alone")

        // Pause reasons and tenants: each filter finds only its own spelling.
        var pauses: [String: UUID] = [:]
        for (name, text) in [("nfc", composed), ("nfd", decomposed)] {
            let agent = try checkpointer.facade(
                ThreadID("\(text)\(label):\(name)"), namespace: text, as: TestAgentState.self)
            pauses[name] = try await agent.pause(TestAgentState(turn: 6), reason: "\(text)-\(label)", prompt: "ok?").id
        }
        for (name, text) in [("nfc", composed), ("nfd", decomposed)] where declares(.inbox) {
            let byReason = try await allPausedThreads(checkpointer, InboxQuery(reason: "\(text)-\(label)"))
            try await require(byReason.map(\.pause.id) == [pauses[name]], "the \(name) reason lists its own pause only")
            let byTenant = try await allPausedThreads(checkpointer, InboxQuery(tenant: "\(text)\(label)"))
            try await require(byTenant.map(\.pause.id) == [pauses[name]], "the \(name) tenant lists its own pause only")
            try await require(
                byTenant.first?.namespace.utf8.elementsEqual(text.utf8) == true, "the \(name) pause keeps its namespace")
        }

        // Metadata keys and string values match by bytes in history filters.
        let tagged = try uniqueThread("metadata-nfc-nfd")
        let write = CheckpointWrite(
            thread: tagged, parentID: nil, step: 0, metadata: [composed: 1, "k": .string(composed)],
            channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(write)
        try await require(
            try await checkpointer.history(thread: tagged, where: [composed: 1]).map(\.id) == [write.id],
            "the stored key matches itself")
        try await require(
            try await checkpointer.history(thread: tagged, where: [decomposed: 1]).isEmpty,
            "the key's other spelling does not match")
        try await require(
            try await checkpointer.history(thread: tagged, where: ["k": .string(decomposed)]).isEmpty,
            "the value's other spelling does not match")
        let stored = try await checkpointer.head(thread: tagged)?.metadata
        try await require(
            stored?.keys.contains { $0.utf8.elementsEqual(composed.utf8) } == true, "the key reads back with its bytes")
        guard case .string(let value)? = stored?["k"] else { throw ConformanceFailure(message: "no value", file: #filePath, line: #line) }
        try await require(value.utf8.elementsEqual(composed.utf8), "the value reads back with its bytes")
    }
}

import CheckpointEncryption
import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

let marker = "PLAINTEXT-MARKER-7f3a9c"

func keyProvider(_ ids: [String]) throws -> StaticKeyProvider {
    try StaticKeyProvider(keys: ids.map { try SecretKey(id: $0, base64: SecretKey.generateBase64()) })
}

/// A database file in a fresh temporary folder.
struct TemporaryFolder: ~Copyable {
    let url: URL
    var database: String { url.appendingPathComponent("sealed.db").path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("checkpointing-sealed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Every byte of the database: the file, its WAL and its shared memory.
    func allBytes() throws -> Data {
        var bytes = Data()
        for suffix in ["", "-wal", "-shm"] {
            if let data = FileManager.default.contents(atPath: database + suffix) { bytes.append(data) }
        }
        return bytes
    }
}

@Suite("Conformance over sealed state")
struct SealedConformanceTests {
    static let sealing = Sealing.wholeState(SodiumSealer(keys: try! keyProvider(["k1"])))

    @Test(arguments: CheckpointerConformance.checks)
    func inMemory(_ check: ConformanceCheck) async throws {
        try await CheckpointerConformance.$sealing.withValue(Self.sealing) {
            try await check.run(against: InMemoryCheckpointer())
        }
    }

    @Test(arguments: CheckpointerConformance.checks)
    func sqlite(_ check: ConformanceCheck) async throws {
        let folder = try TemporaryFolder()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        try await CheckpointerConformance.$sealing.withValue(Self.sealing) {
            try await check.run(against: checkpointer)
        }
        try await checkpointer.close()
    }
}

@Suite("Encryption")
struct EncryptionTests {
    @Test func noPlaintextReachesTheSQLiteFile() async throws {
        let folder = try TemporaryFolder()
        var configuration = SQLiteCheckpointer.Configuration(path: folder.database)
        configuration.walCheckpointPages = 1
        let checkpointer = try await SQLiteCheckpointer(configuration: configuration)
        let sealing = Sealing.wholeState(SodiumSealer(keys: try keyProvider(["k1"])))
        let thread = try checkpointer.thread("tenant:secret", as: TestAgentState.self, sealing: sealing)
        var state = TestAgentState(document: "doc " + marker, turn: 1, note: marker)
        for index in 0..<20 {
            state.messages.append(TestMessage(role: "user", text: "\(index) \(marker) \(sampleText(200, seed: index))"))
            try await thread.save(state)
        }
        let pause = try await thread.pause(state, reason: "approve", prompt: "prompt " + marker)
        try await thread.resume(pause.id, with: "answer " + marker)
        #expect(try await checkpointer.thread("tenant:secret", as: TestAgentState.self, sealing: sealing).latest() == state)
        try await checkpointer.close()
        let bytes = try folder.allBytes()
        #expect(bytes.count > 10_000)
        #expect(bytes.range(of: Data(marker.utf8)) == nil, "the marker is in the file")
        #expect(bytes.range(of: Data("approve".utf8)) != nil, "the pause reason stays plain, for the inbox")
    }

    @Test func aSealedValueOpensOnlyWhereItBelongs() async throws {
        let checkpointer = InMemoryCheckpointer()
        let sealing = Sealing.wholeState(SodiumSealer(keys: try keyProvider(["k1"])))
        let first = try checkpointer.thread("a:one", as: TestAgentState.self, sealing: sealing)
        try await first.save(TestAgentState(messages: [sampleMessage(1), sampleMessage(2)], document: "alpha", turn: 1))
        let stored = try #require(try await checkpointer.head(thread: ThreadID("a:one")))

        func copy(_ channels: [String: ChannelWrite], to thread: String) async throws -> CheckpointError? {
            try await checkpointer.put(CheckpointWrite(thread: ThreadID(thread), parentID: nil, step: 0, channels: channels))
            do {
                _ = try await checkpointer.thread(thread, as: TestAgentState.self, sealing: sealing).latest()
                return nil
            } catch let error as CheckpointError {
                return error
            }
        }
        let writes = stored.channels.mapValues { value -> ChannelWrite in
            switch value {
            case .value(let data): .value(data)
            case .list(let elements): .list(elements)
            }
        }
        // The same bytes in another thread.
        #expect(try await copy(writes, to: "a:two")?.code == .decryptionFailed)
        // A value moved to another field.
        var swapped = writes
        swapped["document"] = writes["turn"]
        swapped["turn"] = writes["document"]
        #expect(try await copy(swapped, to: "a:three")?.code == .decryptionFailed)
        // List elements in another order.
        guard case .list(let elements)? = stored.channels["messages"] else {
            Issue.record("messages is not a list")
            return
        }
        var reordered = writes
        reordered["messages"] = .list(elements.reversed())
        #expect(try await copy(reordered, to: "a:four")?.code == .decryptionFailed)
        // Another thread id is another place, even a similar one.
        #expect(try await copy(writes, to: "a:one-again")?.code == .decryptionFailed, "another thread id is another place")
        // Positive control: the very same bytes, put back where they were sealed (a new
        // checkpoint of the same thread and namespace), open and read back the state.
        try await checkpointer.put(
            CheckpointWrite(thread: ThreadID("a:one"), parentID: stored.id, step: 1, channels: writes))
        let reopened = try await checkpointer.thread("a:one", as: TestAgentState.self, sealing: sealing).latest()
        #expect(reopened?.document == "alpha" && reopened?.messages.count == 2, "the bytes open where they belong")
    }

    @Test func everyBitFlipIsRejected() throws {
        let sealer = SodiumSealer(keys: try keyProvider(["k1"]))
        let thread = try ThreadID("t")
        let plaintext = Data(sampleText(64, seed: 3).utf8)
        let sealed = try sealer.seal(plaintext, thread: thread, associatedData: Data("place".utf8))
        #expect(try sealer.open(sealed, thread: thread, associatedData: Data("place".utf8)) == plaintext)
        var rejected = 0
        for index in sealed.indices {
            for bit in 0..<8 {
                var flipped = sealed
                flipped[index] ^= UInt8(1 << bit)
                do {
                    _ = try sealer.open(flipped, thread: thread, associatedData: Data("place".utf8))
                } catch let error as CheckpointError where error.code == .decryptionFailed {
                    rejected += 1
                }
            }
        }
        #expect(rejected == sealed.count * 8)
        for length in [0, 1, 2, 10, sealed.count - 1] {
            let error = #expect(throws: CheckpointError.self) {
                try sealer.open(sealed.prefix(length), thread: thread, associatedData: Data("place".utf8))
            }
            #expect(error?.code == .decryptionFailed)
        }
        let elsewhere = #expect(throws: CheckpointError.self) {
            try sealer.open(sealed, thread: thread, associatedData: Data("other place".utf8))
        }
        #expect(elsewhere?.code == .decryptionFailed)
    }

    @Test func rotatedKeysStillOpenOldCheckpoints() async throws {
        let checkpointer = InMemoryCheckpointer()
        let old = try SecretKey(id: "2026-01", base64: SecretKey.generateBase64())
        let new = try SecretKey(id: "2026-02", base64: SecretKey.generateBase64())
        let before = Sealing.wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [old])))
        let after = Sealing.wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [new, old])))
        let id = try ThreadID("rotation")
        let writer = try checkpointer.thread(id, as: TestAgentState.self, sealing: before)
        let first = try await writer.save(TestAgentState(document: sampleText(300, seed: 1), turn: 1))

        let rotated = try checkpointer.thread(id, as: TestAgentState.self, sealing: after)
        #expect(try await rotated.latest()?.turn == 1, "an old checkpoint opens after rotation")
        let second = try await rotated.save(TestAgentState(document: sampleText(300, seed: 2), turn: 2))
        let stored = try #require(try await checkpointer.checkpoint(thread: id, namespace: "", id: second))
        guard case .value(let sealed)? = stored.channels["document"] else {
            Issue.record("document is not a value")
            return
        }
        #expect(String(decoding: sealed.dropFirst(2).prefix(7), as: UTF8.self) == "2026-02", "new values use the new key")
        #expect(try await rotated.state(at: first).turn == 1)

        // Without the old key, the old checkpoint no longer opens, and says why.
        let newOnly = Sealing.wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [new])))
        let forgetful = try checkpointer.thread(id, as: TestAgentState.self, sealing: newOnly)
        #expect(try await forgetful.latest()?.turn == 2)
        let error = await #expect(throws: CheckpointError.self) { try await forgetful.state(at: first) }
        #expect(error?.code == .decryptionFailed)
        #expect(error?.message.contains("unknown key id '2026-01'") == true)

        // A wrong key with the right id fails too.
        let impostor = try SecretKey(id: "2026-02", base64: SecretKey.generateBase64())
        let wrong = Sealing.wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [impostor])))
        let wrongError = await #expect(throws: CheckpointError.self) {
            try await checkpointer.thread(id, as: TestAgentState.self, sealing: wrong).latest()
        }
        #expect(wrongError?.code == .decryptionFailed)
    }

    @Test func keysComeFromTheEnvironmentOrAFile() throws {
        let one = SecretKey.generateBase64()
        let two = SecretKey.generateBase64()
        let provider = try StaticKeyProvider.fromEnvironment(environment: ["CHECKPOINT_KEYS": "new:\(two), old:\(one)"])
        #expect(provider.currentID == "new")
        #expect(try provider.key(id: "old", for: ThreadID("t")) != nil)
        let folder = try TemporaryFolder()
        let path = folder.url.appendingPathComponent("keys").path
        try Data("k2:\(two)\nk1:\(one)\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try StaticKeyProvider.fromFile(path).currentID == "k2")
        for bad in ["", "nocolon", "k:notbase64!", "k:\(Data(count: 16).base64EncodedString())", "a b:\(one)", "k:\(one),k:\(two)"] {
            let error = #expect(throws: CheckpointError.self, "\(bad)") {
                try StaticKeyProvider(text: bad)
            }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.description.contains(one) == false)
        }
        #expect(throws: CheckpointError.self) { try StaticKeyProvider.fromFile("/nonexistent/keys") }
        let key = try SecretKey(id: "visible", base64: one)
        #expect(!key.description.contains(one) && key.description.contains("visible"))
    }
}

@Suite("Encryption configuration")
struct EncryptionConfigurationTests {
    @Test func theKeySourceIsPartOfTheConfiguration() async throws {
        let key = SecretKey.generateBase64()
        let environment = [
            "CHECKPOINTER_URL": "memory:", "CHECKPOINTER_KEYS": "env:AGENT_KEYS", "AGENT_KEYS": "k1:\(key)",
        ]
        let configuration = try CheckpointerConfiguration.fromEnvironment(environment: environment)
        #expect(configuration.keySource == .environment("AGENT_KEYS"))
        #expect(!configuration.description.contains(key))
        let sealing = try #require(try configuration.makeSealing(environment: environment))
        let checkpointer = try await configuration.makeCheckpointer()
        let thread = try checkpointer.thread("configured", as: TestAgentState.self, sealing: sealing)
        try await thread.save(TestAgentState(document: marker, turn: 1))
        let stored = try #require(try await checkpointer.head(thread: ThreadID("configured")))
        #expect(!stored.channels.values.contains { value in
            if case .value(let data) = value { data.range(of: Data(marker.utf8)) != nil } else { false }
        })
        #expect(try await thread.latest()?.document == marker)

        #expect(try CheckpointerConfiguration.fromEnvironment(environment: ["CHECKPOINTER_URL": "memory:"]).makeSealing() == nil)
        #expect(try KeySource("file:/etc/keys") == .file("/etc/keys"))
        for bad in ["", "env:", "keys.txt", "file:"] {
            #expect(throws: CheckpointError.self) { try KeySource(bad) }
        }
        let missing = #expect(throws: CheckpointError.self) {
            try CheckpointerConfiguration(url: "memory:", keySource: .environment("NOT_SET")).makeSealing(environment: [:])
        }
        #expect(missing?.code == .invalidConfiguration)
    }
}

struct Note: Codable, Sendable, Equatable {
    var title: String
    @Sealed var body: String
}

struct SecretState: Codable, Sendable, Equatable {
    var notes: [Note] = []
    @Sealed var token: String = ""
    var profile = Profile()
    var turn = 0

    struct Profile: Codable, Sendable, Equatable {
        var name = "ana"
        @Sealed var email = ""
    }
}

@Suite("Sealed fields")
struct SealedFieldTests {
    static let sealing = Sealing.markedFields(SodiumSealer(keys: try! keyProvider(["k1"])))

    func secretState(_ turns: Int) -> SecretState {
        var state = SecretState(token: "token " + marker, turn: turns)
        state.profile.email = "mail " + marker
        for index in 0..<turns {
            state.notes.append(Note(title: "title \(index)", body: "body \(index) " + marker))
        }
        return state
    }

    @Test func markedFieldsAreSealedAndTheRestStaysPlain() async throws {
        let folder = try TemporaryFolder()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let thread = try checkpointer.thread("fields", as: SecretState.self, sealing: Self.sealing)
        var state = secretState(3)
        try await thread.save(state)
        state.notes.append(Note(title: "title 3", body: "body 3 " + marker))
        state.turn = 4
        try await thread.save(state)
        let reader = try checkpointer.thread("fields", as: SecretState.self, sealing: Self.sealing)
        #expect(try await reader.latest() == state)
        try await checkpointer.close()
        let bytes = try folder.allBytes()
        #expect(bytes.range(of: Data(marker.utf8)) == nil, "a sealed field's plaintext is in the file")
        #expect(bytes.range(of: Data("title 3".utf8)) != nil, "unmarked fields stay plain")
    }

    @Test func anUnchangedSealedFieldIsNotStoredAgain() async throws {
        let checkpointer = InMemoryCheckpointer()
        let thread = try checkpointer.thread("unchanged", as: SecretState.self, sealing: Self.sealing)
        var state = secretState(1)
        state.token = String(repeating: "t", count: 2000)
        try await thread.save(state)
        let before = try await checkpointer.storageStatistics(thread: ThreadID("unchanged")).payloadByteCount
        for turn in 0..<5 {
            state.turn = turn + 10
            try await thread.save(state)
        }
        let after = try await checkpointer.storageStatistics(thread: ThreadID("unchanged")).payloadByteCount
        #expect(after - before < 500, "five saves with an unchanged 2 KB sealed token added \(after - before) bytes")
        // And after a restart, the first save does not store it again either.
        let restarted = try checkpointer.thread("unchanged", as: SecretState.self, sealing: Self.sealing)
        var loaded = try #require(try await restarted.latest())
        loaded.turn += 1
        try await restarted.save(loaded)
        let final = try await checkpointer.storageStatistics(thread: ThreadID("unchanged")).payloadByteCount
        #expect(final - after < 100)
        loaded.token = "changed"
        try await restarted.save(loaded)
        #expect(try await restarted.latest()?.token == "changed")
    }

    @Test func aSealedFieldOpensOnlyInItsPlace() async throws {
        let checkpointer = InMemoryCheckpointer()
        let thread = try checkpointer.thread("place", as: SecretState.self, sealing: Self.sealing)
        try await thread.save(secretState(2))
        let stored = try #require(try await checkpointer.head(thread: ThreadID("place")))
        guard case .list(let notes)? = stored.channels["notes"], notes.count == 2 else {
            Issue.record("notes is not a list of two")
            return
        }
        // Swap the two notes' sealed bodies: each opens only as its own element.
        func body(_ data: Data) throws -> String {
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(object["body"] as? String)
        }
        func withBody(_ data: Data, _ body: String) throws -> Data {
            var object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            object["body"] = body
            return try JSONSerialization.data(withJSONObject: object)
        }
        let swapped = [try withBody(notes[0], try body(notes[1])), try withBody(notes[1], try body(notes[0]))]
        var channels: [String: ChannelWrite] = [:]
        for (name, value) in stored.channels {
            switch value {
            case .value(let data): channels[name] = .value(data)
            case .list: channels[name] = .list(swapped)
            }
        }
        try await checkpointer.put(
            CheckpointWrite(thread: ThreadID("place"), parentID: stored.id, step: 1, channels: channels))
        let error = await #expect(throws: CheckpointError.self) {
            try await checkpointer.thread("place", as: SecretState.self, sealing: Self.sealing).latest()
        }
        #expect(error?.code == .decryptionFailed)
    }

    /// Whole-state sealing skips the field machinery once a save found no `Sealed` field; a
    /// field that appears later (an optional one set, a list element that has one) is still
    /// sealed, and opens.
    @Test func aSealedFieldThatAppearsLaterUnderWholeStateSealing() async throws {
        struct Later: Codable, Sendable, Equatable {
            var turn = 0
            var notes: [Note] = []
        }
        let folder = try TemporaryFolder()
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let sealing = Sealing.wholeState(SodiumSealer(keys: try keyProvider(["k1"])))
        let thread = try checkpointer.thread("later", as: Later.self, sealing: sealing)
        var state = Later(turn: 1)
        try await thread.save(state)
        try await thread.save(Later(turn: 2))
        state = Later(turn: 3, notes: [Note(title: "plain title", body: "body " + marker)])
        try await thread.save(state)
        state.notes.append(Note(title: "second", body: "again " + marker))
        state.turn = 4
        try await thread.save(state)
        #expect(try await checkpointer.thread("later", as: Later.self, sealing: sealing).latest() == state)
        try await checkpointer.close()
        #expect(try folder.allBytes().range(of: Data(marker.utf8)) == nil)
    }

    @Test func sealedFieldsNeverEncodeWithoutSealing() async throws {
        let checkpointer = InMemoryCheckpointer()
        let plain = try checkpointer.thread("plain", as: SecretState.self)
        let error = await #expect(throws: CheckpointError.self) { try await plain.save(self.secretState(1)) }
        #expect(error?.code == .encodingFailed)
        #expect(throws: (any Error).self) { try JSONEncoder().encode(self.secretState(1)) }
    }
}

@Suite("Tenant keys and rotation")
struct TenantKeyTests {
    @Test func aShreddedTenantCannotBeReadAndOthersStill() async throws {
        let folder = try TemporaryFolder()
        let master = try keyProvider(["m1"])
        let store = try FileTenantKeyStore(directory: folder.url.appendingPathComponent("tenants"))
        let keys = TenantKeyProvider(master: master, store: store)
        let sealing = Sealing.wholeState(SodiumSealer(keys: keys))
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        for tenant in ["acme", "globex"] {
            let thread = try checkpointer.thread("\(tenant):support", as: TestAgentState.self, sealing: sealing)
            try await thread.save(TestAgentState(messages: [sampleMessage(1)], document: "\(tenant) secret", turn: 1))
        }
        // Each tenant has its own key.
        #expect(try keys.currentKey(for: ThreadID("acme:x")).withBytes { Array($0) }
            != keys.currentKey(for: ThreadID("globex:x")).withBytes { Array($0) })
        let files = try FileManager.default.contentsOfDirectory(atPath: store.directory.path)
        #expect(files.count == 2 && !files.contains { $0.contains("acme") }, "material files do not name tenants")

        // Another process destroys the tenant's material: this one notices at once.
        try TenantKeyProvider(master: master, store: try FileTenantKeyStore(directory: store.directory))
            .destroy(tenant: "acme")
        let stale = try checkpointer.thread("acme:support", as: TestAgentState.self, sealing: sealing)
        let staleError = await #expect(throws: CheckpointError.self) { try await stale.latest() }
        #expect(staleError?.code == .decryptionFailed)
        // Another process, with the same master key and store.
        let restarted = Sealing.wholeState(SodiumSealer(keys: TenantKeyProvider(master: master, store: store)))
        let shredded = try checkpointer.thread("acme:support", as: TestAgentState.self, sealing: restarted)
        let error = await #expect(throws: CheckpointError.self) { try await shredded.latest() }
        #expect(error?.code == .decryptionFailed)
        #expect(error?.message.contains("destroyed") == true)
        let other = try checkpointer.thread("globex:support", as: TestAgentState.self, sealing: restarted)
        #expect(try await other.latest()?.document == "globex secret")
        try await checkpointer.close()
    }

    /// Erasure with per-tenant keys: the material goes first, then every thread of the tenant;
    /// another tenant's threads and material stay. A store that cannot destroy the material
    /// makes the erasure fail with nothing deleted.
    @Test func deleteTenantDestroysTheKeyMaterialAndEveryThread() async throws {
        let folder = try TemporaryFolder()
        let master = try keyProvider(["m1"])
        let store = try FileTenantKeyStore(directory: folder.url.appendingPathComponent("tenants"))
        let keys = TenantKeyProvider(master: master, store: store)
        let sealing = Sealing.wholeState(SodiumSealer(keys: keys))
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        for tenant in ["acme", "globex"] {
            for name in ["support", "billing"] {
                let thread = try checkpointer.thread("\(tenant):\(name)", as: TestAgentState.self, sealing: sealing)
                try await thread.save(TestAgentState(document: "\(tenant) secret", turn: 1))
                try await thread.save(TestAgentState(document: "\(tenant) secret", turn: 2))
            }
        }
        let erasure = try await checkpointer.deleteTenant("acme", destroyingKeysIn: keys)
        #expect(erasure == TenantErasure(tenant: "acme", threadCount: 2, checkpointCount: 4, keyMaterialDestroyed: true))
        #expect(try store.material(for: "acme", create: false) == nil)
        #expect(try await checkpointer.threads(ThreadQuery(tenant: "acme")).items.isEmpty)
        let other = try checkpointer.thread("globex:billing", as: TestAgentState.self, sealing: sealing)
        #expect(try await other.latest()?.document == "globex secret")

        // A store that cannot destroy the material: nothing is deleted.
        struct Undestroyable: TenantKeyStore {
            let base: FileTenantKeyStore
            func material(for tenant: String, create: Bool) throws -> SecretKey? {
                try base.material(for: tenant, create: create)
            }
            func destroy(tenant: String) throws { throw CheckpointError(.backendFailure, "the disk is gone") }
        }
        let stuck = TenantKeyProvider(master: master, store: Undestroyable(base: store))
        let error = await #expect(throws: CheckpointError.self) {
            try await checkpointer.deleteTenant("globex", destroyingKeysIn: stuck)
        }
        #expect(error?.code == .backendFailure)
        #expect(try await other.latest()?.document == "globex secret")
        try await checkpointer.close()
    }

    /// A façade that read a thread before reuses what it decoded only where no sealed bytes
    /// had to be opened: once the tenant's material is destroyed, its very next read fails,
    /// whether the whole state or marked fields are sealed.
    @Test(arguments: ["whole state", "marked fields"])
    func theSameFacadeNoticesADestroyedKeyOnItsNextRead(_ mode: String) async throws {
        let folder = try TemporaryFolder()
        let master = try keyProvider(["m1"])
        let store = try FileTenantKeyStore(directory: folder.url.appendingPathComponent("tenants"))
        let sealer = SodiumSealer(keys: TenantKeyProvider(master: master, store: store))
        let sealing = mode == "whole state" ? Sealing.wholeState(sealer) : .markedFields(sealer)
        let checkpointer = try await SQLiteCheckpointer(configuration: .init(path: folder.database))
        let thread = try checkpointer.thread("acme:support", as: SecretState.self, sealing: sealing)
        var state = SecretState(token: "token", turn: 1)
        state.notes = [Note(title: "a", body: "secret a")]
        state.profile.email = "ana@example.com"
        try await thread.save(state)
        #expect(try await thread.latest() == state)
        #expect(try await thread.latest() == state, "a read of an unchanged head")
        try TenantKeyProvider(master: master, store: try FileTenantKeyStore(directory: store.directory))
            .destroy(tenant: "acme")
        let error = await #expect(throws: CheckpointError.self) { try await thread.latest() }
        #expect(error?.code == .decryptionFailed)
        try await checkpointer.close()
    }

    @Test func aDestroyThatCannotDestroyFailsLoudly() throws {
        let folder = try TemporaryFolder()
        let store = try FileTenantKeyStore(directory: folder.url.appendingPathComponent("tenants"))
        _ = try store.material(for: "acme", create: true)
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: store.directory.path).first)
        let path = store.directory.appendingPathComponent(name)
        // The material's path holds something destroy cannot overwrite (here a directory, with
        // a file inside, as a restore gone wrong might leave): it must say so, not return.
        try FileManager.default.removeItem(at: path)
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: false)
        try Data("x".utf8).write(to: path.appendingPathComponent("inside"))
        let error = #expect(throws: CheckpointError.self) { try store.destroy(tenant: "acme") }
        #expect(error?.code == .backendFailure)
        #expect(error?.message.contains("not destroyed") == true, "\(String(describing: error))")
        // A tenant that never had material: nothing to destroy, not an error.
        try store.destroy(tenant: "never-seen")
        // A normal destroy leaves no file behind.
        _ = try store.material(for: "globex", create: true)
        try store.destroy(tenant: "globex")
        #expect(try store.material(for: "globex", create: false) == nil)
    }

    @Test func rewritingTheHeadAndPruningRetiresTheOldKey() async throws {
        let checkpointer = InMemoryCheckpointer()
        let old = try SecretKey(id: "old", base64: SecretKey.generateBase64())
        let new = try SecretKey(id: "new", base64: SecretKey.generateBase64())
        let id = try ThreadID("retire")
        let before = try checkpointer.thread(
            id, as: TestAgentState.self, sealing: .wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [old]))))
        var state = TestAgentState(document: sampleText(500, seed: 4))
        for turn in 0..<5 {
            state.messages.append(sampleMessage(turn))
            state.turn = turn
            try await before.save(state)
        }
        let rotated = try checkpointer.thread(
            id, as: TestAgentState.self, sealing: .wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [new, old]))))
        try await rotated.rewriteHead()
        try await rotated.prune(keepingLatest: 1)
        let newOnly = try checkpointer.thread(
            id, as: TestAgentState.self, sealing: .wholeState(SodiumSealer(keys: try StaticKeyProvider(keys: [new]))))
        #expect(try await newOnly.latest() == state, "the old key is no longer needed")
        #expect(try await newOnly.history().count == 1)
    }
}

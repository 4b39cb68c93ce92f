import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

@Suite("Façade")
struct FacadeTests {
    struct Counter: Codable, Sendable {
        var turn = 0
    }

    /// `update`'s closure runs in the caller's isolation, so main-actor code calls it as is.
    @MainActor @Test func updateRunsInTheCallersIsolation() async throws {
        let thread = try InMemoryCheckpointer().thread("main-actor", as: Counter.self)
        var seen: [Int] = []  // main-actor state the closure touches
        try await thread.update(startingWith: Counter()) { state in
            state.turn += 1
            seen.append(state.turn)
        }
        #expect(seen == [1])
        #expect(try await thread.latest()?.turn == 1)
    }

    struct Ticket: Codable, Sendable {
        struct Line: Codable, Sendable { var amount: Int }
        var turn = 0
        var lines: [Line] = []
    }
    struct TicketWithTextAmounts: Codable, Sendable {
        struct Line: Codable, Sendable { var amount: String }
        var turn = 0
        var lines: [Line] = []
    }
    struct TicketWithTextTurn: Codable, Sendable {
        var turn = ""
    }

    /// A type mismatch names the property it happened in (the stored channel) and the element,
    /// as JSONDecoder's coding path would for the whole state.
    @Test func aDecodingErrorNamesTheChannelAndTheElement() async throws {
        let checkpointer = InMemoryCheckpointer()
        try await checkpointer.thread("t", as: Ticket.self).save(Ticket(turn: 3, lines: [.init(amount: 1), .init(amount: 2)]))
        let inList = try await requireError(.decodingFailed) {
            try await checkpointer.thread("t", as: TicketWithTextAmounts.self).latest()
        }
        #expect(inList.message.contains("at lines.#0.amount"), "\(inList.message)")
        let inValue = try await requireError(.decodingFailed) {
            try await checkpointer.thread("t", as: TicketWithTextTurn.self).latest()
        }
        #expect(inValue.message.contains("at turn"), "\(inValue.message)")
        struct TicketWithNotes: Codable, Sendable {
            struct Line: Codable, Sendable { var amount: Int; var note: String }
            var lines: [Line] = []
        }
        let missing = try await requireError(.decodingFailed) {
            try await checkpointer.thread("t", as: TicketWithNotes.self).latest()
        }
        #expect(missing.message.contains("missing 'note' at lines.#0"), "\(missing.message)")
        #expect(missing.localizedDescription == missing.description, "logging code that prints localizedDescription sees the message")
    }

    struct WideState: Codable, Sendable, Equatable {
        var messages: [String] = []
        var turn = 0
        var mood: String?
    }
    struct NarrowState: Codable, Sendable {
        var turn = 0
    }

    /// A type without some of the stored properties (an older deploy during a rolling update,
    /// a tool that touches one field) saves without removing them: what it does not know stays
    /// as stored, and the wider type reads everything back.
    @Test(arguments: [false, true])
    func aSaveThroughANarrowerTypeKeepsWhatItDoesNotKnow(_ sealed: Bool) async throws {
        let checkpointer = InMemoryCheckpointer()
        let sealing: Sealing? = sealed ? .wholeState(TestSealer()) : nil
        let wide = try checkpointer.thread("narrow", as: WideState.self, sealing: sealing)
        try await wide.save(WideState(messages: ["a", "b"], turn: 1, mood: "calm"))
        let narrow = try checkpointer.thread("narrow", as: NarrowState.self, sealing: sealing)
        for _ in 0..<2 {  // twice: the second save follows a save, not a read
            var state = try #require(try await narrow.latest())
            state.turn += 1
            try await narrow.save(state)
        }
        let back = try await checkpointer.thread("narrow", as: WideState.self, sealing: sealing).latest()
        #expect(back == WideState(messages: ["a", "b"], turn: 3, mood: "calm"))
    }

    final class Note: Codable, @unchecked Sendable {
        var text: String
        init(_ text: String) { self.text = text }
    }
    struct NoteHolder: Codable, Sendable { var note: Note }
    struct ClassState: Codable, @unchecked Sendable {
        var notes: [Note] = []
        var holders: [NoteHolder] = []
        var pinned = Note("pinned")
    }

    /// A read reuses what the façade decoded before only for plain values: a decoded class
    /// instance that the caller changed in place must not show up in the next read, which
    /// returns what is stored.
    @Test func aReadDoesNotReuseClassInstancesTheCallerMayHaveChanged() async throws {
        let thread = try InMemoryCheckpointer().thread("classes", as: ClassState.self)
        var state = ClassState()
        state.notes = [Note("a"), Note("b")]
        state.holders = [NoteHolder(note: Note("h"))]
        try await thread.save(state)
        let first = try #require(try await thread.latest())
        first.notes[0].text = "changed in place, not saved"
        first.holders[0].note.text = "changed in place, not saved"
        first.pinned.text = "changed in place, not saved"
        let second = try #require(try await thread.latest())
        #expect(second.notes.map(\.text) == ["a", "b"])
        #expect(second.holders.map(\.note.text) == ["h"])
        #expect(second.pinned.text == "pinned")
    }

    /// A cancelled task's calls through the façade fail with `cancelled`, whatever it read before.
    @Test func aCancelledTaskGetsCancelledFromTheFacade() async throws {
        let checkpointer = InMemoryCheckpointer()
        let thread = try checkpointer.thread("cancelled", as: Counter.self)
        try await thread.save(Counter(turn: 1))
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            var codes: [CheckpointError.Code?] = []
            for call in 0..<3 {
                do {
                    switch call {
                    case 0: try await thread.save(Counter(turn: 99))
                    case 1: _ = try await thread.update(startingWith: Counter()) { $0.turn = 99 }
                    default: _ = try await thread.latest()
                    }
                    codes.append(nil)
                } catch {
                    codes.append((error as? CheckpointError)?.code)
                }
            }
            return codes
        }
        #expect(await task.value == [.cancelled, .cancelled, .cancelled])
        #expect(try await thread.latest()?.turn == 1, "nothing was written")
    }

    /// An update that loses every race says so.
    @Test func anUpdateThatKeepsLosingSaysHowOften() async throws {
        let checkpointer = InMemoryCheckpointer()
        let thread = try checkpointer.thread("losing", as: Counter.self)
        let rival = try checkpointer.thread("losing", as: Counter.self)
        try await thread.save(Counter())
        let error = try await requireError(.conflict) {
            try await thread.update(startingWith: Counter(), maxAttempts: 3) { state in
                // Another writer saves between each read and save of this update.
                try await rival.update(startingWith: Counter()) { $0.turn += 10 }
                state.turn += 1
            }
        }
        #expect(error.message.contains("3 attempts"), "\(error.message)")
        #expect(try await thread.latest()?.turn == 30, "only the rival's updates landed")
    }
}

/// A sealer for façade tests that need sealed bytes but no cryptography: a format byte, the
/// associated data's length and bytes, then the plaintext; opening checks the place.
struct TestSealer: ChannelSealer {
    func seal(_ plaintext: Data, thread: ThreadID, associatedData: Data) throws -> Data {
        var sealed = Data([0x01])
        withUnsafeBytes(of: UInt32(associatedData.count).littleEndian) { sealed.append(contentsOf: $0) }
        return sealed + associatedData + plaintext
    }

    func open(_ sealed: Data, thread: ThreadID, associatedData: Data) throws -> Data {
        let bytes = [UInt8](sealed)
        guard bytes.count >= 5, bytes[0] == 0x01 else { throw CheckpointError(.decryptionFailed, "not sealed") }
        let length = Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16 | Int(bytes[4]) << 24
        guard bytes.count >= 5 + length, Data(bytes[5..<(5 + length)]) == associatedData else {
            throw CheckpointError(.decryptionFailed, "sealed for another place")
        }
        return Data(bytes[(5 + length)...])
    }
}

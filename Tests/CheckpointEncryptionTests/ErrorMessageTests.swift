import CheckpointEncryption
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// Errors that say which field failed and what to do, never a bare EncodingError.
@Suite("Encoding and sealing errors say what to do")
struct ErrorMessageTests {
    struct Scored: Codable, Sendable {
        struct Item: Codable, Sendable { var score: Double }
        var items: [Item] = []
        var total = 0.0
    }

    struct Secretive: Codable, Sendable {
        var title = "plain"
        @Sealed var token = "secret"
    }

    struct Plain: Codable, Sendable {
        var messages: [TestMessage] = []
        var turn = 0
    }

    @Test func aNaNNamesTheChannelAndThePath() async throws {
        let thread = try InMemoryCheckpointer().thread("t", as: Scored.self)
        let error = try await requireError(.encodingFailed) {
            try await thread.save(Scored(items: [.init(score: 1), .init(score: .nan)]))
        }
        #expect(error.message.contains("channel 'items'"), "\(error.message)")
        #expect(error.message.contains("#1"), "\(error.message)")
        #expect(error.message.contains("nan"), "\(error.message)")
        let value = try await requireError(.encodingFailed) { try await thread.save(Scored(total: .infinity)) }
        #expect(value.message.contains("channel 'total'"), "\(value.message)")
    }

    @Test func aSealedFieldWithoutSealingSaysToOpenTheThreadWithSealing() async throws {
        let checkpointer = InMemoryCheckpointer()
        let error = try await requireError(.encodingFailed) {
            try await checkpointer.thread("t", as: Secretive.self).save(Secretive())
        }
        #expect(error.message.contains("sealing:"), "\(error.message)")
        #expect(error.message.contains("channel 'token'"), "\(error.message)")
        #expect(!error.message.contains("secret\""), "the value is never shown")
        // Saved with sealing, read without: the error says the thread has sealed fields.
        let sealing = Sealing.markedFields(SodiumSealer(keys: try keyProvider(["k1"])))
        try await checkpointer.thread("t", as: Secretive.self, sealing: sealing).save(Secretive())
        let read = try await requireError(.decodingFailed) { try await checkpointer.thread("t", as: Secretive.self).latest() }
        #expect(read.message.contains("sealing:"), "\(read.message)")
    }

    @Test func aWholeSealedThreadReadWithoutSealingSaysItIsSealed() async throws {
        let checkpointer = InMemoryCheckpointer()
        let sealing = Sealing.wholeState(SodiumSealer(keys: try keyProvider(["k1"])))
        try await checkpointer.thread("t", as: Plain.self, sealing: sealing).save(
            Plain(messages: [sampleMessage(0)], turn: 1))
        let error = try await requireError(.decodingFailed) { try await checkpointer.thread("t", as: Plain.self).latest() }
        #expect(error.message.contains("sealed"), "\(error.message)")
        #expect(error.message.contains("sealing:"), "\(error.message)")
    }
}

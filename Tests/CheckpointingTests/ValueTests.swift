import Checkpointing
import Foundation
import Testing

@Suite("Values")
struct ValueTests {
    @Test func checkpointIDsIncreaseAndRoundTrip() throws {
        var previous = CheckpointID.make()
        for _ in 0..<10_000 {
            let next = CheckpointID.make()
            #expect(previous < next)
            #expect(previous.description < next.description)
            previous = next
        }
        let id = CheckpointID.make()
        #expect(try CheckpointID(id.description) == id)
        #expect(try CheckpointID(id.description.uppercased()) == id)
        #expect(try CheckpointID(bytes: id.bytes) == id)
        #expect(id.description.count == 36)
        #expect(abs(id.timestamp.timeIntervalSinceNow) < 60)
        // Version 7 and the RFC variant.
        #expect(id.bytes[6] >> 4 == 7)
        #expect(id.bytes[8] >> 6 == 0b10)
    }

    @Test(arguments: ["", "xyz", "0000000000000000000000000000000g-000", "01234567-89ab-cdef-0123-456789abcdef0"])
    func malformedCheckpointIDsAreRejected(_ text: String) {
        #expect(throws: CheckpointError.self) { try CheckpointID(text) }
    }

    /// Found by scripts/fuzz.sh (metadata): JSONEncoder writes an integral double beyond 2^53
    /// in exponent form (2^60 as 1.152921504606847e+18), which read back as another integer.
    @Test(arguments: [1_152_921_504_606_846_976.0, -9.223372036858776e17, 9.007199254740994e15, 5.0, -0.0, 1e20, 2.5])
    func metadataNumbersReadBackAsTheSameNumber(_ number: Double) throws {
        let metadata: Metadata = ["n": .double(number)]
        let read = try Metadata.decodeJSON(try metadata.jsonData())
        let value = try #require(read["n"])
        #expect(value.matchesFilter(.double(number)) && MetadataValue.double(number).matchesFilter(value), "\(value)")
        #expect(try read.jsonData() == metadata.jsonData(), "the JSON is a fixed point")
    }

    @Test func threadIDValidation() throws {
        #expect(try ThreadID("user-42:support").tenant == "user-42")
        #expect(try ThreadID("plain").tenant == nil)
        #expect(try ThreadID(String(repeating: "a", count: 255)).rawValue.count == 255)
        for bad in ["", String(repeating: "a", count: 256), "nul\u{0}"] {
            let error = #expect(throws: CheckpointError.self) { try ThreadID(bad) }
            #expect(error?.code == .invalidThreadID)
        }
    }

    @Test func threadIDsCompareHashAndOrderByBytes() throws {
        let composed = try ThreadID("caf\u{E9}")  // C3 A9
        let decomposed = try ThreadID("cafe\u{301}")  // 65 CC 81
        #expect(composed.rawValue == decomposed.rawValue, "Swift's String calls them equal")
        #expect(composed != decomposed)
        #expect(Set([composed, decomposed]).count == 2)
        #expect(decomposed < composed && !(composed < decomposed), "as memcmp: 0x65 sorts before 0xC3")
        #expect(try ThreadID("ab") < ThreadID("abc") && ThreadID("abc") < ThreadID("b"))
        #expect(try ThreadID("cafe\u{301}") == decomposed)
        // The tenant ends at the first ':' byte, even when a combining mark follows it.
        #expect(try ThreadID("acme:\u{301}x").tenant == "acme")
        #expect(try ThreadID("cafe\u{301}:x").tenant.map { Array($0.utf8) } == Array("cafe\u{301}".utf8))
    }

    @Test func errorDescriptionsCarryCodeAndNativeDetail() {
        let error = CheckpointError(.conflict, "moved", nativeCode: "5")
        #expect(error.description == "CheckpointError.conflict: moved [5]")
        #expect(!error.isRetryable, "a conflict is not retryable as is")
        #expect(CheckpointError(.connectionFailed, "down").isRetryable, "an unreachable store is retryable")
        #expect(CheckpointError(.busy, "locked").isRetryable, "a busy store is retryable")
        #expect(!CheckpointError(.corruptData, "damaged").isRetryable, "damaged bytes are not")
        #expect("\(CheckpointError.Code.notFound)" == "notFound")
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test func memoryURLOpensTheInMemoryBackend() async throws {
        let checkpointer = try await CheckpointerConfiguration(url: "memory:").makeCheckpointer()
        #expect(checkpointer is InMemoryCheckpointer)
    }

    @Test func environmentPicksTheURL() throws {
        let configuration = try CheckpointerConfiguration.fromEnvironment(
            environment: ["CHECKPOINTER_URL": "sqlite:///tmp/x.db?synchronous=full"])
        #expect(configuration.url.scheme == "sqlite")
        #expect(configuration.url.path == "/tmp/x.db")
        #expect(configuration.url.parameters["synchronous"] == "full")
        let fallback = try CheckpointerConfiguration.fromEnvironment(default: "memory:", environment: [:])
        #expect(fallback.url.scheme == "memory")
        let error = #expect(throws: CheckpointError.self) {
            try CheckpointerConfiguration.fromEnvironment(environment: [:])
        }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test(arguments: ["", "no scheme here", "://missing", "sqlite://[bad"])
    func malformedURLsAreRejected(_ text: String) {
        let error = #expect(throws: CheckpointError.self) { try CheckpointerConfiguration(url: text) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func unknownSchemesAreRejectedWithTheKnownOnes() async throws {
        let configuration = try CheckpointerConfiguration(url: "mongodb://localhost/db")
        let error = await #expect(throws: CheckpointError.self) { try await configuration.makeCheckpointer() }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("memory") == true)
    }

    @Test func passwordsNeverPrint() throws {
        let url = try CheckpointerURL("postgres://agent:s3cret@db.internal:5432/app")
        #expect(!url.description.contains("s3cret"))
        #expect(url.password == "s3cret")
        let error = #expect(throws: CheckpointError.self) { try CheckpointerURL("postgres://agent:s3cret@[oops") }
        #expect(error?.description.contains("s3cret") == false)
    }
}

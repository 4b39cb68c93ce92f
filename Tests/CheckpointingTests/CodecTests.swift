import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

@Suite("Channel codec")
struct CodecTests {
    @Test(arguments: [
        "", "plain", "quote \" and backslash \\ and slash /", "tab\tnewline\nreturn\r nul\u{0} bell\u{7}",
        "unicode: café, 漢字, emoji 🧑‍🚀, combining e\u{301}", String(repeating: "long ", count: 2000),
    ])
    func fastStringJSONRoundTrips(_ text: String) throws {
        let data = try #require(fastJSON(text))
        #expect(try JSONDecoder().decode(String.self, from: data) == text)
    }

    @Test(arguments: [0, 1, -1, Int.max, Int.min, 42])
    func fastIntegerJSONRoundTrips(_ number: Int) throws {
        let data = try #require(fastJSON(number))
        #expect(try JSONDecoder().decode(Int.self, from: data) == number)
    }

    @Test func fastJSONLeavesOtherTypesToJSONEncoder() throws {
        #expect(fastJSON(1.5) == nil)
        #expect(fastJSON(["a"]) == nil)
        #expect(try JSONDecoder().decode(Bool.self, from: fastJSON(true) ?? Data()) == true)
    }

    @Test func arraysOfEquatableElementsBecomeListChannels() throws {
        let state = TestAgentState(messages: [sampleMessage(1)], document: "d", turn: 3)
        let channels = try ChannelCapture().capture(state)
        guard case .list(let list)? = channels["messages"] else {
            Issue.record("messages is not a list channel")
            return
        }
        #expect(list.channelElementCount == 1)
        #expect(channels["turn"].map { if case .value(let data) = $0 { data == Data("3".utf8) } else { false } } == true)
        #expect(channels["note"] == nil, "an absent optional is no channel")
    }

    @Test func aCopiedAndAppendedArraySharesItsPrefixByBytes() throws {
        let encoder = ChannelCapture().encoder
        let form: (any Encodable) throws -> Data = { try encoder.encode($0) }
        let old = (0..<50).map(sampleMessage)
        let encoded = try old.map { try encoder.encode($0) }
        var new = old
        new.append(sampleMessage(50))
        #expect(try new.channelPrefixLength(of: old, encoded: encoded, comparisonForm: form) == 50)
        var edited = new
        edited[3].text = "changed"
        #expect(try edited.channelPrefixLength(of: old, encoded: encoded, comparisonForm: form) == nil)
        // Equal elements that do not share storage are found equal by their bytes.
        let rebuilt = (0..<50).map(sampleMessage) + [sampleMessage(50)]
        #expect(try rebuilt.channelPrefixLength(of: old, encoded: encoded, comparisonForm: form) == 50)
        #expect(try rebuilt.channelPrefixLength(of: nil, encoded: encoded, comparisonForm: form) == 50)
        #expect(try old.channelPrefixLength(of: new, encoded: encoded + encoded, comparisonForm: form) == nil)
    }

    final class Box: Codable, @unchecked Sendable {
        var text: String
        init(_ text: String) { self.text = text }
    }
    struct Holder: Codable { var box: Box }

    @Test func elementsThatHoldClassInstancesAreComparedByBytes() throws {
        let encoder = ChannelCapture().encoder
        let form: (any Encodable) throws -> Data = { try encoder.encode($0) }
        let boxes = [Box("a"), Box("b")]
        let encodedBoxes = try boxes.map { try encoder.encode($0) }
        boxes[1].text = "changed in place"
        #expect(try boxes.channelPrefixLength(of: boxes, encoded: encodedBoxes, comparisonForm: form) == nil)
        let holders = [Holder(box: Box("a")), Holder(box: Box("b"))]
        let encodedHolders = try holders.map { try encoder.encode($0) }
        holders[0].box.text = "changed in place"
        #expect(try holders.channelPrefixLength(of: holders, encoded: encodedHolders, comparisonForm: form) == nil)
    }
}

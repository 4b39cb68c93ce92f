import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A record with every shape the fast encoder covers.
struct Record: Codable, Equatable, Sendable {
    struct Part: Codable, Equatable, Sendable {
        var name: String
        var weight: Double?
    }

    var text: String
    var count: Int
    var small: Int8
    var unsigned: UInt16
    var big: UInt64
    var ratio: Double
    var fraction: Float
    var flag: Bool
    var optional: String?
    var missing: Int?
    var tags: [String]
    var parts: [Part]
    var nested: [[Int]]
    var byName: [String: Int]
    var byNumber: [Int: String]
    var when: Date
    var blob: Data
}

enum Shape: Codable, Equatable, Sendable {
    case circle(radius: Double)
    case square(side: Double)
}

@Suite("Fast JSON encoder")
struct FastJSONEncoderTests {
    static let record = Record(
        text: "quote \" backslash \\ newline \n nul \u{0} unicode café 🧑‍🚀", count: -42, small: -8, unsigned: 65535,
        big: UInt64.max, ratio: 0.1, fraction: 1.5, flag: true, optional: "here", missing: nil, tags: ["a", "", "c"],
        parts: [.init(name: "x", weight: 2.5), .init(name: "y", weight: nil)], nested: [[1, 2], [], [3]],
        byName: ["one": 1, "two": 2], byNumber: [1: "one", 2: "two"], when: Date(timeIntervalSince1970: 1_800_000_000.25),
        blob: Data([0, 1, 2, 255]))

    @Test func recordsRoundTripThroughJSONDecoder() throws {
        let data = try #require(FastJSONEncoder().encode(Self.record))
        #expect(try JSONDecoder().decode(Record.self, from: data) == Self.record)
        #expect(try JSONSerialization.jsonObject(with: data) is [String: Any], "valid JSON")
    }

    /// Strings are scanned for bytes to escape eight at a time: a control character, a quote or
    /// a backslash at any position of strings of any length (around the word boundaries) must
    /// still be escaped, and the JSON decode back to the same string.
    @Test func aByteToEscapeIsFoundAtEveryPosition() throws {
        let specials: [Character] = ["\u{0}", "\u{1}", "\n", "\t", "\u{1F}", "\"", "\\"]
        let fillers: [Character] = ["a", " ", "~", "!", "#", "[", "]", "\u{7F}", "é", "🧑‍🚀"]
        for length in 0..<26 {
            for filler in fillers {
                let plain = String(repeating: filler, count: length)
                let data = try #require(FastJSONEncoder().encode(plain))
                #expect(try JSONDecoder().decode(String.self, from: data) == plain)
                for position in 0..<length {
                    for special in specials {
                        var characters = Array(plain)
                        characters[position] = special
                        let text = String(characters)
                        let data = try #require(FastJSONEncoder().encode(text))
                        #expect(try JSONDecoder().decode(String.self, from: data) == text, "\(length) \(position)")
                    }
                }
            }
        }
    }

    @Test func messagesRoundTrip() throws {
        for index in 0..<50 {
            let message = sampleMessage(index)
            let data = try #require(FastJSONEncoder().encode(message))
            #expect(try JSONDecoder().decode(TestMessage.self, from: data) == message)
        }
        let list = (0..<5).map(sampleMessage)
        let data = try #require(FastJSONEncoder().encode(list))
        #expect(try JSONDecoder().decode([TestMessage].self, from: data) == list)
    }

    @Test func topLevelScalarsRoundTrip() throws {
        #expect(try JSONDecoder().decode(String.self, from: #require(FastJSONEncoder().encode("x\"y"))) == "x\"y")
        #expect(try JSONDecoder().decode(Int.self, from: #require(FastJSONEncoder().encode(7))) == 7)
        #expect(try JSONDecoder().decode(Double?.self, from: #require(FastJSONEncoder().encode(Double?.none))) == nil)
    }

    @Test func whatItDoesNotCoverIsLeftToJSONEncoder() {
        // Enums with associated values use nested containers; URL, Decimal and NaN are special.
        #expect(FastJSONEncoder().encode(Shape.circle(radius: 1)) == nil)
        #expect(FastJSONEncoder().encode(URL(string: "https://example.com")) == nil)
        #expect(FastJSONEncoder().encode(Decimal(string: "1.5")) == nil)
        #expect(FastJSONEncoder().encode([Double.nan]) == nil)
        #expect(FastJSONEncoder().encode(Double.infinity) == nil)
    }

    @Test func listChannelsOfUncoveredElementsStillRoundTrip() async throws {
        struct Drawing: Codable, Sendable, Equatable {
            var shapes: [Shape] = []
            var links: [URL] = []
        }
        let checkpointer = InMemoryCheckpointer()
        let thread = try checkpointer.thread("drawing", as: Drawing.self)
        var drawing = Drawing(shapes: [.circle(radius: 1)], links: [URL(string: "https://a.example")!])
        try await thread.save(drawing)
        drawing.shapes.append(.square(side: 2))
        drawing.links.append(URL(string: "https://b.example/x?y=1")!)
        try await thread.save(drawing)
        #expect(try await checkpointer.thread("drawing", as: Drawing.self).latest() == drawing)
    }
}

@_spi(Benchmarks) import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// The record of the encoder's tests without the `Float` (which the fast decoder leaves to
/// `JSONDecoder`), plus an enum with associated values and a raw-value enum.
struct DecodedRecord: Codable, Equatable, Sendable {
    enum Mood: String, Codable, Sendable { case calm, busy }

    var text: String
    var count: Int
    var small: Int8
    var unsigned: UInt16
    var big: UInt64
    var minimum: Int64
    var ratio: Double
    var flag: Bool
    var optional: String?
    var missing: Int?
    var tags: [String]
    var maybes: [Int?]
    var parts: [Record.Part]
    var nested: [[Int]]
    var byName: [String: Int]
    var byNumber: [Int: String]
    var when: Date
    var blob: Data
    var shapes: [Shape]
    var mood: Mood
}

/// A value that remembers the coding path it was decoded at.
struct PathProbe: Decodable, Equatable {
    var path: [String]
    var inner: [Inner]

    struct Inner: Decodable, Equatable {
        var path: [String]
        init(from decoder: any Decoder) throws {
            path = decoder.codingPath.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue }
            _ = try decoder.container(keyedBy: AnyKey.self)
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    enum CodingKeys: String, CodingKey { case inner }

    init(from decoder: any Decoder) throws {
        path = decoder.codingPath.map(\.stringValue)
        inner = try decoder.container(keyedBy: CodingKeys.self).decode([Inner].self, forKey: .inner)
    }
}

/// A type that probes with `try?`: where the fast decoder gives up inside it, the type would
/// go on with another branch than under `JSONDecoder`.
enum FloatOrOther: Decodable, Equatable {
    case float(Float), other

    init(from decoder: any Decoder) throws {
        if let value = try? decoder.singleValueContainer().decode(Float.self) { self = .float(value) } else { self = .other }
    }
}

@Suite("Fast JSON decoder")
struct FastJSONDecoderTests {
    static let record = DecodedRecord(
        text: "quote \" backslash \\ slash / newline \n tab \t nul \u{0} unicode café 🧑‍🚀 \u{FFFF}", count: -42,
        small: -128, unsigned: 65535, big: UInt64.max, minimum: Int64.min, ratio: 0.1, flag: true, optional: "here",
        missing: nil, tags: ["a", "", "c"], maybes: [1, nil, 3], parts: [.init(name: "x", weight: 2.5), .init(name: "y", weight: nil)],
        nested: [[1, 2], [], [3]], byName: ["one": 1, "two": 2], byNumber: [1: "one", 2: "two"],
        when: Date(timeIntervalSince1970: 1_800_000_000.25), blob: Data([0, 1, 2, 255]),
        shapes: [.circle(radius: 1.5), .square(side: -0.0)], mood: .busy)

    /// What the stored bytes of such values look like: `JSONEncoder`'s output (sorted, pretty
    /// or not) and the fast encoder's.
    static func encodings<T: Encodable>(_ value: T) throws -> [Data] {
        let sorted = JSONEncoder()
        sorted.outputFormatting = [.sortedKeys]
        let pretty = JSONEncoder()
        pretty.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        return [try sorted.encode(value), try pretty.encode(value)] + (FastJSONEncoder().encode(value).map { [$0] } ?? [])
    }

    @Test func theCommonShapesDecodeToWhatJSONDecoderGives() throws {
        for data in try Self.encodings(Self.record) {
            let fast = try #require(FastJSONDecoder().decode(DecodedRecord.self, from: data), "covered")
            #expect(fast == (try JSONDecoder().decode(DecodedRecord.self, from: data)))
            #expect(fast == Self.record)
        }
        for index in 0..<50 {
            for data in try Self.encodings(sampleMessage(index)) {
                #expect(FastJSONDecoder().decode(TestMessage.self, from: data) == sampleMessage(index))
            }
        }
        #expect(FastJSONDecoder().decode(Int.self, from: Data("  -17 ".utf8)) == -17)
        #expect(FastJSONDecoder().decode(Double.self, from: Data("1e-7".utf8)) == 1e-7)
        #expect(FastJSONDecoder().decode(String.self, from: Data(#""\ud83e\uddd1 \u00e9\/""#.utf8)) == "🧑 é/")
        #expect(FastJSONDecoder().decode(Int?.self, from: Data("null".utf8)) == .some(nil))
    }

    @Test func theCodingPathIsJSONDecodersToo() throws {
        let data = Data(#"{"inner": [{"a": 1}, {}]}"#.utf8)
        let fast = try #require(FastJSONDecoder().decode(PathProbe.self, from: data))
        #expect(fast == (try JSONDecoder().decode(PathProbe.self, from: data)))
        #expect(fast.inner.map(\.path) == [["inner", "#0"], ["inner", "#1"]])
    }

    /// What it does not cover, or where `JSONDecoder` fails, it leaves to `JSONDecoder`.
    @Test func whatItCannotTellItLeavesToJSONDecoder() throws {
        let left: [(String, any Decodable.Type)] = [
            ("1.0", Int.self), ("1e2", Int.self), ("-1", UInt.self), ("300", UInt8.self), ("18446744073709551616", UInt64.self),
            ("1.5", Float.self), (#""https://example.com""#, URL.self), ("1.5", Decimal.self), ("1e400", Double.self),
            (#"{"a": 1, "a": 2}"#, [String: Int].self), (#"{"\u0061": 1}"#, [String: Int].self), ("01", Int.self),
            (#""\ud800""#, String.self), (#""a\qb""#, String.self), ("\"a\u{1}b\"", String.self), ("[1,]", [Int].self),
            ("{\"role\": \"a\"}", TestMessage.self), ("[1] x", [Int].self), ("", Int.self), ("tru", Bool.self),
            ("1", Bool.self), (#""x""#, Int.self), ("null", Int.self), (#""not base64!""#, Data.self),
            // Zeros with an exponent, some of which JSONDecoder rejects (found by the mutation test).
            ("0e1", Double.self), ("-0.0e1", Double.self), ("0E1", Double.self), ("0e10", Double.self),
        ]
        for (text, type) in left {
            #expect(FastJSONDecoder().decode(type, from: Data(text.utf8)) == nil, "\(text) as \(type)")
        }
        #expect(FastJSONDecoder().decode(String.self, from: Data([0x22, 0xFF, 0x22])) == nil, "invalid UTF-8")
        #expect(try JSONDecoder().decode(FloatOrOther.self, from: Data("1.5".utf8)) == .float(1.5))
        #expect(FastJSONDecoder().decode(FloatOrOther.self, from: Data("1.5".utf8)) == nil, "gave up inside a try?")
    }

    /// The property that makes it safe: on any input, it gives nothing or what `JSONDecoder` gives.
    @Test func onAnyInputItAgreesWithJSONDecoderOrSaysNothing() throws {
        var random = SplitMix64(seed: 7)
        let seeds = try Self.encodings(Self.record) + Self.encodings(sampleMessage(3)) + [Data(#"{"a": [1, null, -2.5e3], "b": "\u00e9"}"#.utf8)]
        var agreed = 0
        for _ in 0..<4000 {
            var bytes = Array(seeds.randomElement(using: &random)!)
            for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[position] = Array(#"{}[]",:0-1e."\nu"#.utf8).randomElement(using: &random)!
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8.random(in: 0...127, using: &random), at: position)
                }
            }
            let data = Data(bytes)
            try check(DecodedRecord.self, data, &agreed)
            try check(TestMessage.self, data, &agreed)
            try check([String: JSONValue].self, data, &agreed)
        }
        #expect(agreed > 100, "some mutations still decode, so the agreement was tested: \(agreed)")
    }

    private func check<T: Decodable & Equatable>(_ type: T.Type, _ data: Data, _ agreed: inout Int) throws {
        guard let fast = FastJSONDecoder().decode(T.self, from: data) else { return }
        let reference = try? JSONDecoder().decode(T.self, from: data)
        #expect(reference == fast, "\(String(decoding: data, as: UTF8.self))")
        agreed += 1
    }
}

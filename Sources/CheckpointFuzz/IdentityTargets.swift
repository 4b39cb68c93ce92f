import Checkpointing
import Foundation

// Targets for ids read from bytes and text: checkpoint ids (16 bytes in every store, text in
// JSON), UUIDs (a pause's id), thread ids and namespaces.

extension FuzzTarget {
    static let ids = FuzzTarget(
        "ids", "CheckpointID(bytes:) (contiguous and not), CheckpointID(text), its Codable form, UUID(bytes:)",
        dictionary: ["-", "0", "f", "F", "g", "\""],
        seeds: {
            [
                Data(Fixed.owner.bytes), Data(repeating: 0xFF, count: 16), Data(repeating: 0, count: 15),
                Data(repeating: 1, count: 17), bytes(Fixed.owner.description), bytes(Fixed.owner.description.uppercased()),
                bytes("0193-8a00-0000-7123-8000-0000-0000-0001"), bytes("E621E1F8-C36C-495A-93FC-0C247A3E6E5F"),
            ]
        }
    ) { input throws(Finding) in
        var print = Fingerprint()
        var accepted = false
        // From 16 bytes, by the contiguous path and by the element-by-element path.
        let contiguous = try attempt("CheckpointID(bytes:)", [.corruptData]) { try CheckpointID(bytes: input) }
        let elementwise = try attempt("CheckpointID(bytes:) of a lazy collection", [.corruptData]) {
            try CheckpointID(bytes: input.lazy.map { $0 })
        }
        switch (contiguous, elementwise) {
        case (.success(let id), .success(let other)):
            try check(id == other, "CheckpointID(bytes:) reads a contiguous and a lazy collection differently")
            try check(id.bytes == Array(input), "a checkpoint id's bytes are not the bytes it was read from")
            try check((try? CheckpointID(id.description)) == id, "a checkpoint id's text does not read back")
            _ = id.timestamp
            let next = CheckpointID.make(after: id, now: Fixed.date)
            _ = next.description
            print.add(id)
            accepted = true
        case (.failure, .failure):
            try check(input.count != 16, "CheckpointID(bytes:) refused 16 bytes")
            print.add("not 16 bytes")
        default:
            throw Finding("CheckpointID(bytes:) accepts a contiguous collection and a lazy one differently")
        }
        switch try attempt("UUID(bytes:)", [.corruptData], { try UUID(bytes: input) }) {
        case .success(let uuid):
            try check(uuid.bytes == input, "a UUID's bytes are not the bytes it was read from")
            print.add(uuid.uuidString)
        case .failure(let error): print.add(error.code.description)
        }
        // From text, and from JSON (a cursor or a user's Codable state may hold ids).
        let string = text(input)
        switch try attempt("CheckpointID(text)", [.invalidArgument], { try CheckpointID(string) }) {
        case .success(let id):
            try check(id.description == string.lowercased(), "a checkpoint id's text form is not the text it was read from")
            print.add(id)
        case .failure(let error): print.add(error.code.description)
        }
        let json = try must("encoding a string as JSON") { try JSONEncoder().encode(string) }
        if let id = try? JSONDecoder().decode(CheckpointID.self, from: json) {
            try check(id.description == string.lowercased(), "a checkpoint id decoded from JSON is another id")
        }
        _ = try? JSONDecoder().decode(CheckpointID.self, from: input)
        return print.outcome(decoded: accepted)
    }

    static let threadID = FuzzTarget(
        "thread-id", "ThreadID(_:) and namespace validation over text read from bytes",
        dictionary: [":", "\u{0}", "é", "e\u{301}", "\u{FFFD}", "\u{10FFFF}"],
        seeds: {
            [
                bytes("user-42:support"), bytes(String(repeating: "a", count: 255)), bytes(String(repeating: "a", count: 256)),
                bytes("a\u{0}b"), bytes("café:ticket"), bytes("cafe\u{301}:ticket"), Data(), bytes(":"), bytes(":\u{301}x"), bytes("ab\u{600}:x"),
                Data([0xFF, 0xFE, 0x3A, 0x61]),
            ]
        }
    ) { input throws(Finding) in
        var print = Fingerprint()
        var accepted = false
        let string = text(input)
        switch try attempt("ThreadID(_:)", [.invalidThreadID], { try ThreadID(string) }) {
        case .success(let id):
            let count = id.rawValue.utf8.count
            try check((1...ThreadID.maximumByteCount).contains(count) && !id.rawValue.utf8.contains(0),
                "ThreadID accepted \(count) bytes or a NUL")
            let again = try must("ThreadID of a thread id's text") { try ThreadID(id.rawValue) }
            try check(again == id && again.hashValue == id.hashValue && !(again < id) && !(id < again),
                "a thread id is not equal to itself read again")
            // The tenant is exactly the bytes before the first ':' byte.
            let utf8 = Array(id.rawValue.utf8)
            let expected = utf8.firstIndex(of: UInt8(ascii: ":")).map { Array(utf8[..<$0]) }
            try check(id.tenant.map { Array($0.utf8) } == expected, "a tenant is not the bytes before the first ':'")
            print.add(id.rawValue)
            accepted = true
        case .failure(let error): print.add(error.code.description)
        }
        switch try attempt("NamespaceValidation.validate", [.invalidArgument], { try NamespaceValidation.validate(string) }) {
        case .success: print.add("namespace")
        case .failure(let error): print.add(error.code.description)
        }
        return print.outcome(decoded: accepted)
    }
}

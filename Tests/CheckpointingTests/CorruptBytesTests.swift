import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// Stored bytes come back from disks, caches and other processes: whatever they hold, reading
/// them throws a typed error or succeeds, and never crashes.
@Suite("Corrupt stored bytes")
struct CorruptBytesTests {
    /// A deterministic generator, so that a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state
        }
    }

    static func mutations(of data: Data, count: Int, seed: UInt64) -> [Data] {
        var generator = Generator(state: seed)
        var results: [Data] = [Data(), Data([0]), Data([1]), Data(repeating: 0xff, count: 64)]
        for _ in 0..<count {
            var bytes = [UInt8](data)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            case 1 where !bytes.isEmpty:
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
            case 2:
                bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
            default:
                bytes = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            results.append(Data(bytes))
        }
        return results
    }

    @Test func manifestsAndRowBlobs() throws {
        let owner = CheckpointID.make()
        let parent = CheckpointID.make()
        let write = CheckpointWrite(
            id: owner, thread: try ThreadID("t"), parentID: parent, step: 1,
            channels: [
                "small": .value(Data("1".utf8)), "big": .value(Data(repeating: 7, count: 200)),
                "list": .list([Data("a".utf8), Data("bc".utf8)]), "empty": .list([]),
            ])
        let resolved = try ResolvedWrite(write, parent: nil)
        let manifest = resolved.manifest.encoded(owner: owner)
        let segments = try #require(resolved.encodedSegments(parentID: parent))
        let payloads = try #require(resolved.encodedPayloads())
        #expect(try Manifest(decoding: manifest, owner: owner) == resolved.manifest)

        var outcomes = (decoded: 0, rejected: 0)
        for bytes in Self.mutations(of: manifest, count: 3000, seed: 1) {
            do {
                _ = try Manifest(decoding: bytes, owner: owner)
                outcomes.decoded += 1
            } catch {
                #expect(error.code == .corruptData)
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.rejected > 0)
        for bytes in Self.mutations(of: segments, count: 3000, seed: 2) {
            do {
                _ = try RowBlobs.segment(in: bytes, channel: "list", rowID: owner, parentID: parent)
                _ = try RowBlobs.links(in: bytes, parentID: parent)
                _ = try RowBlobs.keepingSegments(bytes, of: ["list"])
            } catch {
                #expect(error.code == .corruptData)
            }
        }
        for bytes in Self.mutations(of: payloads, count: 3000, seed: 3) {
            do {
                _ = try RowBlobs.payload(in: bytes, channel: "big")
                _ = try RowBlobs.keepingPayloads(bytes, of: ["big"])
            } catch {
                #expect(error.code == .corruptData)
            }
        }
        let framed = ListSegment(id: owner, previous: nil, elements: [Data("x".utf8), Data()]).encodedElements()
        for bytes in Self.mutations(of: framed, count: 3000, seed: 4) {
            do {
                _ = try ListSegment.decodeElements(bytes)
            } catch {
                #expect(error.code == .corruptData)
            }
        }
    }

    @Test func pauses() throws {
        let pause = try Pause(reason: "approve", prompt: Data("{\"q\":1}".utf8), expiresAt: Date().addingTimeInterval(60))
        let encoded = pause.encoded()
        #expect(try Pause(decoding: encoded) == pause)
        for bytes in Self.mutations(of: encoded, count: 3000, seed: 5) {
            do {
                _ = try Pause(decoding: bytes)
            } catch {
                #expect(error.code == .corruptData)
            }
        }
    }

    /// Found by scripts/fuzz.sh (manifest): a stored list count near `Int.max` (damaged bytes)
    /// trapped on overflow when the next save appended to the list.
    @Test(arguments: [Int.max, Int.max - 1])
    func appendingToAListWhoseStoredCountIsDamaged(_ count: Int) throws {
        let owner = CheckpointID.make()
        let damaged = Manifest(entries: ["list": .list(ListReference(tip: owner, count: count))]).encoded(owner: owner)
        let parent = try Manifest(decoding: damaged, owner: owner)
        let write = CheckpointWrite(
            thread: try ThreadID("t"), parentID: owner, step: 1, channels: ["list": .append([Data("a".utf8), Data("b".utf8)])])
        let error = #expect(throws: CheckpointError.self) { try ResolvedWrite(write, parent: parent) }
        #expect(error?.code == .corruptData)
        #expect(error?.message.contains("list") == true, "\(String(describing: error))")
    }

    @Test func listChainsThatLoopOrBreak() throws {
        let a = CheckpointID.make()
        let b = CheckpointID.make()
        // A chain whose segments point at each other must not loop forever.
        var chain = ListChain(channel: "c", reference: ListReference(tip: b, count: 5))
        _ = try chain.add(ListSegment(id: b, previous: a, elements: [Data()]))
        _ = try chain.add(ListSegment(id: a, previous: b, elements: [Data()]))
        #expect(throws: CheckpointError.self) { try chain.elements() }
        // More elements than the manifest says.
        var long = ListChain(channel: "c", reference: ListReference(tip: b, count: 1))
        #expect(throws: CheckpointError.self) {
            _ = try long.add(ListSegment(id: b, previous: nil, elements: [Data(), Data()]))
        }
    }
}

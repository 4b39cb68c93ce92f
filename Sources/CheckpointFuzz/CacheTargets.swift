import CheckpointRedisCache
import Checkpointing
import Foundation

// Targets for what the Redis cache reads back: whoever can write to Redis can hand it any bytes.

/// Checkpoints as the cache stores them, made by the library.
enum CachedSamples {
    static func checkpoints() throws -> [Checkpoint] {
        let pauseID = UUID(uuid: (9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6))
        let plain = Checkpoint(
            id: Fixed.owner, thread: Fixed.thread, namespace: Fixed.namespace, parentID: Fixed.parent, step: 2,
            createdAt: Fixed.date, metadata: ["turn": 2, "kind": "even", "weight": 2.5, "done": false, "none": nil],
            channels: [
                "messages": .list([bytes(#"{"role":"user","text":"hi"}"#), Data()]), "turn": .value(bytes("2")),
                "empty": .list([]), "café": .value(bytes("1")),
            ])
        var paused = plain
        paused.parentID = nil
        paused.metadata = [:]
        paused.pause = try Pause(
            id: pauseID, reason: "refund-approval", prompt: bytes(#"{"amount":42}"#), createdAt: Fixed.date,
            expiresAt: Fixed.date.addingTimeInterval(60))
        var answered = paused
        answered.answer = PauseAnswer(pauseID: pauseID, response: bytes(#"{"approved":true}"#), answeredAt: Fixed.date)
        return [plain, paused, answered]
    }
}

/// The canonical form of a checkpoint (its creation time apart, which only round-trips to
/// within a rounding: the codec stores seconds since 1970, `Date` keeps seconds since 2001).
private func fingerprint(_ checkpoint: Checkpoint) throws(Finding) -> Data {
    var normalized = checkpoint
    normalized.createdAt = Fixed.date
    return try must("encoding a decoded checkpoint") { try CheckpointCodec.encode(normalized) }
}

/// Checks that a decoded checkpoint encodes again, and that what it encodes to decodes to it.
private func roundTrip(_ checkpoint: Checkpoint, id: CheckpointID?) throws(Finding) -> Data {
    let encoded = try must("re-encoding a decoded checkpoint") { try CheckpointCodec.encode(checkpoint) }
    let again = try must("decoding a re-encoded checkpoint") {
        try CheckpointCodec.decode(encoded, thread: Fixed.thread, namespace: Fixed.namespace, id: id)
    }
    try check(again.id == checkpoint.id && again.parentID == checkpoint.parentID && again.step == checkpoint.step,
        "a re-encoded checkpoint has another id, parent or step")
    try check(sameTime(again.createdAt, checkpoint.createdAt), "a re-encoded checkpoint has another time")
    try check(again.channels == checkpoint.channels, "a re-encoded checkpoint has other channels")
    try check(again.metadata.count == checkpoint.metadata.count, "a re-encoded checkpoint has other metadata")
    try check(again.pause?.encoded() == checkpoint.pause?.encoded(), "a re-encoded checkpoint has another pause")
    try check(
        again.answer?.pauseID == checkpoint.answer?.pauseID && again.answer?.response == checkpoint.answer?.response,
        "a re-encoded checkpoint has another answer")
    let print = try fingerprint(again)
    try check(print == (try fingerprint(checkpoint)), "a checkpoint's encoding is not a fixed point")
    return print
}

/// The key of a cached head of the fixed thread (what the entry's check covers).
private let headKey = bytes("ckpt:h:\(Fixed.thread.rawValue.utf8.count):\(Fixed.thread.rawValue)\(Fixed.namespace)")

/// The two formats an instance may use: unkeyed, and keyed with an integrity key.
private let formats: [CacheEntryFormat] = {
    do {
        return [try CacheEntryFormat(integrityKey: nil), try CacheEntryFormat(integrityKey: Data(repeating: 7, count: 32))]
    } catch {
        fatalError("the cache entry format cannot start: \(error)")
    }
}()

extension FuzzTarget {
    static let checkpointCodec = FuzzTarget(
        "checkpoint-codec", "CheckpointCodec.decode, the body of a Redis cache entry",
        seeds: { try CachedSamples.checkpoints().map { checkpoint in try CheckpointCodec.encode(checkpoint) } }
    ) { input throws(Finding) in
        let decoded = try attempt("CheckpointCodec.decode", [.corruptData]) {
            try CheckpointCodec.decode(input, thread: Fixed.thread, namespace: Fixed.namespace, id: nil)
        }
        switch decoded {
        case .failure(let error): return rejected(error)
        case .success(let checkpoint):
            // With the id expected: the same checkpoint, or refused when it is another.
            let byID = try attempt("CheckpointCodec.decode by id", [.corruptData]) {
                try CheckpointCodec.decode(input, thread: Fixed.thread, namespace: Fixed.namespace, id: Fixed.owner)
            }
            switch byID {
            case .success(let other): try check(other.id == Fixed.owner && checkpoint.id == Fixed.owner, "the id check let another id through")
            case .failure: try check(checkpoint.id != Fixed.owner, "the id check refused the expected id")
            }
            decodeState(checkpoint.channels)
            return .decoded(try roundTrip(checkpoint, id: nil))
        }
    }

    /// The first byte (modulo 4) picks how the rest becomes an entry: 0, as it is; 1 and 2, as the body of
    /// an entry framed and checked by an instance without and with an integrity key (so that the
    /// mutations reach the decoder behind the check); 3, as such a body written to another run
    /// of the server.
    static let cacheEntry = FuzzTarget(
        "cache-entry", "the Redis cache's entry framing and check (CacheEntryFormat.open), then its body",
        seeds: {
            var seeds: [Data] = []
            for checkpoint in try CachedSamples.checkpoints() {
                let body = try CheckpointCodec.encode(checkpoint)
                let order = CacheEntryFormat.order(of: checkpoint)
                seeds.append(Data([0]) + formats[0].entry(key: headKey, order: order, runID: Fixed.runID, body: body))
                seeds.append(Data([0]) + formats[1].entry(key: headKey, order: order, runID: Fixed.runID, body: body))
                seeds.append(Data([1]) + order + body)
                seeds.append(Data([2]) + order + body)
                seeds.append(Data([3]) + order + body)
            }
            let tombstone = CacheEntryFormat.order(Fixed.owner, "0") + Data(repeating: 0, count: 16)
            seeds.append(Data([0]) + tombstone)
            return seeds
        }
    ) { input throws(Finding) in
        guard let first = input.first else { return .rejected("empty") }
        let mode = first % 4
        let rest = input.dropFirst()
        let value: Data
        let format = formats[mode == 2 ? 1 : 0]
        switch mode {
        case 1, 2, 3:
            let order = Data(rest.prefix(CacheEntryFormat.orderLength))
            let runID = mode == 3 ? Data(repeating: UInt8(ascii: "b"), count: 40) : Fixed.runID
            value = format.entry(key: headKey, order: order, runID: runID, body: Data(rest.dropFirst(order.count)))
        default:
            value = Data(rest)
        }
        var print = Fingerprint()
        var served = false
        for candidate in mode == 0 ? formats : [format] {
            do {
                let opened = try candidate.open(
                    value, key: headKey, thread: Fixed.thread, namespace: Fixed.namespace, id: nil, runID: Fixed.runID)
                guard let checkpoint = opened else {
                    try check(value.count >= CacheEntryFormat.orderLength + CacheEntryFormat.digestLength
                        && value[value.startIndex + CacheEntryFormat.orderLength - 1] == UInt8(ascii: "0"),
                        "an entry with content read as one without")
                    print.add("no content")
                    continue
                }
                try check(mode != 3, "an entry of another run of the server was served")
                try check(CacheEntryFormat.order(of: checkpoint) == value.prefix(CacheEntryFormat.orderLength),
                    "an entry's order does not match its checkpoint")
                // What the cache would write back for it opens to the same checkpoint.
                let body = try must("re-encoding a cached checkpoint") { try CheckpointCodec.encode(checkpoint) }
                let rewritten = candidate.entry(
                    key: headKey, order: CacheEntryFormat.order(of: checkpoint), runID: Fixed.runID, body: body)
                let reopened = try must("opening a rewritten entry") {
                    try candidate.open(
                        rewritten, key: headKey, thread: Fixed.thread, namespace: Fixed.namespace, id: nil,
                        runID: Fixed.runID)
                }
                try check(reopened?.id == checkpoint.id && reopened?.channels == checkpoint.channels,
                    "a rewritten entry opens to another checkpoint")
                print.add(try roundTrip(checkpoint, id: nil))
                served = true
            } catch let error as CheckpointError {
                try check(error.code == .corruptData, "opening an entry threw \(error.code): \(error)")
                print.add(error.code.description)
            } catch is CacheEntryOfAnotherRun {
                try check(mode == 3 || mode == 0, "an entry of this run was taken for another run's")
                print.add("another run")
            } catch let finding as Finding {
                throw finding
            } catch {
                throw Finding("opening an entry threw \(type(of: error)): \(error)")
            }
        }
        return print.outcome(decoded: served)
    }
}

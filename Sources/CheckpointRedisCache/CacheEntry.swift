import CCheckpointSodium
import Checkpointing
import Foundation

/// The bytes of one cache entry as Redis holds them:
/// order ‖ digest(key ‖ order ‖ run id ‖ body) ‖ run id ‖ body, where the body is a
/// ``CheckpointCodec`` blob and the run id is the Redis server's that the entry was written
/// to (see ``RedisConnection/runID``).
///
/// Whoever can write to Redis can hand any bytes to ``open(_:key:thread:namespace:id:runID:)``:
/// it returns a checkpoint only for an entry that passes its check, and throws a typed error
/// for anything else.
package struct CacheEntryFormat: Sendable {
    /// The length of an entry's order: 32 hex digits of the checkpoint id and a state digit.
    package static let orderLength = 33
    /// The length of an entry's digest.
    package static let digestLength = 16

    /// The 16-byte SipHash key of the entries' integrity check, when keyed.
    private let integrityKey: [UInt8]?

    /// Creates the format of entries checked with XXH64 and the length, or, with `secret`,
    /// with SipHash-2-4-128 keyed by a key derived from `secret`.
    ///
    /// - Throws: ``CheckpointError/Code/backendFailure`` when libsodium cannot start.
    package init(integrityKey secret: Data?) throws(CheckpointError) {
        guard sodium_init() >= 0 else { throw CheckpointError(.backendFailure, "libsodium failed to initialize") }
        guard let secret else {
            integrityKey = nil
            return
        }
        var derived = [UInt8](repeating: 0, count: Int(crypto_shorthash_siphashx24_KEYBYTES))
        let context = Array("checkpointing-cache-integrity".utf8)
        secret.withUnsafeBytes { secret in
            _ = crypto_generichash(
                &derived, derived.count, context, UInt64(context.count), secret.bindMemory(to: UInt8.self).baseAddress,
                secret.count)
        }
        integrityKey = derived
    }

    /// An entry's order: the checkpoint id in hex and a state digit. `0`: content unknown (a
    /// put whose parent this process did not hold, or a tombstone); `1`: content; `2`: content
    /// with its pause answered.
    package static func order(_ id: CheckpointID, _ state: Character) -> Data {
        var bytes = id.hexBytes
        bytes.append(state.asciiValue ?? UInt8(ascii: "0"))
        return Data(bytes)
    }

    /// The order of an entry that holds `checkpoint`.
    package static func order(of checkpoint: Checkpoint) -> Data {
        order(checkpoint.id, checkpoint.answer == nil ? "1" : "2")
    }

    /// The run id an entry carries (empty when it is too short to carry one).
    package static func runID(of value: Data) -> Data {
        let start = value.startIndex + orderLength + digestLength
        guard value.count >= orderLength + digestLength + RedisConnection.runIDLength else { return Data() }
        return value[start..<start + RedisConnection.runIDLength]
    }

    /// The entry's check over its key, order and content. With an integrity key: SipHash-2-4
    /// with a 128-bit output, keyed with a key derived from it (nobody without it can make an
    /// entry that passes). Without: XXH64 and the length (a checksum that catches any change or
    /// truncation not made with intent, at a tenth of SipHash's cost; without a secret no check
    /// could stop a deliberate forgery).
    private func digest(key: Data, order: Data, body: Data) -> Data {
        var message = Data(capacity: key.count + order.count + body.count)
        message.append(key)
        message.append(order)
        message.append(body)
        var out = [UInt8](repeating: 0, count: Self.digestLength)
        if let integrityKey {
            message.withUnsafeBytes { bytes in
                _ = crypto_shorthash_siphashx24(
                    &out, bytes.bindMemory(to: UInt8.self).baseAddress, UInt64(bytes.count), integrityKey)
            }
        } else {
            let hash = message.withUnsafeBytes { XXHash64.hash($0) }
            withUnsafeBytes(of: hash.littleEndian) { out.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: UInt64(message.count).littleEndian) { out.replaceSubrange(8..<16, with: $0) }
        }
        return Data(out)
    }

    /// The entry for `body` under `key`: order ‖ digest(key ‖ order ‖ run id ‖ body) ‖ run id ‖ body.
    package func entry(key: Data, order: Data, runID: Data, body: Data) -> Data {
        var value = order
        value.reserveCapacity(order.count + Self.digestLength + runID.count + body.count)
        var signed = runID
        signed.append(body)
        value.append(digest(key: key, order: order, body: signed))
        value.append(runID)
        value.append(body)
        return value
    }

    /// The checkpoint in an entry read from `key`, or `nil` for an entry without content.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when the entry is truncated, fails its
    ///   check, or holds another checkpoint than its key and order say;
    ///   ``CacheEntryOfAnotherRun`` when it was written to another run of the server than `runID`.
    package func open(
        _ value: Data, key: Data, thread: ThreadID, namespace: String, id: CheckpointID?, runID: Data
    ) throws -> Checkpoint? {
        guard value.count >= Self.orderLength + Self.digestLength else {
            throw CheckpointError(.corruptData, "a cached entry is truncated")
        }
        let start = value.startIndex
        let order = value[start..<start + Self.orderLength]
        // An entry without content (a tombstone, a head whose content this process did not
        // have) only holds its place in the order: it is a miss, whatever else it holds.
        guard order.last != UInt8(ascii: "0") else { return nil }
        let headerLength = Self.orderLength + Self.digestLength + RedisConnection.runIDLength
        guard value.count >= headerLength else {
            throw CheckpointError(.corruptData, "a cached entry is truncated")
        }
        let stored = value[start + Self.orderLength..<start + Self.orderLength + Self.digestLength]
        let signed = value[(start + Self.orderLength + Self.digestLength)...]
        let body = value[(start + headerLength)...]
        guard digest(key: key, order: Data(order), body: signed) == stored else {
            throw CheckpointError(.corruptData, "a cached entry fails its integrity check")
        }
        guard signed.prefix(RedisConnection.runIDLength).elementsEqual(runID) else { throw CacheEntryOfAnotherRun() }
        let checkpoint = try CheckpointCodec.decode(body, thread: thread, namespace: namespace, id: id)
        guard Self.order(of: checkpoint) == order else {
            throw CheckpointError(.corruptData, "a cached entry's order does not match its content")
        }
        return checkpoint
    }
}

/// An entry written to another run of the Redis server than the one answering now: the
/// server restarted (or another took its place) and may have come back without later writes.
package struct CacheEntryOfAnotherRun: Error {
    /// Creates the error.
    package init() {}
}

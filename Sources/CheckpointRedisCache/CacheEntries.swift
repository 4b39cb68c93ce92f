import CCheckpointSodium
import Checkpointing
import Foundation

extension RedisCachedCheckpointer {
    // MARK: Keys and entries

    func key(_ kind: String, _ thread: ThreadID, _ namespace: String, _ id: CheckpointID? = nil) -> Data {
        var key = [UInt8]()
        key.reserveCapacity(configuration.prefix.utf8.count + thread.rawValue.utf8.count + namespace.utf8.count + 48)
        key.append(contentsOf: configuration.prefix.utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: kind.utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: String(thread.rawValue.utf8.count).utf8)
        key.append(UInt8(ascii: ":"))
        key.append(contentsOf: thread.rawValue.utf8)
        key.append(contentsOf: namespace.utf8)
        if let id {
            key.append(UInt8(ascii: ":"))
            key.append(contentsOf: id.hexBytes)
        }
        return Data(key)
    }

    func threadIndexKey(_ thread: ThreadID) -> Data {
        var key = Data("\(configuration.prefix):t:\(thread.rawValue.utf8.count):".utf8)
        key.append(contentsOf: thread.rawValue.utf8)
        return key
    }

    /// An entry's order: the checkpoint id in hex and a state digit. `0`: content unknown (a
    /// put whose parent this process did not hold, or a tombstone); `1`: content; `2`: content
    /// with its pause answered.
    static func order(_ id: CheckpointID, _ state: Character) -> Data {
        var bytes = id.hexBytes
        bytes.append(state.asciiValue ?? UInt8(ascii: "0"))
        return Data(bytes)
    }
    private static let orderLength = 33

    /// The run id an entry carries (empty when it is too short to carry one).
    static func runID(of value: Data) -> Data {
        let start = value.startIndex + orderLength + digestLength
        guard value.count >= orderLength + digestLength + RedisConnection.runIDLength else { return Data() }
        return value[start..<start + RedisConnection.runIDLength]
    }
    private static let digestLength = 16

    /// The entry's check over its key, order and content. With ``Configuration/integrityKey``:
    /// SipHash-2-4 with a 128-bit output, keyed with a key derived from it (nobody without it
    /// can make an entry that passes). Without: XXH64 and the length (a checksum that catches
    /// any change or truncation not made with intent, at a tenth of SipHash's cost; without a
    /// secret no check could stop a deliberate forgery).
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

    /// order ‖ digest(key ‖ order ‖ run id ‖ body) ‖ run id ‖ body: the run id is the Redis
    /// server's that the entry was written to (see ``RedisConnection/runID``).
    func entry(key: Data, order: Data, runID: Data, body: Data) -> Data {
        var value = order
        value.reserveCapacity(order.count + Self.digestLength + runID.count + body.count)
        var signed = runID
        signed.append(body)
        value.append(digest(key: key, order: order, body: signed))
        value.append(runID)
        value.append(body)
        return value
    }

    /// A checkpoint's order and encoded content, to make its entry on a connection.
    func content(of checkpoint: Checkpoint) throws -> (order: Data, body: Data) {
        (Self.order(checkpoint.id, checkpoint.answer == nil ? "1" : "2"), try CheckpointCodec.encode(checkpoint))
    }

    /// An entry written to another run of the Redis server than the one answering now: the
    /// server restarted (or another took its place) and may have come back without later writes.
    struct EntryOfAnotherRun: Error {}

    /// The checkpoint in an entry, `nil` for an entry without content; throws when the
    /// entry is damaged.
    func open(
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
        guard signed.prefix(RedisConnection.runIDLength).elementsEqual(runID) else { throw EntryOfAnotherRun() }
        let checkpoint = try CheckpointCodec.decode(body, thread: thread, namespace: namespace, id: id)
        guard Self.order(checkpoint.id, checkpoint.answer == nil ? "1" : "2") == order else {
            throw CheckpointError(.corruptData, "a cached entry's order does not match its content")
        }
        return checkpoint
    }
}

extension CheckpointID {
    /// The id's 32 lowercase hex digits as ASCII bytes, in time order.
    var hexBytes: [UInt8] {
        var text = [UInt8](repeating: 0, count: 33)
        text.removeLast()
        var index = 0
        for word in [high, low] {
            for shift in stride(from: 60, through: 0, by: -4) {
                let digit = UInt8((word >> UInt64(shift)) & 0xf)
                text[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                index += 1
            }
        }
        return text
    }
}

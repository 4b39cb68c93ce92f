import Checkpointing
import Foundation

extension RedisCachedCheckpointer {
    // MARK: Keys

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

    /// A checkpoint's order and encoded content, to make its entry on a connection (the
    /// framing and check are ``CacheEntryFormat``'s).
    func content(of checkpoint: Checkpoint) throws -> (order: Data, body: Data) {
        (CacheEntryFormat.order(of: checkpoint), try CheckpointCodec.encode(checkpoint))
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

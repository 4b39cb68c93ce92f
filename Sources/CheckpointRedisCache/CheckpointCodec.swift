import Checkpointing
import Foundation

/// A whole checkpoint as one blob, for caches that keep read results (such as the Redis cache).
///
/// The blob starts with the checkpoint's thread, namespace and id, so a reader can check it
/// was handed the entry it asked for; everything else follows in the backends' binary forms.
package enum CheckpointCodec {
    private static let version: UInt8 = 1

    package static func encode(_ checkpoint: Checkpoint) throws(CheckpointError) -> Data {
        var writer = ByteWriter()
        writer.writeByte(version)
        writer.writeBytes(Data(checkpoint.thread.rawValue.utf8))
        writer.writeBytes(Data(checkpoint.namespace.utf8))
        writer.writeID(checkpoint.id)
        if let parentID = checkpoint.parentID {
            writer.writeByte(1)
            writer.writeID(parentID)
        } else {
            writer.writeByte(0)
        }
        writer.writeVarint(UInt64(max(0, checkpoint.step)))
        writer.writeVarint(checkpoint.createdAt.timeIntervalSince1970.bitPattern)
        writer.writeBytes(checkpoint.metadata.isEmpty ? Data() : try checkpoint.metadata.jsonData())
        writer.writeVarint(UInt64(checkpoint.channels.count))
        for name in checkpoint.channels.keys.sorted() {
            writer.writeBytes(Data(name.utf8))
            switch checkpoint.channels[name] {
            case .value(let data)?:
                writer.writeByte(0)
                writer.writeBytes(data)
            case .list(let elements)?:
                writer.writeByte(1)
                writer.writeVarint(UInt64(elements.count))
                for element in elements { writer.writeBytes(element) }
            case nil:
                break
            }
        }
        writer.writeBytes(checkpoint.pause?.encoded() ?? Data())
        if let answer = checkpoint.answer {
            writer.writeByte(1)
            writer.writeBytes(answer.pauseID.bytes)
            writer.writeBytes(answer.response)
            writer.writeVarint(answer.answeredAt.timeIntervalSince1970.bitPattern)
        } else {
            writer.writeByte(0)
        }
        return writer.data
    }

    /// Decodes a blob of ``encode(_:)``.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` for malformed bytes, or bytes of another
    ///   thread, namespace or checkpoint than `thread`, `namespace` and `id` (when given).
    package static func decode(
        _ data: Data, thread: ThreadID, namespace: String, id expected: CheckpointID?
    ) throws(CheckpointError) -> Checkpoint {
        var reader = ByteReader(data)
        guard try reader.readByte() == version else { throw ByteReader.corrupt }
        guard Self.bytes(try reader.readBytes(), equal: thread.rawValue),
            Self.bytes(try reader.readBytes(), equal: namespace)
        else {
            throw CheckpointError(.corruptData, "a cached checkpoint belongs to another thread or namespace")
        }
        let id = try reader.readID()
        if let expected, expected != id {
            throw CheckpointError(.corruptData, "a cached checkpoint has another id than its key")
        }
        let parentID: CheckpointID? =
            switch try reader.readByte() {
            case 0: nil
            case 1: try reader.readID()
            default: throw ByteReader.corrupt
            }
        let step = try reader.readVarint()
        guard step <= UInt64(Int.max) else { throw ByteReader.corrupt }
        let createdAt = Date(timeIntervalSince1970: Double(bitPattern: try reader.readVarint()))
        let metadataBytes = try reader.readBytes()
        let metadata = metadataBytes.isEmpty ? [:] : try Metadata.decodeJSON(metadataBytes)
        let channelCount = try reader.readVarint()
        guard channelCount <= UInt64(data.count) else { throw ByteReader.corrupt }
        var channels: [String: ChannelValue] = [:]
        for _ in 0..<channelCount {
            let name = String(decoding: try reader.readBytes(), as: UTF8.self)
            switch try reader.readByte() {
            case 0:
                channels[name] = .value(try reader.readBytes())
            case 1:
                let count = try reader.readVarint()
                guard count <= UInt64(data.count) else { throw ByteReader.corrupt }
                var elements: [Data] = []
                elements.reserveCapacity(Int(count))
                for _ in 0..<count { elements.append(try reader.readBytes()) }
                channels[name] = .list(elements)
            default:
                throw ByteReader.corrupt
            }
        }
        let pauseBytes = try reader.readBytes()
        let pause = pauseBytes.isEmpty ? nil : try Pause(decoding: pauseBytes)
        var answer: PauseAnswer?
        switch try reader.readByte() {
        case 0: break
        case 1:
            let pauseID = try UUID(bytes: try reader.readBytes())
            let response = try reader.readBytes()
            let answeredAt = Date(timeIntervalSince1970: Double(bitPattern: try reader.readVarint()))
            answer = PauseAnswer(pauseID: pauseID, response: response, answeredAt: answeredAt)
        default:
            throw ByteReader.corrupt
        }
        guard reader.isAtEnd else { throw ByteReader.corrupt }
        return Checkpoint(
            id: id, thread: thread, namespace: namespace, parentID: parentID, step: Int(step), createdAt: createdAt,
            metadata: metadata, channels: channels, pause: pause, answer: answer)
    }

    /// Whether `data` holds exactly the UTF-8 of `text` (a memory comparison, not an iteration).
    private static func bytes(_ data: Data, equal text: String) -> Bool {
        var text = text
        return text.withUTF8 { utf8 in
            guard data.count == utf8.count else { return false }
            guard let expected = utf8.baseAddress else { return true }
            return data.withUnsafeBytes { bytes in
                guard let base = bytes.baseAddress else { return false }
                return memcmp(base, expected, utf8.count) == 0
            }
        }
    }

    /// The checkpoint a write makes, given the checkpoint it was written after: what a cache
    /// can store after a put without reading the store back. `nil` when the parent is needed
    /// and not given.
    package static func applying(_ write: CheckpointWrite, to parent: Checkpoint?) -> Checkpoint? {
        var channels: [String: ChannelValue] = [:]
        for (name, channelWrite) in write.channels {
            switch channelWrite {
            case .value(let data): channels[name] = .value(data)
            case .list(let elements): channels[name] = .list(elements)
            case .unchanged:
                guard let value = parent?.channels[name] else { return nil }
                channels[name] = value
            case .append(let elements):
                guard case .list(let existing)? = parent?.channels[name] else { return nil }
                channels[name] = .list(existing + elements)
            }
        }
        // As the stores read it back: the time in seconds since 1970.
        let createdAt = Date(timeIntervalSince1970: write.createdAt.timeIntervalSince1970)
        return Checkpoint(
            id: write.id, thread: write.thread, namespace: write.namespace, parentID: write.parentID, step: write.step,
            createdAt: createdAt, metadata: write.metadata, channels: channels, pause: write.pause, answer: nil)
    }
}

import Foundation

/// Seals and opens bytes, bound to where they belong. `CheckpointEncryption` provides one over
/// libsodium (`SodiumSealer`); the typed façade calls it for every channel value and list
/// element it stores, so no store (and no cache in front of one) ever holds the plaintext.
public protocol ChannelSealer: Sendable {
    /// Seals `plaintext`. `associatedData` names its place (thread, namespace, channel, element);
    /// opening the result anywhere else fails.
    ///
    /// - Throws: ``CheckpointError`` when no key is available.
    func seal(_ plaintext: Data, thread: ThreadID, associatedData: Data) throws -> Data

    /// Opens what ``seal(_:thread:associatedData:)`` made for the same place.
    ///
    /// - Throws: ``CheckpointError/Code/decryptionFailed`` for a wrong or unknown key,
    ///   tampered or truncated bytes, or bytes sealed for another place.
    func open(_ sealed: Data, thread: ThreadID, associatedData: Data) throws -> Data
}

/// How a ``CheckpointThread`` seals what it stores.
public struct Sealing: Sendable {
    /// The sealer.
    public var sealer: any ChannelSealer

    /// Seals the whole state: every channel value and every list element is sealed on its own
    /// (so a save still stores only what changed), each bound to its thread, namespace, channel
    /// and position. Metadata and a pause's reason stay plain text, so that queries can filter
    /// on them; a pause's prompt and its answer are sealed like the state.
    public static func wholeState(_ sealer: any ChannelSealer) -> Sealing { Sealing(sealer: sealer) }
}

/// Where a sealed value belongs, as associated data.
package enum SealedPlace {
    case value(channel: String)
    case element(channel: String, index: Int)
    case prompt(pauseID: UUID)
    case answer(pauseID: UUID)

    /// The associated data for a value of `thread` and `namespace` in this place.
    package func associatedData(thread: ThreadID, namespace: String) -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + thread.rawValue.utf8.count + namespace.utf8.count)
        func append(_ text: String) {
            let utf8 = text.utf8
            var count = UInt64(utf8.count)
            repeat {  // varint length, as ByteWriter writes it
                bytes.append(UInt8(truncatingIfNeeded: count) | (count >= 0x80 ? 0x80 : 0))
                count >>= 7
            } while count > 0
            bytes.append(contentsOf: utf8)
        }
        append("checkpointing-seal-v1")
        append(thread.rawValue)
        append(namespace)
        switch self {
        case .value(let channel):
            bytes.append(1)
            append(channel)
        case .element(let channel, let index):
            bytes.append(2)
            append(channel)
            append(String(index))
        case .prompt(let id):
            bytes.append(3)
            append(id.uuidString)
        case .answer(let id):
            bytes.append(4)
            append(id.uuidString)
        }
        return Data(bytes)
    }
}

extension Sealing {
    /// Seals bytes for a place of a thread.
    package func seal(_ data: Data, _ place: SealedPlace, thread: ThreadID, namespace: String) throws -> Data {
        try sealer.seal(data, thread: thread, associatedData: place.associatedData(thread: thread, namespace: namespace))
    }

    /// Opens bytes sealed for a place of a thread.
    package func open(_ data: Data, _ place: SealedPlace, thread: ThreadID, namespace: String) throws -> Data {
        try sealer.open(data, thread: thread, associatedData: place.associatedData(thread: thread, namespace: namespace))
    }
}

extension PausedThread {
    /// Decodes a prompt sealed by a façade with `sealing`.
    ///
    /// - Throws: ``CheckpointError/Code/decryptionFailed`` or ``CheckpointError/Code/decodingFailed``.
    public func prompt<Prompt: Decodable>(as type: Prompt.Type, sealing: Sealing) throws -> Prompt {
        var opened = self
        opened.pause.prompt = try sealing.open(pause.prompt, .prompt(pauseID: pause.id), thread: thread, namespace: namespace)
        return try opened.prompt(as: type)
    }
}

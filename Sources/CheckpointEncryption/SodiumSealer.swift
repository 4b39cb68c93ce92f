import CCheckpointSodium
import Checkpointing
import Foundation
import Synchronization

/// Seals with XChaCha20-Poly1305 (IETF) from libsodium: a 256-bit key from a ``KeyProvider``,
/// a fresh random 192-bit nonce per value, and associated data that binds each value to its
/// place (thread, namespace, channel, element) and to the id of the key that sealed it.
///
/// A sealed value is `0x01, key id length, key id, nonce, ciphertext and tag`: 42 bytes more
/// than the plaintext, plus the key id.
///
/// ```swift
/// let sealer = SodiumSealer(keys: try StaticKeyProvider.fromEnvironment())
/// let thread = try checkpointer.thread("user-42:support", as: AgentState.self, sealing: .wholeState(sealer))
/// ```
public struct SodiumSealer: ChannelSealer {
    /// Where keys come from.
    public let keys: any KeyProvider

    private static let format: UInt8 = 1
    private static let nonceBytes = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    private static let tagBytes = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    /// Creates a sealer.
    public init(keys: any KeyProvider) {
        Sodium.initialize()
        self.keys = keys
    }

    /// Seals with the current key of `thread`.
    public func seal(_ plaintext: Data, thread: ThreadID, associatedData: Data) throws -> Data {
        let key = try keys.currentKey(for: thread)
        let keyID = key.id.utf8
        let keyIDCount = keyID.count
        let nonceStart = 2 + keyIDCount
        let cipherStart = nonceStart + Self.nonceBytes
        // The associated data binds the key id too: place, 0, key id, in one buffer.
        var ad = [UInt8]()
        ad.reserveCapacity(associatedData.count + 1 + keyIDCount)
        ad.append(contentsOf: associatedData)
        ad.append(0)
        ad.append(contentsOf: keyID)
        var sealed = Data(count: cipherStart + plaintext.count + Self.tagBytes)
        let result = sealed.withUnsafeMutableBytes { output -> Int32 in
            guard let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return -1 }
            out[0] = Self.format
            out[1] = UInt8(keyIDCount)
            var offset = 2
            for byte in keyID {
                out[offset] = byte
                offset += 1
            }
            NoncePool.shared.fill(out + nonceStart, count: Self.nonceBytes)
            return plaintext.withUnsafeBytes { message in
                key.withBytes { keyBytes -> Int32 in
                    guard let keyPointer = keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return -1 }
                    return crypto_aead_xchacha20poly1305_ietf_encrypt(
                        out + cipherStart, nil,
                        message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                        ad, UInt64(ad.count), nil, out + nonceStart, keyPointer)
                }
            }
        }
        guard result == 0 else { throw CheckpointError(.encodingFailed, "sealing failed") }
        return sealed
    }

    /// Opens a value sealed for the same place with any key the provider knows.
    public func open(_ sealed: Data, thread: ThreadID, associatedData: Data) throws -> Data {
        let bytes = [UInt8](sealed)
        guard bytes.count >= 2, bytes[0] == Self.format else {
            throw CheckpointError(.decryptionFailed, "the value is not sealed in a known format (truncated or tampered)")
        }
        let idLength = Int(bytes[1])
        let nonceStart = 2 + idLength
        let cipherStart = nonceStart + Self.nonceBytes
        guard bytes.count >= cipherStart + Self.tagBytes else {
            throw CheckpointError(.decryptionFailed, "the sealed value is truncated")
        }
        guard let keyID = String(bytes: bytes[2..<nonceStart], encoding: .utf8), SecretKey.isValidID(keyID) else {
            throw CheckpointError(.decryptionFailed, "the sealed value names no valid key id (tampered)")
        }
        guard let key = try keys.key(id: keyID, for: thread) else {
            throw CheckpointError(.decryptionFailed, "unknown key id '\(keyID)'")
        }
        let ad = Self.boundAssociatedData(associatedData, keyID: keyID)
        let plaintextCount = bytes.count - cipherStart - Self.tagBytes
        var plaintext = [UInt8](repeating: 0, count: plaintextCount)
        let result = plaintext.withUnsafeMutableBytes { output -> Int32 in
            bytes.withUnsafeBytes { input in
                ad.withUnsafeBytes { adBytes in
                    key.withBytes { keyBytes in
                        guard let inputPointer = input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                            let keyPointer = keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
                        else { return -1 }
                        return crypto_aead_xchacha20poly1305_ietf_decrypt(
                            output.baseAddress?.assumingMemoryBound(to: UInt8.self), nil, nil,
                            inputPointer + cipherStart, UInt64(bytes.count - cipherStart),
                            adBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(adBytes.count),
                            inputPointer + nonceStart, keyPointer)
                    }
                }
            }
        }
        defer { sodium_memzero(&plaintext, plaintext.count) }
        guard result == 0 else {
            throw CheckpointError(
                .decryptionFailed,
                "authentication failed with key '\(keyID)': a wrong key, tampered bytes, or a value from another place")
        }
        return Data(plaintext)
    }

    private static func boundAssociatedData(_ associatedData: Data, keyID: String) -> Data {
        var bytes = associatedData
        bytes.append(0)
        bytes.append(contentsOf: keyID.utf8)
        return bytes
    }
}

/// Random nonces from the kernel's generator, fetched a few kilobytes at a time: every nonce
/// is still fresh randomness, but one system call serves many seals.
final class NoncePool: Sendable {
    static let shared = NoncePool()

    private struct State {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var offset = 4096
    }

    private let state = Mutex(State())

    func fill(_ destination: UnsafeMutablePointer<UInt8>, count: Int) {
        state.withLock { state in
            if state.offset + count > state.buffer.count {
                state.buffer.withUnsafeMutableBytes { bytes in
                    if let base = bytes.baseAddress { randombytes_buf(base, bytes.count) }
                }
                state.offset = 0
            }
            state.buffer.withUnsafeMutableBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                destination.update(from: base + state.offset, count: count)
                sodium_memzero(base + state.offset, count)  // a nonce is handed out once
            }
            state.offset += count
        }
    }
}

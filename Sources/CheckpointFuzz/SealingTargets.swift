import CheckpointEncryption
import Checkpointing
import Foundation
import Synchronization

// The sealed-value envelope (0x01, key id length, key id, nonce, ciphertext and tag) that
// SodiumSealer opens for every channel value, list element, prompt and answer of a sealed
// thread, and for every @Sealed field (after base64).

/// Tenant material kept in memory, so that the fuzzer writes no files.
private final class MemoryTenantKeys: TenantKeyStore {
    private let material = Mutex<[String: SecretKey]>([:])

    func material(for tenant: String, create: Bool) throws -> SecretKey? {
        try material.withLock { material throws -> SecretKey? in
            if let key = material[tenant] { return key }
            guard create else { return nil }
            let key = try SecretKey(id: "tenant", bytes: Array(repeating: UInt8(truncatingIfNeeded: tenant.utf8.count), count: 32))
            material[tenant] = key
            return key
        }
    }

    func destroy(tenant: String) throws { _ = material.withLock { $0.removeValue(forKey: tenant) } }
}

/// A sealer with a current key, an old key and per-tenant keys derived from them.
private struct Sealers {
    let plain: SodiumSealer
    let tenants: SodiumSealer

    static let shared: Sealers = {
        do {
            let keys = try StaticKeyProvider(keys: [
                SecretKey(id: "2026-02", bytes: Array(repeating: 1, count: 32)),
                SecretKey(id: "old.key_1", bytes: Array(repeating: 2, count: 32)),
            ])
            return Sealers(
                plain: SodiumSealer(keys: keys),
                tenants: SodiumSealer(keys: TenantKeyProvider(master: keys, store: MemoryTenantKeys())))
        } catch {
            fatalError("the fuzz harness's keys are invalid: \(error)")
        }
    }()
}

/// The associated data of a channel value of the fixed thread, as the façade binds it.
private let place = bytes("checkpointing-seal-v1 \(Fixed.thread.rawValue) messages 0")

extension FuzzTarget {
    static let sealed = FuzzTarget(
        "sealed", "SodiumSealer.open over a sealed value's envelope (whole-state and per-tenant keys), and seal/open",
        seeds: {
            let sealers = Sealers.shared
            return [
                try sealers.plain.seal(bytes(#"{"role":"user","text":"hi"}"#), thread: Fixed.thread, associatedData: place),
                try sealers.plain.seal(Data(), thread: Fixed.thread, associatedData: place),
                try sealers.tenants.seal(bytes("42"), thread: Fixed.thread, associatedData: place),
                Data([1, 0]), Data([1, 255]) + Data(repeating: 0x61, count: 300),
            ]
        }
    ) { input throws(Finding) in
        var print = Fingerprint()
        var opened = false
        let sealers = Sealers.shared
        for sealer in [sealers.plain, sealers.tenants] {
            switch try attempt("SodiumSealer.open", [.decryptionFailed], {
                try sealer.open(input, thread: Fixed.thread, associatedData: place)
            }) {
            case .failure(let error): print.add(error.code.description)
            case .success(let plaintext):
                // An envelope that opens was sealed here: sealing its plaintext again opens again.
                let resealed = try must("sealing an opened value again") {
                    try sealer.seal(plaintext, thread: Fixed.thread, associatedData: place)
                }
                let reopened = try must("opening a value sealed again") {
                    try sealer.open(resealed, thread: Fixed.thread, associatedData: place)
                }
                try check(reopened == plaintext, "a value sealed again opens to another plaintext")
                print.add(plaintext)
                opened = true
            }
            // Any bytes seal, and open only in their place.
            let sealed = try must("sealing fuzz bytes") { try sealer.seal(input, thread: Fixed.thread, associatedData: place) }
            let opened = try must("opening fuzz bytes sealed") { try sealer.open(sealed, thread: Fixed.thread, associatedData: place) }
            try check(opened == input, "sealed bytes open to other bytes")
            let elsewhere = try attempt("opening sealed bytes in another place", [.decryptionFailed]) {
                try sealer.open(sealed, thread: Fixed.thread, associatedData: place + Data([0]))
            }
            if case .success = elsewhere { throw Finding("sealed bytes opened in another place") }
        }
        return print.outcome(decoded: opened)
    }
}

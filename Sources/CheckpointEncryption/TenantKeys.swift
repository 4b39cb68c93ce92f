import CCheckpointSodium
import Checkpointing
import Foundation
import Synchronization

/// Where the per-tenant random material of ``TenantKeyProvider`` lives. Destroying a tenant's
/// material makes everything sealed for that tenant unreadable for good (crypto-shredding).
public protocol TenantKeyStore: Sendable {
    /// The tenant's 32 random bytes; made and kept on first use when `create` is true.
    ///
    /// - Returns: `nil` when the tenant has none and `create` is false (never had, or destroyed).
    func material(for tenant: String, create: Bool) throws -> SecretKey?

    /// Destroys the tenant's material. Data sealed for the tenant can never be opened again;
    /// other tenants are untouched. Sealing for the tenant afterwards starts new material.
    func destroy(tenant: String) throws
}

/// Keeps each tenant's material in a file of its own in a directory (mode 0600), named by a
/// hash of the tenant, so that the directory does not list tenant names.
public struct FileTenantKeyStore: TenantKeyStore {
    /// The directory.
    public let directory: URL
    /// Material already read, by file; used only while the file is still the same one
    /// (checked with one `stat` per use), so that material destroyed or replaced by another
    /// process is noticed at once.
    private let cache = MaterialCache()

    /// Creates the store, and its directory when missing.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the directory cannot be made.
    public init(directory: URL) throws(CheckpointError) {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CheckpointError(.invalidConfiguration, "cannot create the tenant key directory '\(directory.path)'")
        }
        self.directory = directory
    }

    private func file(for tenant: String) -> URL {
        Sodium.initialize()
        var hash = [UInt8](repeating: 0, count: 32)
        let name = Array(tenant.utf8)
        crypto_generichash(&hash, 32, name, UInt64(name.count), nil, 0)
        return directory.appendingPathComponent(hash.map { String(format: "%02x", $0) }.joined() + ".tenantkey")
    }

    /// The tenant's material, made on first use when `create` is true.
    public func material(for tenant: String, create: Bool) throws -> SecretKey? {
        let url = file(for: tenant)
        var status = stat()
        if stat(url.path, &status) == 0, let cached = cache.material(path: url.path, inode: status.st_ino) {
            return cached
        }
        let material = try readOrCreate(url, create: create)
        if let material, stat(url.path, &status) == 0 {
            cache.remember(material, path: url.path, inode: status.st_ino)
        }
        return material
    }

    private func readOrCreate(_ url: URL, create: Bool) throws -> SecretKey? {
        if var data = FileManager.default.contents(atPath: url.path) {
            defer { data.resetBytes(in: data.startIndex..<data.endIndex) }
            return try SecretKey(id: "tenant", bytes: data)
        }
        guard create else { return nil }
        var bytes = [UInt8](repeating: 0, count: SecretKey.byteCount)
        randombytes_buf(&bytes, bytes.count)
        defer { sodium_memzero(&bytes, bytes.count) }
        let temporary = url.appendingPathExtension("new-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        else {
            throw CheckpointError(.invalidConfiguration, "cannot write tenant key material in '\(directory.path)'")
        }
        // Two processes making the same tenant's material at once: the first rename wins and
        // both use what is on disk afterwards.
        if link(temporary.path, url.path) != 0 && errno != EEXIST {
            try? FileManager.default.removeItem(at: temporary)
            throw CheckpointError(.invalidConfiguration, "cannot store tenant key material in '\(directory.path)'")
        }
        try? FileManager.default.removeItem(at: temporary)
        guard var stored = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError(.invalidConfiguration, "cannot read tenant key material back")
        }
        defer { stored.resetBytes(in: stored.startIndex..<stored.endIndex) }
        return try SecretKey(id: "tenant", bytes: stored)
    }

    /// Overwrites the tenant's material with zeros, flushes it to disk, and removes the file.
    /// A tenant with no material (never had any, or destroyed already) is not an error.
    ///
    /// - Throws: ``CheckpointError/Code/backendFailure`` saying the material was not destroyed
    ///   when the file cannot be opened, overwritten, flushed or removed (crypto-shredding must
    ///   never quietly do nothing); retryable when the disk was full.
    public func destroy(tenant: String) throws {
        let url = file(for: tenant)
        cache.forget(path: url.path)
        func failure(_ step: String, _ code: Int32 = errno) -> CheckpointError {
            var error = CheckpointError(
                .backendFailure,
                "the key material of tenant '\(tenant)' was not destroyed: it could not be \(step) "
                    + "(\(String(cString: strerror(code)))) in '\(directory.path)'",
                nativeCode: "errno \(code)")
            error.isRetryable = code == ENOSPC
            return error
        }
        let descriptor = open(url.path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw failure("opened")
        }
        var closed = false
        defer { if !closed { _ = close(descriptor) } }
        let zeros = [UInt8](repeating: 0, count: SecretKey.byteCount)
        var written = 0
        while written < zeros.count {
            let count = zeros.withUnsafeBytes { bytes in
                pwrite(descriptor, bytes.baseAddress.map { $0 + written }, zeros.count - written, off_t(written))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure("overwritten") }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw failure("flushed to disk") }
        closed = true
        guard close(descriptor) == 0 else { throw failure("closed") }
        guard unlink(url.path) == 0 else { throw failure("removed (it was overwritten with zeros)") }
        let directoryDescriptor = open(directory.path, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            _ = close(directoryDescriptor)
        }
    }
}

/// A separate key for each tenant (the thread id's part before `:`; threads without one form
/// the tenant `""`), derived with libsodium's KDF from a master key of `master` and random
/// material of the tenant's own. Destroying that material
/// (``destroy(tenant:)``) makes the tenant's data unreadable for good, while every other
/// tenant's still opens. Master keys rotate as usual: each derived key's id names its master
/// key (`masterID.tenant`).
public struct TenantKeyProvider: KeyProvider {
    /// The master keys.
    public let master: any KeyProvider
    /// The tenants' material.
    public let store: any TenantKeyStore

    /// Creates a provider.
    public init(master: any KeyProvider, store: any TenantKeyStore) {
        Sodium.initialize()
        self.master = master
        self.store = store
    }

    /// Crypto-shredding: destroys a tenant's key material.
    public func destroy(tenant: String) throws {
        try store.destroy(tenant: tenant)
    }

    /// The tenant's key derived from the current master key.
    public func currentKey(for thread: ThreadID) throws -> SecretKey {
        let masterKey = try master.currentKey(for: thread)
        let tenant = thread.tenant.map(String.init) ?? ""
        guard let material = try store.material(for: tenant, create: true) else {
            throw CheckpointError(.invalidConfiguration, "no key material for the tenant")
        }
        return try derive(from: masterKey, material: material, tenant: tenant)
    }

    /// The tenant's key derived from the master key the id names.
    ///
    /// - Throws: ``CheckpointError/Code/decryptionFailed`` when the tenant's material was destroyed.
    public func key(id: String, for thread: ThreadID) throws -> SecretKey? {
        guard id.hasSuffix(".tenant") else { return nil }
        guard let masterKey = try master.key(id: String(id.dropLast(".tenant".count)), for: thread) else { return nil }
        let tenant = thread.tenant.map(String.init) ?? ""
        guard let material = try store.material(for: tenant, create: false) else {
            throw CheckpointError(.decryptionFailed, "the tenant's key material was destroyed: its data cannot be opened")
        }
        return try derive(from: masterKey, material: material, tenant: tenant)
    }

    private func derive(from masterKey: SecretKey, material: SecretKey, tenant: String) throws -> SecretKey {
        // subkey 1 of the master key in context "ckpttnt1" keys a BLAKE2b hash of the tenant's
        // material and name: the tenant key.
        var tenantMaster = [UInt8](repeating: 0, count: 32)
        var derived = [UInt8](repeating: 0, count: 32)
        defer {
            sodium_memzero(&tenantMaster, 32)
            sodium_memzero(&derived, 32)
        }
        let context = Array("ckpttnt1".utf8).map { CChar(bitPattern: $0) }
        let status = masterKey.withBytes { masterBytes -> Int32 in
            guard let masterPointer = masterBytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return -1 }
            return crypto_kdf_derive_from_key(&tenantMaster, 32, 1, context, masterPointer)
        }
        guard status == 0 else { throw CheckpointError(.invalidConfiguration, "key derivation failed") }
        var message = material.withBytes { Array($0) } + Array(tenant.utf8)
        defer { sodium_memzero(&message, message.count) }
        crypto_generichash(&derived, 32, message, UInt64(message.count), tenantMaster, 32)
        return try SecretKey(id: "\(masterKey.id).tenant", bytes: derived)
    }
}

/// Tenant material read from files, each with the inode it was read from.
final class MaterialCache: Sendable {
    private struct Entry {
        var inode: ino_t
        var material: SecretKey
    }

    private let entries = Mutex<[String: Entry]>([:])

    func material(path: String, inode: ino_t) -> SecretKey? {
        entries.withLock { entries in
            guard let entry = entries[path], entry.inode == inode else { return nil }
            return entry.material
        }
    }

    func remember(_ material: SecretKey, path: String, inode: ino_t) {
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[path] = Entry(inode: inode, material: material)
        }
    }

    func forget(path: String) {
        _ = entries.withLock { $0.removeValue(forKey: path) }
    }
}

extension Checkpointer {
    /// Right to erasure with per-tenant keys: destroys the tenant's key material first (so that
    /// no copy of its rows, in a backup or a replica, opens again, even if what follows fails),
    /// then deletes every thread of the tenant (``Checkpointer/deleteTenant(_:batchSize:)``).
    ///
    /// - Throws: what ``TenantKeyProvider/destroy(tenant:)`` throws when the material could not
    ///   be destroyed (nothing is deleted then); what `deleteTenant` throws.
    @discardableResult
    public func deleteTenant(
        _ tenant: String, destroyingKeysIn keys: TenantKeyProvider, batchSize: Int = 100
    ) async throws -> TenantErasure {
        try keys.destroy(tenant: tenant)
        var erasure = try await deleteTenant(tenant, batchSize: batchSize)
        erasure.keyMaterialDestroyed = true
        return erasure
    }
}

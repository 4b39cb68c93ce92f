import Checkpointing
import Foundation
import Logging

extension FileStorage {
    /// Picks this storage by configuration: `files:///path/to/directory` (an absolute path,
    /// no host, no parameters).
    ///
    /// ```swift
    /// // CHECKPOINTER_URL=files:///var/lib/agent/checkpoints
    /// let configuration = try CheckpointerConfiguration.fromEnvironment(default: "files:///tmp/checkpoints")
    /// let checkpointer = try await configuration.makeCheckpointer(backends: [FileStorage.backend])
    /// ```
    public static let backend: any CheckpointerBackend = FileStorageBackend()
}

/// The `files:` scheme, opening a ``StorageCheckpointer`` over a ``FileStorage``.
struct FileStorageBackend: CheckpointerBackend {
    var schemes: Set<String> { ["files"] }

    func makeCheckpointer(url: CheckpointerURL, logger: Logger) async throws -> any Checkpointer {
        try url.rejectUnknownParameters([])
        let segments = url.path.split(separator: "/", omittingEmptySubsequences: true)
        guard url.host?.isEmpty ?? true, url.user == nil, url.password == nil, url.port == nil, url.path.hasPrefix("/")
        else {
            throw CheckpointError(
                .invalidConfiguration, "a files: URL names an absolute directory and nothing else: files:///path/to/dir")
        }
        guard !segments.isEmpty, !segments.contains(".."), !segments.contains(".") else {
            throw CheckpointError(
                .invalidConfiguration,
                "a files: URL names a directory below / without '.' or '..' segments, not '\(url.path)'")
        }
        logger.debug("opening a file storage", metadata: ["directory": "\(url.path)"])
        return StorageCheckpointer(try FileStorage(directory: URL(filePath: url.path)), backend: "files")
    }
}

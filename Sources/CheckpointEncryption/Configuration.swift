import Checkpointing
import Foundation

extension StaticKeyProvider {
    /// Reads the keys a ``KeySource`` names.
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when they cannot be read.
    public init(
        source: KeySource, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CheckpointError) {
        if let variable = source.environmentVariable {
            self = try StaticKeyProvider.fromEnvironment(variable, environment: environment)
        } else {
            self = try StaticKeyProvider.fromFile(source.filePath ?? "")
        }
    }
}

extension CheckpointerConfiguration {
    /// Whole-state sealing with the configured keys, or `nil` when no key source is configured.
    ///
    /// ```swift
    /// // CHECKPOINTER_URL=sqlite:///var/lib/agent/db.sqlite CHECKPOINTER_KEYS=file:/etc/agent/keys
    /// let configuration = try CheckpointerConfiguration.fromEnvironment()
    /// let checkpointer = try await configuration.makeCheckpointer(backends: [SQLiteCheckpointer.backend])
    /// let thread = try checkpointer.thread("t", as: State.self, sealing: try configuration.makeSealing())
    /// ```
    ///
    /// - Throws: ``CheckpointError/Code/invalidConfiguration`` when the keys cannot be read.
    public func makeSealing(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CheckpointError) -> Sealing? {
        guard let keySource else { return nil }
        return .wholeState(SodiumSealer(keys: try StaticKeyProvider(source: keySource, environment: environment)))
    }
}

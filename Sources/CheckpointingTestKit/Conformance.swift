import Checkpointing
import Foundation

/// A failed expectation of the conformance suite, with where it failed.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// What was expected and what happened.
    public var message: String
    /// The source location of the failed expectation.
    public var file: StaticString
    /// The line of the failed expectation.
    public var line: UInt

    /// Where the expectation failed, and what it expected.
    public var description: String { "\(file):\(line): \(message)" }
}

/// Fails the current check unless `condition` holds.
public func require(
    _ condition: @autoclosure () async throws -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
) async throws {
    guard try await condition() else { throw ConformanceFailure(message: message(), file: file, line: line) }
}

/// Fails unless `body` throws a ``CheckpointError`` with `code`; returns the error.
@discardableResult
public func requireError<T>(
    _ code: CheckpointError.Code, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async throws -> CheckpointError {
    do {
        _ = try await body()
    } catch let error as CheckpointError {
        guard error.code == code else {
            throw ConformanceFailure(message: "expected \(code), got \(error)", file: file, line: line)
        }
        return error
    } catch {
        throw ConformanceFailure(
            message: "expected CheckpointError \(code), got \(type(of: error)): \(error)", file: file, line: line)
    }
    throw ConformanceFailure(message: "expected CheckpointError \(code), but nothing was thrown", file: file, line: line)
}

/// One behaviour of the conformance suite.
public struct ConformanceCheck: Sendable, CustomStringConvertible {
    /// A short name, shown by the test runner.
    public let name: String
    /// The capabilities a backend must declare for the check to apply; empty for a required
    /// behaviour.
    public let requires: ConformanceCapabilities
    private let declared: ConformanceCapabilities
    private let body: @Sendable (any Checkpointer) async throws -> Void

    init(
        _ name: String, requires: ConformanceCapabilities = [],
        _ body: @escaping @Sendable (any Checkpointer) async throws -> Void
    ) {
        self.init(name: name, requires: requires, declared: .all, body: body)
    }

    private init(
        name: String, requires: ConformanceCapabilities, declared: ConformanceCapabilities,
        body: @escaping @Sendable (any Checkpointer) async throws -> Void
    ) {
        self.name = name
        self.requires = requires
        self.declared = declared
        self.body = body
    }

    /// The same check, run for a backend that declares `capabilities`: the parts of it that
    /// need a capability the backend does not declare are left out.
    func declaring(_ capabilities: ConformanceCapabilities) -> ConformanceCheck {
        ConformanceCheck(name: name, requires: requires, declared: capabilities, body: body)
    }

    /// Runs the check against a checkpointer that no other check uses at the same time.
    public func run(against checkpointer: any Checkpointer) async throws {
        try await CheckpointerConformance.$declared.withValue(declared) { try await body(checkpointer) }
    }

    /// The check's name.
    public var description: String { name }
}

/// What a backend offers beyond the behaviour every ``Checkpointer`` must have, declared to
/// ``CheckpointerConformance/checks(for:)`` so that the suite checks what the backend claims.
public struct ConformanceCapabilities: OptionSet, Sendable, Hashable {
    /// The capability's bit.
    public let rawValue: Int

    /// Creates capabilities from their bits.
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Delta storage: a checkpoint stores only what changed since its parent. An unchanged
    /// channel is not stored again and an appended list stores only its new elements, so that
    /// a conversation's storage grows with its new messages, not with its length. A backend that
    /// stores every checkpoint whole (a ``StorageCheckpointer``) does not have it.
    public static let deltaStorage = ConformanceCapabilities(rawValue: 1 << 0)
    /// The inbox: ``Checkpointer/pausedThreads(_:)`` lists the threads waiting for a person.
    /// Without it, the call throws ``CheckpointError/Code/unsupported``; pausing, answering
    /// exactly once and resuming are required either way.
    public static let inbox = ConformanceCapabilities(rawValue: 1 << 1)

    /// Every capability: what the built-in backends (in-memory, SQLite, Postgres, the Redis
    /// cache over either) declare.
    public static let all: ConformanceCapabilities = [.deltaStorage, .inbox]
}

/// The conformance suite: every backend and every wrapper stack runs ``checks`` (or
/// ``checks(for:)`` with the capabilities it declares).
///
/// ```swift
/// @Test(arguments: CheckpointerConformance.checks)
/// func conforms(_ check: ConformanceCheck) async throws {
///     let checkpointer = try await makeMyCheckpointer()
///     try await check.run(against: checkpointer)
///     try await checkpointer.close()
/// }
/// ```
public enum CheckpointerConformance {
    /// When set (`CheckpointerConformance.$sealing.withValue(.wholeState(sealer)) { ... }`),
    /// every façade the checks make seals what it stores, so that the suite runs over sealed state.
    @TaskLocal public static var sealing: Sealing?

    /// What the running check's backend declared (every capability unless the check came from
    /// ``checks(for:)``).
    @TaskLocal static var declared: ConformanceCapabilities = .all

    /// Whether the backend under check declared `capability`: a check leaves out the
    /// expectations that need one it did not.
    static func declares(_ capability: ConformanceCapabilities) -> Bool { declared.isSuperset(of: capability) }

    /// The checks for a backend that declares `capabilities`: every required behaviour, and the
    /// optional ones it claims. A backend without the inbox is also checked to say so with
    /// ``CheckpointError/Code/unsupported``.
    ///
    /// ```swift
    /// @Test(arguments: CheckpointerConformance.checks(for: [.inbox]))
    /// func conforms(_ check: ConformanceCheck) async throws { ... }
    /// ```
    public static func checks(for capabilities: ConformanceCapabilities) -> [ConformanceCheck] {
        let applicable = allChecks.filter { capabilities.isSuperset(of: $0.requires) }
        let refusals = capabilities.contains(.inbox) ? [] : [noInboxIsUnsupported]
        return (applicable + refusals).map { $0.declaring(capabilities) }
    }

    /// Every check of the suite, for a backend with every capability (``ConformanceCapabilities/all``):
    /// the built-in ones. A store that keeps every checkpoint whole (a `StorageCheckpointer`)
    /// fails the delta-storage checks here: run ``checks(for:)`` with what it declares.
    public static let checks: [ConformanceCheck] = allChecks

    private static let allChecks: [ConformanceCheck] = [
        typedRoundTrip, headAndByID, historyOrderBeforeLimitFilter, racingWriters, manyRacingWriters,
        deliberateFork, namespacesIsolated, deleteThread, unchangedChannelsNotStoredAgain,
        appendedListStoresOnlyNewElements, channelWrites, invalidThreadIDs, invalidArguments, corruptChannelBytes,
        unsplittableState,
    ] + facadeChecks + decodingChecks + metadataFilterChecks + pauseChecks + retentionChecks + threadListingChecks + exportChecks + sweepChecks + [
        canonicallyEquivalentTextIsDistinct, datesReadBack, cancelledCallsDoNothing, closedCheckpointer,
        healthFollowsTheStore,
    ]
}

extension Checkpointer {
    /// The façade the checks use: sealed when ``CheckpointerConformance/sealing`` is set.
    func facade<State: Codable & Sendable>(
        _ id: ThreadID, namespace: String = "", as type: State.Type
    ) throws(CheckpointError) -> CheckpointThread<State> {
        try thread(id, namespace: namespace, as: type, sealing: CheckpointerConformance.sealing)
    }
}

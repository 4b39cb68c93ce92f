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

/// One behaviour every ``Checkpointer`` must have.
public struct ConformanceCheck: Sendable, CustomStringConvertible {
    /// A short name, shown by the test runner.
    public let name: String
    private let body: @Sendable (any Checkpointer) async throws -> Void

    init(_ name: String, _ body: @escaping @Sendable (any Checkpointer) async throws -> Void) {
        self.name = name
        self.body = body
    }

    /// Runs the check against a checkpointer that no other check uses at the same time.
    public func run(against checkpointer: any Checkpointer) async throws {
        try await body(checkpointer)
    }

    /// The check's name.
    public var description: String { name }
}

/// The conformance suite: every backend and every wrapper stack runs all of ``checks``.
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

    /// Every check of the suite.
    public static let checks: [ConformanceCheck] = [
        typedRoundTrip, headAndByID, historyOrderBeforeLimitFilter, racingWriters, manyRacingWriters,
        deliberateFork, namespacesIsolated, deleteThread, unchangedChannelsNotStoredAgain,
        appendedListStoresOnlyNewElements, channelWrites, invalidThreadIDs, invalidArguments, corruptChannelBytes,
        unsplittableState,
    ] + facadeChecks + metadataFilterChecks + pauseChecks + retentionChecks + [
        canonicallyEquivalentTextIsDistinct, cancelledCallsDoNothing, closedCheckpointer,
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

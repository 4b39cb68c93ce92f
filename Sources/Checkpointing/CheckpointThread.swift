import Foundation
import Synchronization

/// The typed façade over a ``Checkpointer``: saves and loads one thread's `Codable` state.
///
/// Each top-level property of `State` becomes a channel. A save stores only the channels
/// that changed since the checkpoint this façade last read or wrote, and an array property
/// whose elements are `Equatable` and that only grew at its end stores only the new elements.
/// So the cost of a save follows the size of the change, not the size of the conversation.
///
/// ```swift
/// let thread = try checkpointer.thread("user-42:support", as: AgentState.self)
/// var state = try await thread.latest() ?? AgentState()
/// state.messages.append(Message(role: .user, text: "Hello"))
/// try await thread.save(state, metadata: ["turn": 1])
/// ```
///
/// A save is checked against the thread's head: when another writer saved in between, it
/// fails with ``CheckpointError/Code/conflict`` and writes nothing; call ``latest()`` to
/// read the winner's state, then save again. Calling ``save(_:metadata:)`` before reading an
/// existing thread is such a conflict too. The façade is `Sendable`; two saves racing through
/// the same façade behave like two writers.
public final class CheckpointThread<State: Codable & Sendable>: Sendable {
    /// The store this façade reads and writes.
    public let checkpointer: any Checkpointer
    /// The thread.
    public let id: ThreadID
    /// The namespace within the thread.
    public let namespace: String

    /// The checkpoint the next save follows, with what is needed to find the change.
    private struct Base: Sendable {
        var id: CheckpointID
        var step: Int
        /// The state of that checkpoint, whose arrays the next save compares with.
        var state: State
        /// The encoded value channels of that checkpoint.
        var values: [String: Data]
        /// Whether the next save forks (its parent need not be the head).
        var forks: Bool
        /// The checkpoint's pause and its answer, if any.
        var pause: Pause? = nil
        var answer: PauseAnswer? = nil
    }

    private let base = Mutex<Base?>(nil)
    private let capture = ChannelCapture()
    private let decoding = ChannelDecoding()
    /// How the state is sealed, if it is.
    public let sealing: Sealing?
    /// The thread-and-namespace part of every sealed value's associated data, computed once.
    private let sealPrefix: [UInt8]
    /// Whether the state has `Sealed` fields, as far as saves have seen (see ``save(_:metadata:)``).
    private let sealedFields = Atomic<Int>(0)
    /// A sealing context and its encoder, kept between saves.
    private let sealingTools = Mutex<(context: SealingContext, encoder: JSONEncoder)?>(nil)

    private func makeSealingTools(_ sealing: Sealing) -> (context: SealingContext, encoder: JSONEncoder) {
        let context = SealingContext(sealing: sealing, thread: id, namespace: namespace)
        return (context, context.makeEncoder())
    }

    /// Creates a façade; see ``Checkpointer/thread(_:namespace:as:sealing:)``.
    ///
    /// - Parameter sealing: seals what the façade stores (``Sealing/wholeState(_:)``); `nil`
    ///   stores plain bytes. Reading checkpoints written with another setting fails.
    public init(
        checkpointer: any Checkpointer, id: ThreadID, namespace: String = "", sealing: Sealing? = nil
    ) throws(CheckpointError) {
        try NamespaceValidation.validate(namespace)
        self.checkpointer = checkpointer
        self.id = id
        self.namespace = namespace
        self.sealing = sealing
        self.sealPrefix = sealing == nil ? [] : SealedPlace.prefix(thread: id, namespace: namespace)
    }

    /// The id of the checkpoint the next ``save(_:metadata:)`` will follow, or `nil` before the
    /// first read or write.
    public var headID: CheckpointID? { base.withLock { $0?.id } }

    /// Reads the thread's newest state and makes it the base of the next save.
    ///
    /// - Returns: the state, or `nil` when the thread has no checkpoint yet.
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when the stored channels do not decode
    ///   as `State`; ``CheckpointError/Code/corruptData`` when stored bytes are damaged.
    public func latest() async throws -> State? {
        guard let stored = try await checkpointer.head(thread: id, namespace: namespace) else {
            base.withLock { $0 = nil }
            return nil
        }
        let checkpoint = try opened(stored)
        let state = try decode(checkpoint)
        let next = makeBase(checkpoint, state: state, forks: false)
        base.withLock { $0 = next }
        return state
    }

    /// Reads the state of one checkpoint without changing what the next save follows.
    ///
    /// - Throws: ``CheckpointError/Code/notFound`` when the thread has no such checkpoint.
    public func state(at checkpointID: CheckpointID) async throws -> State {
        try decode(try opened(try await load(checkpointID)))
    }

    /// Time travel: reads a past checkpoint and makes it the parent of the next save, which
    /// then forks the thread from there (the fork becomes the head; the old branch stays in
    /// the history).
    ///
    /// - Throws: ``CheckpointError/Code/notFound`` when the thread has no such checkpoint.
    public func rewind(to checkpointID: CheckpointID) async throws -> State {
        let checkpoint = try opened(try await load(checkpointID))
        let state = try decode(checkpoint)
        let next = makeBase(checkpoint, state: state, forks: true)
        base.withLock { $0 = next }
        return state
    }

    /// Saves a new checkpoint of the state, after the one last read or written.
    ///
    /// - Parameter metadata: plain-text, queryable values stored beside the checkpoint.
    /// - Returns: the new checkpoint's id.
    /// - Throws: ``CheckpointError/Code/conflict`` when another writer moved the thread's head
    ///   (nothing is written; call ``latest()`` and save again);
    ///   ``CheckpointError/Code/encodingFailed`` when the state does not encode.
    @discardableResult
    public func save(_ state: State, metadata: Metadata = [:]) async throws -> CheckpointID {
        try await save(state, metadata: metadata, pause: nil)
    }

    /// Saves the state with a question for a person: the thread then waits in the inbox
    /// (``Checkpointer/pausedThreads(_:)``) until someone answers with
    /// ``Checkpointer/resume(thread:namespace:pauseID:with:at:)`` or ``resume(_:with:at:)``.
    ///
    /// - Parameters:
    ///   - reason: a short machine-readable reason (1 to 128 bytes), stored in plain text so
    ///     that the inbox can filter on it.
    ///   - prompt: what the person is asked, encoded as JSON.
    ///   - expiresAt: when the question stops accepting answers; `nil` for never.
    /// - Returns: the pause, whose id an answer names.
    /// - Throws: what ``save(_:metadata:)`` throws; ``CheckpointError/Code/invalidArgument`` for
    ///   a bad reason or an expiry in the past.
    @discardableResult
    public func pause<Prompt: Encodable>(
        _ state: State, reason: String, prompt: Prompt, expiresAt: Date? = nil, metadata: Metadata = [:]
    ) async throws -> Pause {
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(prompt)
        } catch {
            throw CheckpointError(.encodingFailed, "the prompt of type \(Prompt.self) could not be encoded")
        }
        var pause = try Pause(reason: reason, prompt: encoded, expiresAt: expiresAt)
        if let sealing {
            pause.prompt = try sealing.seal(encoded, .prompt(pauseID: pause.id), thread: id, namespace: namespace)
        }
        _ = try await save(state, metadata: metadata, pause: pause)
        return pause
    }

    /// The pause of the checkpoint last read or written, if it has one (answered or not).
    public var pause: Pause? { base.withLock { $0?.pause } }

    /// Whether the checkpoint last read pauses the thread and still waits for its answer.
    public var isAwaitingAnswer: Bool { base.withLock { $0?.pause != nil && $0?.answer == nil } }

    /// The answer to the pause of the checkpoint last read, decoded; `nil` while unanswered.
    ///
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when the answer is not an `Answer`.
    public func answer<Answer: Decodable>(as type: Answer.Type) throws(CheckpointError) -> Answer? {
        guard let answer = base.withLock({ $0?.answer }) else { return nil }
        do {
            return try JSONDecoder().decode(Answer.self, from: answer.response)
        } catch {
            throw CheckpointError(.decodingFailed, "the answer to pause \(answer.pauseID) is not a \(Answer.self)")
        }
    }

    /// Records a person's answer to this thread's pause, exactly once; see
    /// ``Checkpointer/resume(thread:namespace:pauseID:response:at:)`` for the errors.
    public func resume<Answer: Encodable>(_ pauseID: UUID, with answer: Answer, at now: Date = Date()) async throws {
        try await checkpointer.resume(
            thread: id, namespace: namespace, pauseID: pauseID, with: answer, at: now, sealing: sealing)
    }

    /// Saves the thread's newest state again as a checkpoint that stores every channel whole,
    /// sealed with the current key: after a key rotation, this and ``prune(keepingLatest:)``
    /// (keeping 1) move a thread's history onto the new key, so that the old key can go.
    ///
    /// - Returns: the new checkpoint's id, or `nil` when the thread has no checkpoint.
    /// - Throws: what ``latest()`` and ``save(_:metadata:)`` throw.
    @discardableResult
    public func rewriteHead(metadata: Metadata = [:]) async throws -> CheckpointID? {
        guard let state = try await latest() else { return nil }
        return try await save(state, metadata: metadata, pause: nil, whole: true)
    }

    private func save(_ state: State, metadata: Metadata, pause: Pause?, whole: Bool = false) async throws -> CheckpointID {
        let parent = base.withLock { $0 }
        // A whole save compares with nothing, so that every channel is stored anew.
        let previous = whole ? nil : parent
        // A whole-state sealing façade needs the sealing context only for `Sealed` fields; once
        // a save found none, later saves skip it, and a save that meets one after all (an
        // optional field set later) fails to encode without it and is redone with it.
        let skipContext = sealing?.sealsWholeState == true && sealedFields.load(ordering: .relaxed) == Self.noSealedFields
        var channels: Channels
        do {
            channels = try channelWrites(state, previous: previous, useContext: sealing != nil && !skipContext)
        } catch where skipContext {
            sealedFields.store(Self.hasSealedFields, ordering: .relaxed)
            channels = try channelWrites(state, previous: previous, useContext: true)
        }
        var write = CheckpointWrite(
            id: .make(after: parent?.id), thread: id, namespace: namespace, parentID: parent?.id,
            step: (parent?.step ?? -1) + 1, metadata: metadata, channels: channels.writes, pause: pause)
        write.inlineChannels = channels.inlineChannels
        try await checkpointer.put(write, expecting: parent?.forks == true ? .anyParent : .parentIsHead)
        let next = Base(id: write.id, step: write.step, state: state, values: channels.values, forks: false, pause: pause)
        base.withLock { $0 = next }
        return write.id
    }

    /// What a save writes: per channel, what changed since `previous` (sealed when the façade
    /// seals), the plaintext forms kept to compare the next save with, and the sealed values
    /// that stay inline.
    private struct Channels {
        var writes: [String: ChannelWrite] = [:]
        var values: [String: Data] = [:]
        var inlineChannels: Set<String> = []
    }

    private static var unknownSealedFields: Int { 0 }
    private static var noSealedFields: Int { 1 }
    private static var hasSealedFields: Int { 2 }

    private func channelWrites(_ state: State, previous: Base?, useContext: Bool) throws -> Channels {
        var result = Channels()
        // With sealing, sealed fields encode twice: as plaintext to find what changed (kept in
        // memory only), then sealed for the channels that did change.
        // The façade keeps one context and its encoder for its saves (a save takes it, or makes
        // a new one while another save holds it), instead of allocating both for every save.
        let reused: (context: SealingContext, encoder: JSONEncoder)? =
            useContext ? sealingTools.withLock { $0.take() } ?? sealing.map(makeSealingTools) : nil
        defer {
            if let reused {
                reused.context.reset()
                sealingTools.withLock { if $0 == nil { $0 = reused } }
            }
        }
        let context = reused?.context
        let encoder = reused?.encoder ?? capture.encoder
        do {
            context?.comparing = true
            let captured = try capture.capture(state, using: encoder)
            context?.comparing = false
            if let context, sealing?.sealsWholeState == true, sealedFields.load(ordering: .relaxed) != Self.hasSealedFields {
                sealedFields.store(
                    context.channelsWithSealedFields.isEmpty ? Self.noSealedFields : Self.hasSealedFields,
                    ordering: .relaxed)
            }
            let previousLists = try previous.map { try capture.capture($0.state, encodeValues: false) } ?? [:]
            var sealedValues: [String: CapturedChannel]?
            result.writes.reserveCapacity(captured.count)
            for (name, channel) in captured {
                switch channel {
                case .value(let data):
                    result.values[name] = data
                    guard previous?.values[name] != data else {
                        result.writes[name] = .unchanged
                        continue
                    }
                    var stored = data
                    if let context, context.channelsWithSealedFields.contains(name) {
                        if sealedValues == nil { sealedValues = try capture.capture(state, using: encoder) }
                        if case .value(let sealed)? = sealedValues?[name] { stored = sealed }
                    }
                    result.writes[name] = .value(try seal(stored, .value(channel: name)))
                    if sealing?.sealsWholeState == true, stored.count <= ResolvedWrite.inlineLimit {
                        result.inlineChannels.insert(name)
                    }
                case .list(let list):
                    context?.channel = name
                    if case .list(let old)? = previousLists[name], let prefix = list.channelPrefixLength(of: old) {
                        result.writes[name] =
                            prefix == list.channelElementCount
                            ? .unchanged
                            : .append(
                                try seal(
                                    list.encodeChannelElements(from: prefix, using: encoder, context: context), of: name,
                                    from: prefix))
                    } else {
                        result.writes[name] = .list(
                            try seal(list.encodeChannelElements(from: 0, using: encoder, context: context), of: name, from: 0))
                    }
                }
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(
                .encodingFailed, "the state of type \(State.self) could not be encoded: \(type(of: error))")
        }
        return result
    }

    /// Keeps the newest `count` checkpoints and every unanswered pause, and removes the rest
    /// from the history; see ``Checkpointer/prune(thread:namespace:keepingLatest:)``.
    @discardableResult
    public func prune(keepingLatest count: Int) async throws -> Int {
        try await checkpointer.prune(thread: id, namespace: namespace, keepingLatest: count)
    }

    /// Lists this thread's checkpoints newest first; see
    /// ``Checkpointer/history(thread:namespace:before:limit:where:)``.
    public func history(
        before: CheckpointID? = nil, limit: Int = 100, where filter: Metadata = [:]
    ) async throws -> [CheckpointSummary] {
        try await checkpointer.history(thread: id, namespace: namespace, before: before, limit: limit, where: filter)
    }

    private func seal(_ data: Data, _ place: SealedPlace) throws -> Data {
        guard let sealing, sealing.sealsWholeState else { return data }
        return try sealing.sealer.seal(data, thread: id, associatedData: place.associatedData(prefix: sealPrefix))
    }

    private func seal(_ elements: [Data], of channel: String, from start: Int) throws -> [Data] {
        guard sealing?.sealsWholeState == true else { return elements }
        return try elements.enumerated().map { offset, element in
            try seal(element, .element(channel: channel, index: start + offset))
        }
    }

    /// The checkpoint with its channels, prompt and answer opened, when the façade seals.
    private func opened(_ checkpoint: Checkpoint) throws -> Checkpoint {
        guard let sealing else { return checkpoint }
        var opened = checkpoint
        for (name, channel) in checkpoint.channels where sealing.sealsWholeState {
            switch channel {
            case .value(let data):
                opened.channels[name] = .value(try sealing.open(data, .value(channel: name), thread: id, namespace: namespace))
            case .list(let elements):
                opened.channels[name] = .list(
                    try elements.enumerated().map { index, element in
                        try sealing.open(element, .element(channel: name, index: index), thread: id, namespace: namespace)
                    })
            }
        }
        if let pause = checkpoint.pause {
            opened.pause?.prompt = try sealing.open(pause.prompt, .prompt(pauseID: pause.id), thread: id, namespace: namespace)
            if let answer = checkpoint.answer {
                opened.answer?.response = try sealing.open(
                    answer.response, .answer(pauseID: pause.id), thread: id, namespace: namespace)
            }
        }
        return opened
    }

    private func load(_ checkpointID: CheckpointID) async throws -> Checkpoint {
        guard let checkpoint = try await checkpointer.checkpoint(thread: id, namespace: namespace, id: checkpointID)
        else {
            throw CheckpointError(.notFound, "thread '\(id)' has no checkpoint \(checkpointID)")
        }
        return checkpoint
    }

    private func decode(_ checkpoint: Checkpoint) throws -> State {
        do {
            let context = sealing.map { SealingContext(sealing: $0, thread: id, namespace: namespace) }
            return try decoding.decode(State.self, from: checkpoint.channels, context: context)
        } catch let error as CheckpointError {
            throw error  // a sealed field that does not open
        } catch {
            throw CheckpointError(
                .decodingFailed,
                "checkpoint \(checkpoint.id) does not decode as \(State.self): \(Self.describe(error))")
        }
    }

    /// Describes a decoding error by its kind and path only, never by the stored values.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(type(of: error))" }
        switch error {
        case .keyNotFound(let key, _): return "missing '\(key.stringValue)'"
        case .typeMismatch(let type, let context): return "type mismatch for \(type) at \(path(context))"
        case .valueNotFound(let type, let context): return "missing \(type) at \(path(context))"
        case .dataCorrupted(let context): return "malformed data at \(path(context))"
        @unknown default: return "decoding failed"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return path.isEmpty ? "the top level" : path
    }

    /// The base for a checkpoint that was read: its value bytes are what the next save compares
    /// with. Without sealing they are the stored bytes (nothing is encoded again); with sealing,
    /// the plaintext form the next save compares with.
    private func makeBase(_ checkpoint: Checkpoint, state: State, forks: Bool) -> Base {
        var values: [String: Data] = [:]
        for (name, channel) in checkpoint.channels {
            if case .value(let data) = channel { values[name] = data }
        }
        if let sealing {
            let context = SealingContext(sealing: sealing, thread: id, namespace: namespace)
            context.comparing = true
            if let captured = try? capture.capture(state, using: context.makeEncoder()) {
                values = [:]
                for (name, channel) in captured {
                    if case .value(let data) = channel { values[name] = data }
                }
            }
        }
        return Base(
            id: checkpoint.id, step: checkpoint.step, state: state, values: values, forks: forks,
            pause: checkpoint.pause, answer: checkpoint.answer)
    }
}

extension Checkpointer {
    /// Makes the typed façade for one thread of this store.
    ///
    /// - Throws: ``CheckpointError/Code/invalidThreadID`` or
    ///   ``CheckpointError/Code/invalidArgument`` for a bad id or namespace.
    public func thread<State: Codable & Sendable>(
        _ id: String, namespace: String = "", as type: State.Type = State.self, sealing: Sealing? = nil
    ) throws(CheckpointError) -> CheckpointThread<State> {
        try CheckpointThread(checkpointer: self, id: ThreadID(id), namespace: namespace, sealing: sealing)
    }

    /// Makes the typed façade for one thread of this store; `sealing` seals what it stores.
    public func thread<State: Codable & Sendable>(
        _ id: ThreadID, namespace: String = "", as type: State.Type = State.self, sealing: Sealing? = nil
    ) throws(CheckpointError) -> CheckpointThread<State> {
        try CheckpointThread(checkpointer: self, id: id, namespace: namespace, sealing: sealing)
    }
}

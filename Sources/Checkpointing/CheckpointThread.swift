import Foundation
import Synchronization

/// The typed façade over a ``Checkpointer``: saves and loads one thread's `Codable` state.
///
/// Each top-level property of `State` becomes a channel. A save stores only the channels
/// whose encoded bytes changed since the checkpoint its state came from, and an array
/// property that only grew at its end stores only the new elements (any `Codable` element,
/// `Equatable` or not: what is stored is decided by the encoded bytes, never by `==`). So the
/// cost of a save follows the size of the change, not the size of the conversation.
///
/// ```swift
/// let thread = try checkpointer.thread("user-42:support", as: AgentState.self)
/// try await thread.update(startingWith: AgentState()) { state in
///     state.messages.append(Message(role: "user", text: "Hello"))
/// }
/// ```
///
/// Stored properties that `State` does not have (written by another type, say a newer deploy's)
/// are kept by its saves, unchanged; an optional property set to `nil` is removed as before. To
/// drop a property's stored data, register a ``StateVersions`` upgrade that removes it.
///
/// A read decodes only what changed since the façade's last decode: channels whose stored bytes
/// are the same are reused, and of a list that grew only the new elements are decoded (plain
/// values only: a decoded class instance is never handed out twice, and a channel holding a
/// sealed field is opened again on every read). So a read after a save costs the size of the
/// change too. Keep one façade per conversation to benefit.
///
/// ## Concurrency
///
/// A save is checked against the thread's head: when another writer saved in between, it
/// fails with ``CheckpointError/Code/conflict`` and writes nothing. The façade is `Sendable`,
/// and one façade may serve many tasks at once (a server that keeps one per conversation):
///
/// - ``update(startingWith:metadata:maxAttempts:isolation:_:)`` reads the head, applies a change,
///   saves, and on a conflict reads again and reapplies the change (a few times at most).
///   It is the easy way that never loses an update.
/// - ``load()`` returns a ``StateSnapshot`` that carries its checkpoint;
///   ``save(_:metadata:)-(StateSnapshot<State>,_)`` saves it after exactly that checkpoint.
/// - ``latest()`` and ``save(_:metadata:)-(State,_)`` follow, for each task, the checkpoint
///   that task last read or saved through the façade: two tasks that read the same head and
///   both save give one success and one `conflict`, never a silently lost update. A task
///   that has not read through the façade follows the checkpoint last read by any task, but
///   not one another task saved (its state cannot have come from there): that save is a
///   `conflict` too. Calling save before reading an existing thread is a conflict as well.
///
/// The properties ``headID``, ``pause``, ``isAwaitingAnswer`` and ``answer(as:)`` describe the
/// checkpoint the calling task last read or saved (or, for a task that has not, the façade's
/// last one).
public final class CheckpointThread<State: Codable & Sendable>: Sendable {
    /// The store this façade reads and writes.
    public let checkpointer: any Checkpointer
    /// The thread.
    public let id: ThreadID
    /// The namespace within the thread.
    public let namespace: String

    private let bases = Mutex(FacadeBases<State>())
    private let capture = ChannelCapture()
    private let decoding = ChannelDecoding()
    /// The channels of the state this façade decoded last, which the next decode reuses where
    /// their bytes are the same: a read after a save or another writer's append decodes only
    /// what changed, not the whole conversation.
    private let decoded = Mutex(DecodedChannels())
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

    /// How the state evolved, if it did.
    public let versions: StateVersions?
    /// The bytes of the version marker saves write (`nil` at version 1).
    private let versionMarker: Data?
    /// The clock that tells whether a pause has expired (``pauseStatus(at:)``'s default).
    private let now: @Sendable () -> Date

    /// Creates a façade; see ``Checkpointer/thread(_:namespace:as:sealing:)``.
    ///
    /// - Parameters:
    ///   - sealing: seals what the façade stores (``Sealing/wholeState(_:)``); `nil` stores
    ///     plain bytes. Reading checkpoints written with another setting fails.
    ///   - versions: the state's current version and the upgrades of older checkpoints (see
    ///     ``StateVersions``); `nil` for a state that is still at version 1.
    ///   - now: the clock ``pauseStatus(at:)`` and ``isAwaitingAnswer`` use, and the creation
    ///     time of what it saves (default: the system clock); tests pass one they move by hand.
    /// - Throws: ``CheckpointError/Code/invalidArgument`` for a bad namespace or versions.
    public init(
        checkpointer: any Checkpointer, id: ThreadID, namespace: String = "", sealing: Sealing? = nil,
        versions: StateVersions? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) throws(CheckpointError) {
        try versions?.validate()
        self.versions = versions
        self.versionMarker = versions.flatMap { $0.current > 1 ? Data(String($0.current).utf8) : nil }
        self.now = now
        try NamespaceValidation.validate(namespace)
        self.checkpointer = checkpointer
        self.id = id
        self.namespace = namespace
        self.sealing = sealing
        self.sealPrefix = sealing == nil ? [] : SealedPlace.prefix(thread: id, namespace: namespace)
    }

    /// The id of the checkpoint the next ``save(_:metadata:)`` will follow, or `nil` before the
    /// first read or write.
    public var headID: CheckpointID? { currentBase?.id }

    private var currentBase: FacadeBase<State>? {
        let task = FacadeBases<State>.currentTask()
        return bases.withLock { $0.current(task: task) }
    }

    /// Reads the thread's newest state and makes it what the calling task's next
    /// ``save(_:metadata:)-(State,_)`` follows.
    ///
    /// - Returns: the state, or `nil` when the thread has no checkpoint yet.
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when the stored channels do not decode
    ///   as `State`; ``CheckpointError/Code/corruptData`` when stored bytes are damaged.
    public func latest() async throws -> State? {
        try await load()?.state
    }

    /// Reads the thread's newest state as a snapshot that carries its checkpoint, for
    /// ``save(_:metadata:)-(StateSnapshot<State>,_)``. Also makes it what the calling task's next
    /// plain save follows, like ``latest()``.
    ///
    /// - Returns: the snapshot, or `nil` when the thread has no checkpoint yet.
    /// - Throws: what ``latest()`` throws.
    public func load() async throws -> StateSnapshot<State>? {
        try throwIfCancelled()
        let task = FacadeBases<State>.currentTask()
        guard let stored = try await checkpointer.head(thread: id, namespace: namespace) else {
            bases.withLock { $0.read(nil, head: true, task: task) }
            return nil
        }
        let checkpoint = try opened(stored)
        let (state, upgraded, foreign) = try decodeRecording(checkpoint)
        let next = try makeBase(checkpoint, state: state, forks: false, upgraded: upgraded, foreign: foreign)
        bases.withLock { $0.read(next, head: true, task: task) }
        return StateSnapshot(next)
    }

    /// Reads the state of one checkpoint without changing what the next save follows.
    ///
    /// - Throws: ``CheckpointError/Code/notFound`` when the thread has no such checkpoint.
    public func state(at checkpointID: CheckpointID) async throws -> State {
        try decode(try opened(try await load(checkpointID)))
    }

    /// Time travel: reads a past checkpoint and makes it the parent of the calling task's next
    /// save, which then forks the thread from there (the fork becomes the head; the old branch
    /// stays in the history).
    ///
    /// - Throws: ``CheckpointError/Code/notFound`` when the thread has no such checkpoint.
    public func rewind(to checkpointID: CheckpointID) async throws -> State {
        let task = FacadeBases<State>.currentTask()
        let checkpoint = try opened(try await load(checkpointID))
        let (state, upgraded, foreign) = try decodeRecording(checkpoint)
        let next = try makeBase(checkpoint, state: state, forks: true, upgraded: upgraded, foreign: foreign)
        bases.withLock { $0.read(next, head: false, task: task) }
        return state
    }

    /// Reads the head, applies `change` to its state (or to `initial` for a thread with no
    /// checkpoint yet), and saves the result after that head. When another writer saved first
    /// (a ``CheckpointError/Code/conflict``), it waits a short random time, reads the new head
    /// and applies `change` again, up to `maxAttempts` times in all. An update either lands
    /// whole, on top of every other writer's, or throws: it is never lost silently.
    ///
    /// `change` may run more than once: keep side effects out of it. It runs in the caller's
    /// isolation (a `@MainActor` caller's closure stays on the main actor).
    ///
    /// - Parameters:
    ///   - initial: the state of a thread that has no checkpoint yet.
    ///   - metadata: stored with the new checkpoint.
    ///   - maxAttempts: how many times to try in all (at least 1; default 10). Between
    ///     attempts it waits a random time of up to 1 ms times the attempt number.
    ///   - change: changes the state in place; throwing from it saves nothing and rethrows.
    /// - Returns: the saved state with its new checkpoint.
    /// - Throws: ``CheckpointError/Code/conflict`` when every attempt lost a race (the message
    ///   says how many; nothing of this update was written);
    ///   ``CheckpointError/Code/invalidArgument`` for `maxAttempts` below 1; what ``load()`` and
    ///   ``save(_:metadata:)-(State,_)`` throw; what `change` throws.
    @discardableResult
    public func update(
        startingWith initial: @autoclosure () -> State, metadata: Metadata = [:], maxAttempts: Int = 10,
        isolation: isolated (any Actor)? = #isolation, _ change: (inout State) async throws -> Void
    ) async throws -> StateSnapshot<State> {
        guard maxAttempts >= 1 else {
            throw CheckpointError(.invalidArgument, "update needs maxAttempts of at least 1")
        }
        var attempt = 1
        while true {
            let snapshot = try await load()
            var state = snapshot?.state ?? initial()
            try await change(&state)
            do {
                return try await save(state, after: snapshot?.base, metadata: metadata, pause: nil)
            } catch let error as CheckpointError where error.code == .conflict {
                guard attempt < maxAttempts else {
                    throw CheckpointError(
                        .conflict,
                        "update gave up after \(maxAttempts) attempts, each losing a race with another writer; nothing of it was written",
                        underlying: error)
                }
                // Writers that collided do not retry in lockstep.
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...(1_000 * attempt))))
                attempt += 1
            }
        }
    }

    /// Saves a snapshot's state after the snapshot's checkpoint, whatever the calling task or
    /// another task read or saved through this façade since.
    ///
    /// - Returns: the saved state with its new checkpoint, for the next save.
    /// - Throws: ``CheckpointError/Code/conflict`` when the snapshot's checkpoint is no longer
    ///   the thread's head (nothing is written; load again); what ``save(_:metadata:)-(State,_)``
    ///   throws.
    @discardableResult
    public func save(_ snapshot: StateSnapshot<State>, metadata: Metadata = [:]) async throws -> StateSnapshot<State> {
        try await save(snapshot.state, after: snapshot.base, metadata: metadata, pause: nil)
    }

    /// Saves a new checkpoint of the state, after the checkpoint the calling task last read or
    /// saved through this façade (see "Concurrency" above).
    ///
    /// - Parameter metadata: plain-text, queryable values stored beside the checkpoint.
    /// - Returns: the new checkpoint's id.
    /// - Throws: ``CheckpointError/Code/conflict`` when another writer moved the thread's head
    ///   (nothing is written; call ``latest()`` and save again, or use
    ///   ``update(startingWith:metadata:maxAttempts:isolation:_:)``);
    ///   ``CheckpointError/Code/encodingFailed`` when the state does not encode (the message
    ///   names the channel and the coding path).
    @discardableResult
    public func save(_ state: State, metadata: Metadata = [:]) async throws -> CheckpointID {
        try await save(state, metadata: metadata, pause: nil)
    }

    /// Saves the state with a question for a person: the thread then waits in the inbox
    /// (``Checkpointer/pausedThreads(_:)``) until someone answers with
    /// ``Checkpointer/resume(thread:namespace:pauseID:with:at:sealing:)`` or ``resume(_:with:at:)``.
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
    public var pause: Pause? { currentBase?.pause }

    /// Where the pause of the checkpoint last read or written stands at `now`: none, waiting
    /// for an answer, answered, or expired unanswered. An agent loop handles all three:
    ///
    /// ```swift
    /// switch thread.pauseStatus() {
    /// case .waiting: return                        // nobody answered yet: stop for now
    /// case .answered: let decision = try thread.answer(as: Decision.self)  // go on from it
    /// case .expired: break                         // nobody will answer: go on without it
    /// case .notPaused: break
    /// }
    /// ```
    ///
    /// - Parameter date: the time to judge expiry at; `nil` (the default) for the façade's clock.
    public func pauseStatus(at date: Date? = nil) -> PauseStatus {
        let base = currentBase
        return PauseStatus(pause: base?.pause, answer: base?.answer, now: date ?? now())
    }

    /// Whether the checkpoint last read pauses the thread and still waits for its answer: it
    /// is unanswered and has not expired (an expired pause accepts no answer, so nothing is
    /// worth waiting for; see ``pauseStatus(at:)``).
    public var isAwaitingAnswer: Bool {
        if case .waiting = pauseStatus() { return true }
        return false
    }

    /// The answer to the pause of the checkpoint last read, decoded; `nil` while unanswered.
    ///
    /// - Throws: ``CheckpointError/Code/decodingFailed`` when the answer is not an `Answer`.
    public func answer<Answer: Decodable>(as type: Answer.Type) throws(CheckpointError) -> Answer? {
        guard let answer = currentBase?.answer else { return nil }
        return try PauseAnswer.decode(answer, as: Answer.self)
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
        guard let snapshot = try await load() else { return nil }
        return try await save(snapshot.state, after: snapshot.base, metadata: metadata, pause: nil, whole: true)
            .checkpointID
    }

    /// A plain save: after what the calling task last read or saved.
    private func save(_ state: State, metadata: Metadata, pause: Pause?) async throws -> CheckpointID {
        try throwIfCancelled()
        let task = FacadeBases<State>.currentTask()
        let parent = try bases.withLock { bases throws(CheckpointError) in try bases.baseForSave(task: task) }
        return try await save(state, after: parent, metadata: metadata, pause: pause).checkpointID
    }

    private func save(
        _ state: State, after parent: FacadeBase<State>?, metadata: Metadata, pause: Pause?, whole: Bool = false
    ) async throws -> StateSnapshot<State> {
        try throwIfCancelled()
        let task = FacadeBases<State>.currentTask()
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
        // Channels stored by another type (a newer deploy's property) stay as they are: a save
        // through a type that lacks them must not remove them.
        let carried = parent.map { Self.carriedChannels(after: $0, writing: channels.writes) } ?? []
        for name in carried { channels.writes[name] = .unchanged }
        var write = CheckpointWrite(
            id: .make(after: parent?.id), thread: id, namespace: namespace, parentID: parent?.id,
            step: (parent?.step ?? -1) + 1, createdAt: now(), metadata: metadata, channels: channels.writes,
            pause: pause)
        write.inlineChannels = channels.inlineChannels
        try await checkpointer.put(write, expecting: parent?.forks == true ? .anyParent : .parentIsHead)
        let next = FacadeBase(
            id: write.id, step: write.step, state: state, values: channels.values, lists: channels.lists,
            listsInState: channels.listsInState, carried: carried, forks: false, metadata: metadata, pause: pause,
            answer: nil)
        bases.withLock { $0.saved(next, task: task) }
        return StateSnapshot(next)
    }

    /// The channels of `parent`'s checkpoint that belong to another state type (this one never
    /// asked for them when it decoded): none when the state is stored whole.
    private static func carriedChannels(after parent: FacadeBase<State>, writing writes: [String: ChannelWrite]) -> Set<String> {
        guard writes[wholeStateChannel] == nil else { return [] }
        return parent.carried.subtracting(writes.keys)
    }

    /// What a save writes: per channel, what changed since `previous` (sealed when the façade
    /// seals), the plaintext forms kept to compare the next save with, and the sealed values
    /// that stay inline.
    private struct Channels {
        var writes: [String: ChannelWrite] = [:]
        var values: [String: Data] = [:]
        var lists: [String: [Data]] = [:]
        var listsInState: Set<String> = []
        var inlineChannels: Set<String> = []
    }

    private static var unknownSealedFields: Int { 0 }
    private static var noSealedFields: Int { 1 }
    private static var hasSealedFields: Int { 2 }

    private func channelWrites(_ state: State, previous: FacadeBase<State>?, useContext: Bool) throws -> Channels {
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
        var channelName: String?
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
                channelName = name
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
                    var prefix = 0
                    var matched = false
                    // A base keeps its elements' bytes only when they cannot be compared by
                    // bits (they hold class instances); otherwise they come from its state.
                    let keepsBytes = !list.channelElementsAreBitComparable
                    var compared: [Data] = []
                    if let previous, previous.lists[name] != nil || previous.listsInState.contains(name) {
                        let oldArray: Any?
                        if case .list(let array)? = previousLists[name] { oldArray = array } else { oldArray = nil }
                        if let length = try list.channelPrefixLength(
                            of: oldArray, encoded: previous.lists[name],
                            comparisonForm: { try encodeElement($0, index: nil, encoder: encoder, context: context).compared })
                        {
                            prefix = length
                            matched = true
                            if keepsBytes {
                                compared = try previous.lists[name]
                                    ?? (0..<length).map {
                                        try encodeElement(list.channelElement(at: $0), index: $0, encoder: encoder, context: context)
                                            .compared
                                    }
                            }
                        }
                    }
                    var stored: [Data] = []
                    stored.reserveCapacity(list.channelElementCount - prefix)
                    if keepsBytes { compared.reserveCapacity(list.channelElementCount) }
                    for index in prefix..<list.channelElementCount {
                        let element: (stored: Data, compared: Data)
                        do {
                            element = try encodeElement(
                                list.channelElement(at: index), index: index, encoder: encoder, context: context)
                        } catch let error as EncodingError {
                            throw ChannelEncodingError(channel: name, index: index, underlying: error)
                        }
                        stored.append(element.stored)
                        if keepsBytes { compared.append(element.compared) }
                    }
                    if keepsBytes { result.lists[name] = compared } else { result.listsInState.insert(name) }
                    if matched {
                        result.writes[name] =
                            prefix == list.channelElementCount ? .unchanged : .append(try seal(stored, of: name, from: prefix))
                    } else {
                        result.writes[name] = .list(try seal(stored, of: name, from: 0))
                    }
                }
            }
            if let versionMarker {
                let name = StateVersions.channel
                result.values[name] = versionMarker
                result.writes[name] =
                    previous?.values[name] == versionMarker ? .unchanged : .value(try seal(versionMarker, .value(channel: name)))
                if sealing?.sealsWholeState == true { result.inlineChannels.insert(name) }
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(
                .encodingFailed,
                "the state of type \(State.self) could not be encoded\(((error as? ChannelEncodingError)?.channel ?? channelName).map { " (channel '\($0)')" } ?? ""): \(Self.describe(encoding: error))",
                underlying: nil)
        }
        return result
    }

    /// One list element as stored (before whole-state sealing) and in the form saves compare:
    /// the same bytes, unless the element has `Sealed` fields, whose plaintext the compared form
    /// holds instead of the (randomized) sealed bytes.
    private func encodeElement(
        _ element: any Encodable, index: Int?, encoder: JSONEncoder, context: SealingContext?
    ) throws -> (stored: Data, compared: Data) {
        guard let context else {
            let data = try FastJSONEncoder().encode(element) ?? encoder.encode(element)
            return (data, data)
        }
        if let data = FastJSONEncoder().encode(element) { return (data, data) }
        context.elementIndex = index
        defer {
            context.elementIndex = nil
            context.comparing = false
        }
        context.comparing = true
        context.comparedPlaintexts.removeAll(keepingCapacity: true)
        var compared = try encoder.encode(element)
        guard !context.comparedPlaintexts.isEmpty else { return (compared, compared) }
        var writer = ByteWriter()
        for plaintext in context.comparedPlaintexts { writer.writeBytes(plaintext) }
        compared.append(0)
        compared.append(writer.data)
        context.comparing = false
        return (try encoder.encode(element), compared)
    }

    /// Keeps the newest `count` checkpoints and every unanswered pause, and removes the rest
    /// from the history; see ``Checkpointer/prune(thread:namespace:keepingLatest:)``.
    @discardableResult
    public func prune(keepingLatest count: Int) async throws -> Int {
        try await checkpointer.prune(thread: id, namespace: namespace, by: .keepingLatest(count))
    }

    /// Removes the checkpoints created before `date`, except the head and every unanswered
    /// pause; see ``Checkpointer/prune(thread:namespace:by:)``.
    @discardableResult
    public func prune(olderThan date: Date) async throws -> Int {
        try await checkpointer.prune(thread: id, namespace: namespace, by: .olderThan(date))
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
        try decodeUpgrading(checkpoint).state
    }

    /// Decodes a checkpoint, upgraded first when it was saved at an older state version.
    private func decodeUpgrading(_ checkpoint: Checkpoint) throws -> (state: State, upgraded: Bool) {
        let (state, upgraded, _) = try decodeRecording(checkpoint)
        return (state, upgraded)
    }

    /// Decodes a checkpoint, upgraded first when it was saved at an older state version; also
    /// returns the stored channels the type did not ask for (none after an upgrade).
    private func decodeRecording(_ checkpoint: Checkpoint) throws -> (state: State, upgraded: Bool, foreign: Set<String>) {
        var (version, channels) = try StateVersions.split(checkpoint.channels)
        let current = versions?.current ?? 1
        guard version <= current else {
            throw CheckpointError(
                .decodingFailed,
                "checkpoint \(checkpoint.id) was saved at state version \(version), newer than this façade's \(current): a newer deploy wrote it"
            )
        }
        do {
            if version < current, let versions {
                channels = try versions.upgrade(channels, from: version)
            }
            let context = sealing.map { SealingContext(sealing: $0, thread: id, namespace: namespace) }
            guard version == current else {
                return (try decoding.decode(State.self, from: channels, context: context), true, [])
            }
            // Upgraded channels are not the stored bytes: only a current-version decode is reused.
            let previous = decoded.withLock { $0 }
            let (state, next) = try decoding.decode(
                State.self, from: channels, context: context, reusing: previous, origins: checkpoint.listOrigins)
            decoded.withLock { $0 = next }
            var foreign = Set(channels.keys).subtracting(next.requested)
            if channels.count == 1, channels[wholeStateChannel] != nil { foreign = [] }
            return (state, false, foreign)
        } catch let error as CheckpointError {
            throw error  // a sealed field that does not open, an upgrade that failed
        } catch {
            var message = "checkpoint \(checkpoint.id) (state version \(version)) does not decode as \(State.self): \(Self.describe(error))"
            if sealing == nil, Self.looksSealed(channels) {
                message += "; its bytes are sealed: open the thread with sealing: (checkpointer.thread(_:as:sealing:))"
            } else if case DecodingError.keyNotFound? = error as? DecodingError {
                message += "; if the type gained a property, register an upgrade that sets it (StateVersions) or make it optional"
            }
            throw CheckpointError(.decodingFailed, message)
        }
    }

    /// Whether some channel holds bytes no JSON value starts with (sealed bytes begin with a
    /// format byte below 0x20), which a façade without sealing cannot read.
    private static func looksSealed(_ channels: [String: ChannelValue]) -> Bool {
        func sealed(_ data: Data) -> Bool {
            guard let first = data.first else { return false }
            return first < 0x20 && first != 0x09 && first != 0x0A && first != 0x0D
        }
        return channels.values.contains { channel in
            switch channel {
            case .value(let data): sealed(data)
            case .list(let elements): elements.first.map(sealed) ?? false
            }
        }
    }

    /// Describes a decoding error by its kind and path only, never by the stored values.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(type(of: error))" }
        switch error {
        case .keyNotFound(let key, let context):
            return context.codingPath.isEmpty ? "missing '\(key.stringValue)'" : "missing '\(key.stringValue)' at \(path(context))"
        case .typeMismatch(let type, let context): return "type mismatch for \(type) at \(path(context))"
        case .valueNotFound(let type, let context): return "missing \(type) at \(path(context))"
        case .dataCorrupted(let context):
            return "a value that does not fit the type at \(path(context)) (an unknown enum case, a number that does not fit, a malformed date or URL)"
        @unknown default: return "decoding failed"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue }.joined(separator: ".")
        return path.isEmpty ? "the top level" : path
    }

    /// Describes an encoding error by its kind and coding path only, never by the values.
    private static func describe(encoding error: any Error) -> String {
        var prefix: [String] = []
        var underlying = error
        if let error = error as? ChannelEncodingError {
            prefix = [error.channel] + (error.index.map { ["#\($0)"] } ?? [])
            underlying = error.underlying
        }
        guard let error = underlying as? EncodingError else { return "\(type(of: underlying))" }
        switch error {
        case .invalidValue(_, let context):
            let path = (prefix + context.codingPath.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue })
                .joined(separator: ".")
            return "\(context.debugDescription) (at \(path.isEmpty ? "the top level" : path))"
        @unknown default:
            return "encoding failed"
        }
    }

    /// The base for a checkpoint that was read: the bytes the next save compares with. Without
    /// sealing they are the stored bytes (nothing is encoded again); with sealing, the
    /// plaintext forms the next save compares with.
    ///
    /// After an upgrade the stored bytes have the old shape: the base then holds none, so that
    /// the next save stores every channel anew.
    private func makeBase(
        _ checkpoint: Checkpoint, state: State, forks: Bool, upgraded: Bool, foreign: Set<String>
    ) throws -> FacadeBase<State> {
        var values: [String: Data] = [:]
        var lists: [String: [Data]] = [:]
        for (name, channel) in checkpoint.channels where !upgraded {
            switch channel {
            case .value(let data): values[name] = data
            case .list(let elements): lists[name] = elements
            }
        }
        if let sealing, !upgraded {
            // Sealed fields are stored under fresh nonces: compare their plaintext instead.
            let context = SealingContext(sealing: sealing, thread: id, namespace: namespace)
            let encoder = context.makeEncoder()
            context.comparing = true
            values = [:]
            lists = [:]
            if let captured = try? capture.capture(state, using: encoder) {
                for (name, channel) in captured {
                    switch channel {
                    case .value(let data):
                        values[name] = data
                    case .list(let list):
                        context.channel = name
                        lists[name] = try? (0..<list.channelElementCount).map { index in
                            try encodeElement(list.channelElement(at: index), index: index, encoder: encoder, context: context)
                                .compared
                        }
                        context.comparing = true
                    }
                }
            }
            if case .value(let marker)? = checkpoint.channels[StateVersions.channel] {
                values[StateVersions.channel] = marker
            }
        }
        // The stored channels of another type are kept by the next save; after an upgrade the
        // upgrade decided the shape.
        let carried = upgraded ? [] : foreign
        return FacadeBase(
            id: checkpoint.id, step: checkpoint.step, state: state, values: values, lists: lists, listsInState: [],
            carried: carried, forks: forks, metadata: checkpoint.metadata, pause: checkpoint.pause, answer: checkpoint.answer)
    }
}

extension Checkpointer {
    /// Makes the typed façade for one thread of this store.
    ///
    /// - Throws: ``CheckpointError/Code/invalidThreadID`` or
    ///   ``CheckpointError/Code/invalidArgument`` for a bad id or namespace.
    public func thread<State: Codable & Sendable>(
        _ id: String, namespace: String = "", as type: State.Type = State.self, sealing: Sealing? = nil,
        versions: StateVersions? = nil
    ) throws(CheckpointError) -> CheckpointThread<State> {
        try CheckpointThread(
            checkpointer: self, id: ThreadID(id), namespace: namespace, sealing: sealing, versions: versions)
    }

    /// Makes the typed façade for one thread of this store; `sealing` seals what it stores.
    public func thread<State: Codable & Sendable>(
        _ id: ThreadID, namespace: String = "", as type: State.Type = State.self, sealing: Sealing? = nil,
        versions: StateVersions? = nil
    ) throws(CheckpointError) -> CheckpointThread<State> {
        try CheckpointThread(checkpointer: self, id: id, namespace: namespace, sealing: sealing, versions: versions)
    }
}

import Checkpointing
import Foundation

private func data(_ text: String) -> Data { Data(text.utf8) }

private func write(
    _ thread: ThreadID, parent: CheckpointID?, step: Int, namespace: String = "", metadata: Metadata = [:],
    _ channels: [String: ChannelWrite]
) -> CheckpointWrite {
    CheckpointWrite(
        thread: thread, namespace: namespace, parentID: parent, step: step, metadata: metadata, channels: channels)
}

extension CheckpointerConformance {
    static let typedRoundTrip = ConformanceCheck("typed state saves and loads") { checkpointer in
        let id = try uniqueThread("typed")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        try await require(try await thread.latest() == nil, "a new thread has no state")
        var state = TestAgentState(messages: [sampleMessage(0)], document: sampleText(2000, seed: 1), turn: 1)
        let first = try await thread.save(state, metadata: ["turn": 1])
        state.messages.append(sampleMessage(1))
        state.turn = 2
        state.note = "café ☕️ — unicode survives"
        let second = try await thread.save(state)
        try await require(first < second, "checkpoint ids increase")

        let reader = try checkpointer.facade(id, as: TestAgentState.self)
        let loaded = try await reader.latest()
        try await require(loaded == state, "a fresh façade reads the saved state back")
        try await require(reader.headID == second, "latest() makes the head the base")
        try await require(try await reader.state(at: first).messages == [sampleMessage(0)], "an old checkpoint keeps its state")
        try await require(try await reader.state(at: first).note == nil, "an absent optional stays absent")
        let head = try await checkpointer.head(thread: id)
        try await require(head?.parentID == first && head?.step == 1, "the head links to its parent and counts steps")
    }

    static let headAndByID = ConformanceCheck("head and by-id reads") { checkpointer in
        let thread = try uniqueThread("head")
        var ids: [CheckpointID] = []
        var parent: CheckpointID?
        for step in 0..<3 {
            let next = write(thread, parent: parent, step: step, ["value": .value(data("v\(step)"))])
            try await checkpointer.put(next)
            ids.append(next.id)
            parent = next.id
        }
        let head = try await checkpointer.head(thread: thread)
        try await require(head?.id == ids[2], "the head is the last checkpoint")
        try await require(head?.channels["value"] == .value(data("v2")), "the head holds the last value")
        for (step, id) in ids.enumerated() {
            let checkpoint = try await checkpointer.checkpoint(thread: thread, namespace: "", id: id)
            try await require(checkpoint?.id == id && checkpoint?.step == step, "checkpoint \(step) reads by id")
            try await require(checkpoint?.channels["value"] == .value(data("v\(step)")), "checkpoint \(step) keeps its value")
            try await require(checkpoint?.parentID == (step == 0 ? nil : ids[step - 1]), "checkpoint \(step) has its parent")
        }
        let missing = try await checkpointer.checkpoint(thread: thread, namespace: "", id: .make())
        try await require(missing == nil, "an unknown id reads as nil")
        try await require(try await checkpointer.head(thread: uniqueThread("none")) == nil, "an unknown thread reads as nil")
        let other = try await checkpointer.checkpoint(thread: uniqueThread("other"), namespace: "", id: ids[0])
        try await require(other == nil, "an id of another thread reads as nil")
    }

    static let historyOrderBeforeLimitFilter = ConformanceCheck("history: order, before, limit, filter") { checkpointer in
        let thread = try uniqueThread("history")
        var ids: [CheckpointID] = []
        var parent: CheckpointID?
        for step in 0..<10 {
            let metadata: Metadata = [
                "step": .int(step), "kind": step % 2 == 0 ? "even" : "odd", "final": .bool(step == 9),
                "weight": .double(Double(step) + 0.5),
            ]
            let next = write(thread, parent: parent, step: step, metadata: metadata, ["value": .value(data("\(step)"))])
            try await checkpointer.put(next)
            ids.append(next.id)
            parent = next.id
        }
        let all = try await checkpointer.history(thread: thread)
        try await require(all.map(\.id) == ids.reversed(), "history lists newest first")
        try await require(all.first?.metadata["kind"] == "odd", "history returns metadata")
        let page = try await checkpointer.history(thread: thread, before: ids[5], limit: 3)
        try await require(page.map(\.id) == [ids[4], ids[3], ids[2]], "before and limit page through history")
        let even = try await checkpointer.history(thread: thread, where: ["kind": "even"])
        try await require(even.map(\.id) == [ids[8], ids[6], ids[4], ids[2], ids[0]], "a string filter matches")
        let both = try await checkpointer.history(thread: thread, where: ["kind": "even", "step": 4])
        try await require(both.map(\.id) == [ids[4]], "every filter entry must match")
        let final = try await checkpointer.history(thread: thread, where: ["final": true])
        try await require(final.map(\.id) == [ids[9]], "a boolean filter matches")
        let weight = try await checkpointer.history(thread: thread, where: ["weight": 3.5])
        try await require(weight.map(\.id) == [ids[3]], "a double filter matches")
        let typed = try await checkpointer.history(thread: thread, where: ["step": "4"])
        try await require(typed.isEmpty, "a filter compares types: the string \"4\" is not the integer 4")
        let none = try await checkpointer.history(thread: thread, where: ["missing": "x"])
        try await require(none.isEmpty, "a filter on an absent key matches nothing")
        try await require(
            try await checkpointer.history(thread: uniqueThread("none")).isEmpty, "an unknown thread has no history")
    }

    static let racingWriters = ConformanceCheck("two racing writers: one wins, the other gets conflict") { checkpointer in
        let id = try uniqueThread("race")
        let setup = try checkpointer.facade(id, as: TestAgentState.self)
        try await setup.save(TestAgentState(messages: [sampleMessage(0)]))
        let first = try checkpointer.facade(id, as: TestAgentState.self)
        let second = try checkpointer.facade(id, as: TestAgentState.self)
        guard var firstState = try await first.latest(), var secondState = try await second.latest() else {
            throw ConformanceFailure(message: "the setup state is missing", file: #filePath, line: #line)
        }
        firstState.messages.append(TestMessage(role: "user", text: "from the first writer"))
        secondState.messages.append(TestMessage(role: "user", text: "from the second writer"))
        async let firstResult = capture { try await first.save(firstState) }
        async let secondResult = capture { try await second.save(secondState) }
        let results = await [firstResult, secondResult]
        let winners = results.filter { if case .success = $0 { true } else { false } }
        try await require(winners.count == 1, "exactly one of two racing writers succeeds, not \(winners.count)")
        for case .failure(let error) in results {
            try await require((error as? CheckpointError)?.code == .conflict, "the loser gets conflict, not \(error)")
        }
        let loser = (try? results[0].get()) == nil ? first : second
        guard var fresh = try await loser.latest() else {
            throw ConformanceFailure(message: "the winner's state is missing", file: #filePath, line: #line)
        }
        try await require(fresh.messages.count == 2, "the winner's checkpoint is the head")
        fresh.messages.append(TestMessage(role: "user", text: "retried"))
        try await loser.save(fresh)
        let final = try await setup.latest()
        try await require(final?.messages.count == 3, "after a retry nothing is lost")
        try await require(try await checkpointer.history(thread: id).count == 3, "the failed write stored no checkpoint")
    }

    static let manyRacingWriters = ConformanceCheck("eight writers retrying on conflict lose nothing") { checkpointer in
        let id = try uniqueThread("many")
        try await checkpointer.facade(id, as: TestAgentState.self).save(TestAgentState())
        try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    let thread = try checkpointer.facade(id, as: TestAgentState.self)
                    var conflicts = 0
                    while true {
                        var state = try await thread.latest() ?? TestAgentState()
                        state.messages.append(TestMessage(role: "writer", text: "\(writer)"))
                        do {
                            try await thread.save(state)
                            return conflicts
                        } catch let error as CheckpointError where error.code == .conflict {
                            conflicts += 1
                            try await require(conflicts < 1000, "a writer keeps losing")
                        }
                    }
                }
            }
            for try await _ in group {}
        }
        let final = try await checkpointer.facade(id, as: TestAgentState.self).latest()
        let writers = Set(final?.messages.map(\.text) ?? [])
        try await require(final?.messages.count == 8 && writers.count == 8, "every writer's message is in the head")
        try await require(try await checkpointer.history(thread: id).count == 9, "exactly one checkpoint per writer")
    }

    static let deliberateFork = ConformanceCheck("a deliberate fork (time travel)") { checkpointer in
        let id = try uniqueThread("fork")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState(messages: [sampleMessage(0)], turn: 0)
        let root = try await thread.save(state)
        state.messages.append(sampleMessage(1))
        state.turn = 1
        let middle = try await thread.save(state)
        state.messages.append(sampleMessage(2))
        state.turn = 2
        let oldHead = try await thread.save(state)

        var rewound = try await thread.rewind(to: middle)
        try await require(rewound.messages.count == 2, "rewinding reads the old state")
        rewound.messages.append(TestMessage(role: "user", text: "a different answer"))
        rewound.turn = 20
        let fork = try await thread.save(rewound)
        let head = try await checkpointer.head(thread: id)
        try await require(head?.id == fork && head?.parentID == middle, "the fork is the head and follows the old checkpoint")
        let forked = try await thread.latest()
        try await require(forked == rewound, "the fork's state reads back")
        let old = try await thread.state(at: oldHead)
        try await require(old == state, "the old branch is still readable")
        let history = try await checkpointer.history(thread: id)
        try await require(Set(history.map(\.id)) == [root, middle, oldHead, fork], "history keeps both branches")

        // A bytes-level fork from the root, and a stale parent without anyParent.
        let stale = write(id, parent: root, step: 1, ["turn": .value(data("9"))])
        try await requireError(.conflict) { try await checkpointer.put(stale) }
        try await checkpointer.put(stale, expecting: .anyParent)
        try await require(try await checkpointer.head(thread: id)?.id == stale.id, "anyParent moves the head")
        let orphan = write(id, parent: .make(), step: 1, ["turn": .value(data("9"))])
        try await requireError(.notFound) { try await checkpointer.put(orphan, expecting: .anyParent) }
    }

    static let namespacesIsolated = ConformanceCheck("namespaces are isolated") { checkpointer in
        let id = try uniqueThread("namespaces")
        let main = try checkpointer.facade(id, as: TestAgentState.self)
        let sub = try checkpointer.facade(id, namespace: "researcher", as: TestAgentState.self)
        try await main.save(TestAgentState(turn: 1))
        try await require(try await sub.latest() == nil, "a namespace does not see another's checkpoints")
        try await sub.save(TestAgentState(turn: 100))
        try await sub.save(TestAgentState(turn: 101))
        try await require(try await main.latest()?.turn == 1, "the default namespace keeps its head")
        try await require(try await sub.latest()?.turn == 101, "the sub-namespace keeps its own head")
        try await require(try await checkpointer.history(thread: id).count == 1, "history is per namespace")
        try await require(
            try await checkpointer.history(thread: id, namespace: "researcher").count == 2, "history is per namespace")
        let mainHead = try await checkpointer.head(thread: id)
        let crossRead = try await checkpointer.checkpoint(thread: id, namespace: "researcher", id: mainHead?.id)
        try await require(crossRead == nil, "an id of one namespace is not found in another")
    }

    static let deleteThread = ConformanceCheck("deleting a thread leaves other threads intact") { checkpointer in
        let doomed = try uniqueThread("doomed")
        let kept = try uniqueThread("kept")
        let state = TestAgentState(messages: (0..<3).map(sampleMessage), document: sampleText(1000, seed: 3))
        try await checkpointer.facade(doomed, as: TestAgentState.self).save(state)
        try await checkpointer.facade(doomed, namespace: "sub", as: TestAgentState.self).save(state)
        try await checkpointer.facade(kept, as: TestAgentState.self).save(state)
        try await checkpointer.deleteThread(doomed)
        try await require(try await checkpointer.head(thread: doomed) == nil, "the deleted thread has no head")
        try await require(try await checkpointer.head(thread: doomed, namespace: "sub") == nil, "every namespace is deleted")
        try await require(try await checkpointer.history(thread: doomed).isEmpty, "the deleted thread has no history")
        let statistics = try await checkpointer.storageStatistics(thread: doomed)
        try await require(
            statistics.checkpointCount == 0 && statistics.payloadByteCount == 0, "no bytes of the thread remain")
        try await require(
            try await checkpointer.facade(kept, as: TestAgentState.self).latest() == state, "other threads are intact")
        try await checkpointer.deleteThread(uniqueThread("never"))
        // The id can be used again after deletion, and nothing of the old thread shows through.
        let reborn = TestAgentState(messages: [sampleMessage(99)], document: "new", turn: 1)
        try await checkpointer.facade(doomed, as: TestAgentState.self).save(reborn)
        try await require(try await checkpointer.history(thread: doomed).count == 1, "a deleted thread starts over")
        try await require(
            try await checkpointer.facade(doomed, as: TestAgentState.self).latest() == reborn,
            "a re-created thread reads its own state")
    }

    static let unchangedChannelsNotStoredAgain = ConformanceCheck(
        "an unchanged channel is not stored again", requires: .deltaStorage
    ) {
        checkpointer in
        let id = try uniqueThread("unchanged")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState(messages: [sampleMessage(0)], document: sampleText(4000, seed: 5), turn: 0)
        try await thread.save(state)
        let before = try await checkpointer.storageStatistics(thread: id)
        try await require(before.payloadByteCount >= 4000, "the document is stored once")
        for turn in 1...5 {
            state.turn = turn
            try await thread.save(state)
        }
        let after = try await checkpointer.storageStatistics(thread: id)
        try await require(after.checkpointCount == 6, "six checkpoints are stored")
        // Each save stores the changed turn (a few bytes; about 45 when sealed), never the document.
        try await require(
            after.payloadByteCount - before.payloadByteCount < 500,
            "five saves of an unchanged 4 KB document added \(after.payloadByteCount - before.payloadByteCount) bytes")
        state.document += " edited"
        try await thread.save(state)
        let edited = try await checkpointer.storageStatistics(thread: id)
        try await require(edited.payloadByteCount - after.payloadByteCount >= 4000, "a changed channel is stored anew")
        try await require(try await thread.latest() == state, "the state reads back whole")
    }

    static let appendedListStoresOnlyNewElements = ConformanceCheck(
        "an appended list stores only new elements", requires: .deltaStorage
    ) {
        checkpointer in
        let id = try uniqueThread("append")
        let thread = try checkpointer.facade(id, as: TestAgentState.self)
        var state = TestAgentState(messages: (0..<50).map(sampleMessage))
        try await thread.save(state)
        let before = try await checkpointer.storageStatistics(thread: id)
        try await require(before.payloadByteCount >= 50 * 300, "the first save stores the whole list")
        var growth: [Int] = []
        var last = before.payloadByteCount
        for index in 50..<60 {
            state.messages.append(sampleMessage(index))
            try await thread.save(state)
            let now = try await checkpointer.storageStatistics(thread: id).payloadByteCount
            growth.append(now - last)
            last = now
        }
        try await require(
            growth.allSatisfy { $0 < 600 }, "each save of one ~330-byte message stored only it; grew by \(growth)")
        try await require(try await thread.latest() == state, "the list reads back whole and in order")
        let reader = try checkpointer.facade(id, as: TestAgentState.self)
        _ = try await reader.latest()
        state.messages.removeFirst()
        try await reader.save(state)
        try await require(try await reader.latest() == state, "a list that shrank is stored whole and reads back")
    }

    static let channelWrites = ConformanceCheck("bytes-level channel writes") { checkpointer in
        let thread = try uniqueThread("channels")
        let first = write(
            thread, parent: nil, step: 0,
            ["log": .list([data("a"), data("b")]), "empty": .list([]), "big": .value(Data(repeating: 7, count: 500))])
        try await checkpointer.put(first)
        let second = write(
            thread, parent: first.id, step: 1,
            ["log": .append([data("c")]), "empty": .append([]), "big": .unchanged, "new": .value(data("n"))])
        try await checkpointer.put(second)
        let third = write(thread, parent: second.id, step: 2, ["log": .append([data("d"), data("e")])])
        try await checkpointer.put(third)
        let head = try await checkpointer.head(thread: thread)
        try await require(head?.channels["log"] == .list(["a", "b", "c", "d", "e"].map(data)), "appends concatenate")
        try await require(head?.channels["big"] == nil, "a channel the write does not name is removed")
        let middle = try await checkpointer.checkpoint(thread: thread, namespace: "", id: second.id)
        try await require(middle?.channels["log"] == .list(["a", "b", "c"].map(data)), "old checkpoints keep their list")
        try await require(middle?.channels["empty"] == .list([]), "an empty list stays empty")
        try await require(middle?.channels["big"] == .value(Data(repeating: 7, count: 500)), "unchanged keeps the value")
        try await require(middle?.channels["new"] == .value(data("n")), "a new channel appears")
        let bad = write(thread, parent: third.id, step: 3, ["nothing": .unchanged])
        try await requireError(.invalidArgument) { try await checkpointer.put(bad) }
        let badAppend = write(thread, parent: third.id, step: 3, ["new": .append([data("x")])])
        try await requireError(.invalidArgument) { try await checkpointer.put(badAppend) }
        try await require(try await checkpointer.head(thread: thread)?.id == third.id, "a rejected write changes nothing")
        let duplicate = CheckpointWrite(
            id: third.id, thread: thread, parentID: third.id, step: 3, channels: [:])
        try await requireError(.invalidArgument) { try await checkpointer.put(duplicate) }
        try await require(try await checkpointer.history(thread: thread).count == 3, "a rejected write stores nothing")
    }

    static let invalidThreadIDs = ConformanceCheck("invalid thread ids and namespaces give typed errors") {
        checkpointer in
        for bad in ["", String(repeating: "x", count: 256), "a\u{0}b", String(repeating: "é", count: 128)] {
            do {
                _ = try ThreadID(bad)
                throw ConformanceFailure(message: "'\(bad.prefix(10))' was accepted", file: #filePath, line: #line)
            } catch let error as CheckpointError {
                try await require(error.code == .invalidThreadID, "a bad thread id gives invalidThreadID, not \(error.code)")
            }
        }
        try await requireThrows { _ = try checkpointer.thread("", as: TestAgentState.self) }
        let longest = try ThreadID(String(repeating: "y", count: 255) + "")
        let thread = try checkpointer.facade(longest, as: TestAgentState.self)
        try await thread.save(TestAgentState(turn: 7))
        try await require(try await thread.latest()?.turn == 7, "a 255-byte id works")
        let badNamespace = write(longest, parent: nil, step: 0, namespace: String(repeating: "n", count: 300), [:])
        try await requireError(.invalidArgument) { try await checkpointer.put(badNamespace) }
    }

    static let invalidArguments = ConformanceCheck("bad arguments give typed errors") { checkpointer in
        let thread = try uniqueThread("arguments")
        try await requireError(.invalidArgument) { try await checkpointer.history(thread: thread, limit: 0) }
        let first = write(thread, parent: nil, step: 0, ["v": .value(data("1"))])
        try await checkpointer.put(first)
        let again = write(thread, parent: nil, step: 0, ["v": .value(data("2"))])
        try await requireError(.conflict) { try await checkpointer.put(again) }
        let unknownParent = write(thread, parent: .make(), step: 1, ["v": .value(data("3"))])
        try await requireError(.conflict) { try await checkpointer.put(unknownParent) }
        try await require(try await checkpointer.head(thread: thread)?.id == first.id, "failed writes leave the head")
    }

    static let corruptChannelBytes = ConformanceCheck("stored bytes that do not decode give decodingFailed") {
        checkpointer in
        let thread = try uniqueThread("corrupt")
        try await checkpointer.put(
            write(thread, parent: nil, step: 0, ["messages": .list([data("{not json")]), "turn": .value(data("1"))]))
        // Unsealed bytes under a sealing façade fail to open; under a plain one, to decode.
        let expected: CheckpointError.Code = CheckpointerConformance.sealing == nil ? .decodingFailed : .decryptionFailed
        let facade = try checkpointer.facade(thread, as: TestAgentState.self)
        let error = try await requireError(expected) { try await facade.latest() }
        try await require(!error.description.contains("not json"), "the error does not print stored bytes")
        let wrongType = try uniqueThread("wrongtype")
        try await checkpointer.put(
            write(wrongType, parent: nil, step: 0, ["messages": .list([]), "turn": .value(data("\"seven\""))]))
        try await requireError(expected) {
            try await checkpointer.facade(wrongType, as: TestAgentState.self).latest()
        }
    }

    static let unsplittableState = ConformanceCheck("a state that is not a keyed container is stored whole") {
        checkpointer in
        let thread = try checkpointer.facade(uniqueThread("whole"), as: [String].self)
        try await thread.save(["one", "two"])
        try await thread.save(["one", "two", "three"])
        try await require(try await thread.latest() == ["one", "two", "three"], "an array state round-trips")
        let scalar = try checkpointer.facade(uniqueThread("scalar"), as: Int.self)
        try await scalar.save(42)
        try await require(try await scalar.latest() == 42, "a scalar state round-trips")
        let nested = try checkpointer.facade(uniqueThread("nested"), as: [String: [Int]].self)
        try await nested.save(["a": [1, 2], "b": []])
        try await require(try await nested.latest() == ["a": [1, 2], "b": []], "a dictionary state round-trips")
    }

    static let healthFollowsTheStore = ConformanceCheck("health() is healthy while open, unavailable once closed") {
        checkpointer in
        let open = await checkpointer.health()
        try await require(open.status == .healthy && open.latency != nil, "an open store answers its probe: \(open)")
        try await checkpointer.close()
        let closed = await checkpointer.health()
        try await require(closed.status == .unavailable && closed.problem != nil, "a closed one says so: \(closed)")
    }

    static let closedCheckpointer = ConformanceCheck("a closed checkpointer fails with closed") { checkpointer in
        let thread = try uniqueThread("closed")
        try await checkpointer.close()
        try await requireError(.closed) { try await checkpointer.head(thread: thread) }
        try await requireError(.closed) {
            try await checkpointer.put(write(thread, parent: nil, step: 0, [:]))
        }
    }
}

private func requireThrows(
    file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) async throws {
    do { try body() } catch { return }
    throw ConformanceFailure(message: "expected an error, but nothing was thrown", file: file, line: line)
}

private func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

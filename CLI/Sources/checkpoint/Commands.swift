import ArgumentParser
import CheckpointSQLite
import Checkpointing
import Foundation

/// A pause's prompt as JSON, opened with the keys when it is sealed.
func promptJSON(_ item: PausedThread, _ sealing: Sealing?) -> JSONValue {
    if let sealing, let opened = try? item.prompt(as: JSONValue.self, sealing: sealing) { return opened }
    if let plain = try? item.prompt(as: JSONValue.self) { return plain }
    return .string(sealing == nil ? "(sealed: pass --keys to open it)" : "(cannot be opened with these keys)")
}

/// JSON on one line, for a table cell.
func compact(_ value: JSONValue) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
}

/// A pause's state at `now`, in the words the tool prints.
func pauseStatus(_ pause: Pause, answered: Bool, now: Date = Date()) -> String {
    answered ? "answered" : pause.isExpired(at: now) ? "expired, unanswered" : "waiting"
}

/// A thread listing item as the tool prints it.
struct ThreadRow: Encodable {
    var thread: String
    var namespace: String
    var head: String
    var lastActivity: Date
    var checkpoints: Int
    var waiting: String?

    init(_ item: ThreadSummary) {
        thread = item.thread.rawValue
        namespace = item.namespace
        head = item.headID.description
        lastActivity = item.lastActivity
        checkpoints = item.checkpointCount
        waiting = item.waitingPause?.reason
    }
}

struct Threads: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List threads by last activity.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only this tenant (the thread id's part before ':').") var tenant: String?
    @Option(help: "Only this namespace.") var namespace: String?
    @Option(help: "Only threads idle since this time (ISO 8601, or an age: 30d, 12h).") var idleSince: String?
    @Option(help: "Only threads active since this time (ISO 8601, or an age).") var activeSince: String?
    @Flag(help: "Only threads waiting for an answer.") var paused = false
    @Flag(help: "Least recently active first.") var oldestFirst = false
    @Option(help: "The most threads to print.") var limit = 50
    @Option(help: "Continue after this cursor (printed after a full page).") var after: String?

    func validate() throws {
        for time in [idleSince, activeSince].compactMap({ $0 }) { _ = try parseTime(time) }
    }

    func run() async throws {
        try await reporting {
            var query = ThreadQuery(
                tenant: tenant, namespace: namespace, activeBefore: try idleSince.map { try parseTime($0) },
                activeSince: try activeSince.map { try parseTime($0) }, paused: paused ? true : nil,
                order: oldestFirst ? .oldestActivityFirst : .newestActivityFirst, limit: limit)
            do {
                query.after = try after.map { try ThreadCursor(token: $0) }
            } catch let error as CheckpointError {
                throw Failure(error)
            }
            let page = try await withStore(store) { checkpointer, _ in try await checkpointer.threads(query) }
            let rows = page.items.map(ThreadRow.init)
            if store.json {
                struct Page: Encodable { var threads: [ThreadRow]; var next: String? }
                try Output.json(Page(threads: rows, next: page.next?.token))
                return
            }
            Output.table(
                ["THREAD", "NAMESPACE", "LAST ACTIVITY", "CHECKPOINTS", "WAITING", "HEAD"],
                rows.map {
                    [$0.thread, $0.namespace, Output.timestamp($0.lastActivity), String($0.checkpoints), $0.waiting ?? "-", $0.head]
                })
            if let next = page.next { Output.write("next: --after \(next.token)") }
        }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a thread's checkpoints, newest first.")
    @OptionGroup var store: StoreOptions
    @OptionGroup var namespace: NamespaceOption
    @Argument(help: "The thread id.") var thread: String
    @Option(help: "Only checkpoints older than this id.") var before: String?
    @Option(help: "The most checkpoints to print.") var limit = 50

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            let before = try before.map(checkpointID)
            let summaries = try await withStore(store) { checkpointer, _ in
                try await checkpointer.history(thread: id, namespace: namespace.namespace, before: before, limit: limit)
            }
            if summaries.isEmpty && before == nil {
                throw Failure(CheckpointError(.notFound, "thread '\(id)' has no checkpoints in namespace '\(namespace.namespace)'"))
            }
            struct Row: Encodable { var id: String; var parent: String?; var step: Int; var createdAt: Date; var metadata: Metadata }
            let rows = summaries.map {
                Row(id: $0.id.description, parent: $0.parentID?.description, step: $0.step, createdAt: $0.createdAt, metadata: $0.metadata)
            }
            if store.json { return try Output.json(rows) }
            Output.table(
                ["CHECKPOINT", "STEP", "CREATED", "PARENT", "METADATA"],
                rows.map { row in
                    [row.id, String(row.step), Output.timestamp(row.createdAt), row.parent ?? "-",
                     row.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
                })
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a checkpoint's state as JSON (the head unless a checkpoint id is given).",
        discussion: "Sealed state is opened with --keys; without them its values print as base64 of the sealed bytes.")
    @OptionGroup var store: StoreOptions
    @OptionGroup var namespace: NamespaceOption
    @Argument(help: "The thread id.") var thread: String
    @Argument(help: "The checkpoint id (default: the head).") var checkpoint: String?

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            let checkpointID = try checkpoint.map(checkpointID)
            try await withStore(store) { checkpointer, sealing in
                guard let stored = try await checkpointer.checkpoint(thread: id, namespace: namespace.namespace, id: checkpointID) else {
                    throw Failure(
                        CheckpointError(
                            .notFound,
                            checkpointID.map { "thread '\(id)' has no checkpoint \($0)" } ?? "thread '\(id)' has no checkpoints"))
                }
                let state: JSONValue
                if let sealing {
                    let facade = try CheckpointThread<JSONValue>(
                        checkpointer: checkpointer, id: id, namespace: namespace.namespace, sealing: sealing)
                    state = try await facade.state(at: stored.id)
                } else {
                    state = .object(stored.channels.mapValues { value in
                        switch value {
                        case .value(let data): (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .string(data.base64EncodedString())
                        case .list(let elements):
                            .array(elements.map { (try? JSONDecoder().decode(JSONValue.self, from: $0)) ?? .string($0.base64EncodedString()) })
                        }
                    })
                }
                struct ShownPause: Encodable {
                    var id: String
                    var reason: String
                    var status: String
                    var prompt: JSONValue
                    var expiresAt: Date?
                    var answer: JSONValue?
                    var answeredAt: Date?
                }
                struct Shown: Encodable {
                    var id: String
                    var parent: String?
                    var step: Int
                    var createdAt: Date
                    var metadata: Metadata
                    var pause: ShownPause?
                    var state: JSONValue
                }
                let pause = stored.pause.map { pause in
                    let item = PausedThread(thread: id, namespace: namespace.namespace, checkpointID: stored.id, pause: pause)
                    return ShownPause(
                        id: pause.id.uuidString.lowercased(), reason: pause.reason,
                        status: pauseStatus(pause, answered: stored.answer != nil), prompt: promptJSON(item, sealing),
                        expiresAt: pause.expiresAt,
                        answer: stored.answer.map { answer in
                            (try? JSONDecoder().decode(JSONValue.self, from: answer.response)) ?? .string("(sealed)")
                        },
                        answeredAt: stored.answer?.answeredAt)
                }
                let shown = Shown(
                    id: stored.id.description, parent: stored.parentID?.description, step: stored.step,
                    createdAt: stored.createdAt, metadata: stored.metadata, pause: pause, state: state)
                if store.json { return try Output.json(shown) }
                Output.write("checkpoint \(shown.id)  step \(shown.step)  created \(Output.timestamp(shown.createdAt))")
                if let parent = shown.parent { Output.write("parent     \(parent)") }
                if let pause {
                    Output.write("pause      \(pause.id) \(pause.reason) (\(pause.status)): \(compact(pause.prompt))")
                    if let answer = pause.answer { Output.write("answer     \(compact(answer))") }
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                Output.write(String(decoding: try encoder.encode(state), as: UTF8.self))
            }
        }
    }
}

struct Inbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the threads waiting for an answer, oldest pause first.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only pauses with this reason.") var reason: String?
    @Option(help: "Only this tenant.") var tenant: String?
    @Flag(help: "Only pauses that have expired unanswered.") var expired = false
    @Option(help: "The most threads to print.") var limit = 50

    func run() async throws {
        try await reporting {
            let query = InboxQuery(reason: reason, tenant: tenant, expiredAsOf: expired ? Date() : nil, limit: limit)
            struct Row: Encodable {
                var thread: String; var namespace: String; var pause: String; var reason: String; var status: String
                var pausedAt: Date; var expiresAt: Date?; var prompt: JSONValue
            }
            let rows = try await withStore(store) { checkpointer, sealing in
                try await checkpointer.pausedThreads(query).items.map {
                    Row(thread: $0.thread.rawValue, namespace: $0.namespace, pause: $0.pause.id.uuidString.lowercased(),
                        reason: $0.pause.reason, status: pauseStatus($0.pause, answered: false), pausedAt: $0.pause.createdAt,
                        expiresAt: $0.pause.expiresAt, prompt: promptJSON($0, sealing))
                }
            }
            if store.json { return try Output.json(rows) }
            Output.table(
                ["THREAD", "NAMESPACE", "REASON", "STATUS", "PAUSED", "EXPIRES", "PAUSE", "PROMPT"],
                rows.map {
                    [$0.thread, $0.namespace, $0.reason, $0.status, Output.timestamp($0.pausedAt),
                     $0.expiresAt.map(Output.timestamp) ?? "-", $0.pause, compact($0.prompt)]
                })
        }
    }
}

struct Answer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a waiting pause, exactly once, with a JSON value (sealed with --keys).")
    @OptionGroup var store: StoreOptions
    @OptionGroup var namespace: NamespaceOption
    @Argument(help: "The thread id.") var thread: String
    @Argument(help: "The pause id (see `checkpoint inbox`).") var pause: String
    @Argument(help: "The answer, as JSON (a string is \"quoted\").") var answer: String

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            guard let pauseID = UUID(uuidString: pause) else {
                throw Failure(CheckpointError(.invalidArgument, "'\(pause)' is not a pause id"))
            }
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(answer.utf8)) else {
                throw Failure(CheckpointError(.invalidArgument, "the answer is not JSON: \(answer)"))
            }
            try await withStore(store) { checkpointer, sealing in
                try await checkpointer.resume(
                    thread: id, namespace: namespace.namespace, pauseID: pauseID, with: value, sealing: sealing)
            }
            if !store.json { Output.write("answered pause \(pauseID) of thread \(id)") } else { try Output.json(["answered": pauseID.uuidString]) }
        }
    }
}

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove old checkpoints of a thread (never the head, never an unanswered pause).")
    @OptionGroup var store: StoreOptions
    @OptionGroup var namespace: NamespaceOption
    @Argument(help: "The thread id.") var thread: String
    @Option(help: "Keep the newest N checkpoints.") var keep: Int?
    @Option(help: "Remove checkpoints created before this time (ISO 8601, or an age: 30d).") var olderThan: String?

    func validate() throws {
        guard (keep == nil) != (olderThan == nil) else { throw ValidationError("give one of --keep and --older-than") }
        if let olderThan { _ = try parseTime(olderThan) }
    }

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            let rule: RetentionRule = if let keep { .keepingLatest(keep) } else { .olderThan(try parseTime(olderThan ?? "")) }
            let removed = try await withStore(store) { checkpointer, _ in
                try await checkpointer.prune(thread: id, namespace: namespace.namespace, by: rule)
            }
            if store.json { return try Output.json(["removed": removed]) }
            Output.write("removed \(counted(removed, "checkpoint")) of thread \(id)")
        }
    }
}

struct DeleteThread: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a thread in every namespace.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The thread id.") var thread: String
    @Flag(help: "Confirm: the thread cannot be restored.") var yes = false

    func validate() throws { guard yes else { throw ValidationError("deleting cannot be undone: add --yes") } }

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            try await withStore(store) { checkpointer, _ in try await checkpointer.deleteThread(id) }
            if store.json { return try Output.json(["deleted": id.rawValue]) }
            Output.write("deleted thread \(id)")
        }
    }
}

struct DeleteTenant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete every thread of a tenant (right to erasure).")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The tenant (the thread ids' part before ':').") var tenant: String
    @Flag(help: "Confirm: the threads cannot be restored.") var yes = false

    func validate() throws { guard yes else { throw ValidationError("deleting cannot be undone: add --yes") } }

    func run() async throws {
        try await reporting {
            let erasure = try await withStore(store) { checkpointer, _ in try await checkpointer.deleteTenant(tenant) }
            if store.json { return try Output.json(["threads": erasure.threadCount, "checkpoints": erasure.checkpointCount]) }
            Output.write("deleted \(counted(erasure.threadCount, "thread")) (\(counted(erasure.checkpointCount, "checkpoint"))) of tenant \(tenant)")
        }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a thread's namespace in the export format (JSON Lines; sealed values stay sealed).")
    @OptionGroup var store: StoreOptions
    @OptionGroup var namespace: NamespaceOption
    @Argument(help: "The thread id.") var thread: String
    @Option(name: .shortAndLong, help: "The file to write (default: standard output).") var output: String?

    func run() async throws {
        try await reporting {
            let id = try threadID(thread)
            let text = try await withStore(store) { checkpointer, _ in
                try await checkpointer.export(thread: id, namespace: namespace.namespace)
            }
            if let output {
                guard FileManager.default.createFile(atPath: output, contents: text) else {
                    throw Failure(CheckpointError(.invalidArgument, "cannot write \(output)"))
                }
            } else {
                FileHandle.standardOutput.write(text)
            }
        }
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a thread export into the store; what it already holds is skipped.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The file to read (default: standard input).") var file: String?

    func run() async throws {
        try await reporting {
            let text: Data
            if let file {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw Failure(CheckpointError(.notFound, "cannot read \(file)"))
                }
                text = data
            } else {
                text = FileHandle.standardInput.readDataToEndOfFile()
            }
            var options = store
            options.creates = true
            let summary = try await withStore(options) { checkpointer, _ in try await checkpointer.importThread(text) }
            if store.json {
                return try Output.json([
                    "checkpoints": summary.checkpointCount, "skipped": summary.skippedCount, "answers": summary.answerCount,
                ])
            }
            Output.write(
                "imported \(counted(summary.checkpointCount, "checkpoint")) of thread \(summary.thread) (\(summary.skippedCount) already there, \(summary.answerCount) answers)")
        }
    }
}

struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy every thread (or a tenant's) from one store to another; run it again to go on after an interruption.")
    @Argument(help: "The source store's URL.") var from: String
    @Argument(help: "The target store's URL.") var to: String
    @Option(help: "Only this tenant.") var tenant: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reporting {
            var source = try StoreOptions.parse(["--url", from])
            source.json = json
            var target = try StoreOptions.parse(["--url", to])
            target.creates = true
            let summary = try await withStore(source) { source, _ in
                try await withStore(target) { target, _ in
                    try await source.copy(to: target, tenant: tenant) { summary in
                        Output.progress("copied \(counted(summary.namespaceCount, "thread")), \(counted(summary.checkpointCount, "checkpoint"))")
                    }
                }
            }
            Output.endProgress()
            if json {
                return try Output.json([
                    "threads": summary.namespaceCount, "checkpoints": summary.checkpointCount, "skipped": summary.skippedCount,
                    "answers": summary.answerCount,
                ])
            }
            Output.write(
                "copied \(counted(summary.namespaceCount, "thread")): \(counted(summary.checkpointCount, "checkpoint")) written, \(summary.skippedCount) already there, \(counted(summary.answerCount, "answer"))")
        }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the schema's migrations and print the schema level.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await reporting {
            // Opening a store applies what is missing, under its lock.
            var options = store
            options.creates = true
            let report = try await withStore(options) { checkpointer, _ in await checkpointer.health() }
            if store.json { return try Output.json(["schema": report.schema ?? "", "status": report.status.rawValue]) }
            Output.write("schema \(report.schema ?? "(none)"), \(report.status.rawValue)")
        }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the store answers; exit 69 when it does not.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        try await reporting {
            let report = try await withStore(store) { checkpointer, _ in await checkpointer.health() }
            if store.json {
                struct Shown: Encodable { var status: String; var latencyMilliseconds: Double?; var schema: String?; var problem: String? }
                try Output.json(
                    Shown(
                        status: report.status.rawValue,
                        latencyMilliseconds: report.latency.map {
                            Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15
                        }, schema: report.schema, problem: report.problem))
            } else {
                Output.write(report.description)
            }
            if report.status == .unavailable { throw ExitCode(69) }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Count threads and checkpoints, or what one thread occupies.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "A thread id (default: the whole store).") var thread: String?
    @Option(help: "Only this tenant.") var tenant: String?

    func run() async throws {
        try await reporting {
            if let thread {
                let id = try threadID(thread)
                let statistics = try await withStore(store) { checkpointer, _ in try await checkpointer.storageStatistics(thread: id) }
                let values = ["checkpoints": statistics.checkpointCount, "values": statistics.payloadCount, "bytes": statistics.payloadByteCount]
                if store.json { return try Output.json(values) }
                Output.write("thread \(id): \(statistics.checkpointCount) checkpoints, \(statistics.payloadCount) stored values, \(statistics.payloadByteCount) bytes")
                return
            }
            var totals = ["threads": 0, "checkpoints": 0, "waiting": 0]
            try await withStore(store) { checkpointer, _ in
                var query = ThreadQuery(tenant: tenant, limit: 500)
                while true {
                    let page = try await checkpointer.threads(query)
                    totals["threads", default: 0] += page.items.count
                    totals["checkpoints", default: 0] += page.items.reduce(0) { $0 + $1.checkpointCount }
                    totals["waiting", default: 0] += page.items.filter { $0.waitingPause != nil }.count
                    guard let next = page.next else { break }
                    query.after = next
                }
            }
            if store.json { return try Output.json(totals) }
            Output.write(
                "\(counted(totals["threads"] ?? 0, "thread")), \(counted(totals["checkpoints"] ?? 0, "checkpoint")), \(totals["waiting"] ?? 0) waiting for an answer")
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read every checkpoint of every thread (checking each row's checksum and each chain), and SQLite's integrity_check; exit 70 on a problem.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only this tenant.") var tenant: String?

    func run() async throws {
        try await reporting {
            var problems: [String] = []
            var read = 0
            var integrity: String?
            // Every read from the primary: a replica a moment behind would report threads and
            // checkpoints deleted since as missing.
            try await ReadConsistency.readingLatest {
                try await withStore(store) { checkpointer, _ in
                    if let sqlite = checkpointer as? SQLiteCheckpointer {
                        let result = try await sqlite.pragma("integrity_check") ?? "no answer"
                        integrity = result
                        if result != "ok" { problems.append("SQLite integrity_check: \(result)") }
                    }
                    var query = ThreadQuery(tenant: tenant, order: .oldestActivityFirst, limit: 200)
                    var threads = 0
                    while true {
                        let page = try await checkpointer.threads(query)
                        for item in page.items {
                            threads += 1
                            do {
                                var before: CheckpointID?
                                var seenHead = false
                                while true {
                                    let summaries = try await checkpointer.history(
                                        thread: item.thread, namespace: item.namespace, before: before, limit: 200)
                                    for summary in summaries {
                                        if summary.id == item.headID { seenHead = true }
                                        guard try await checkpointer.checkpoint(thread: item.thread, namespace: item.namespace, id: summary.id) != nil else {
                                            problems.append("\(item.thread)/\(item.namespace): checkpoint \(summary.id) is listed but cannot be read")
                                            continue
                                        }
                                        read += 1
                                    }
                                    guard summaries.count == 200, let last = summaries.last else { break }
                                    before = last.id
                                }
                                if !seenHead { problems.append("\(item.thread)/\(item.namespace): the head \(item.headID) is not in the history") }
                            } catch let error as CheckpointError {
                                problems.append("\(item.thread)/\(item.namespace): \(error.code): \(error.message)")
                            }
                            Output.progress("verified \(threads) threads, \(read) checkpoints")
                        }
                        guard let next = page.next else { break }
                        query.after = next
                    }
                }
            }
            Output.endProgress()
            if store.json {
                struct Report: Encodable { var checkpoints: Int; var problems: [String] }
                try Output.json(Report(checkpoints: read, problems: problems))
            } else {
                for problem in problems { Output.write("problem: \(problem)") }
                if let integrity { Output.write("SQLite integrity_check: \(integrity)") }
                Output.write("read \(counted(read, "checkpoint")), \(counted(problems.count, "problem"))")
            }
            if !problems.isEmpty { throw ExitCode(70) }
        }
    }
}

struct Sweep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete (or prune to their head) the threads idle longer than a duration; waiting pauses stay.")
    @OptionGroup var store: StoreOptions
    @Option(help: "How long a thread must have been idle: 30d, 12h, 15m, 90s.") var idleFor: String
    @Flag(help: "Keep each idle thread's head instead of deleting it.") var pruneToHead = false
    @Flag(help: "Also sweep threads whose head waits on a pause that has expired.") var removeExpiredPauses = false
    @Option(help: "Namespaces per batch.") var batch = 100

    func validate() throws { _ = try parseDuration(idleFor) }

    func run() async throws {
        try await reporting {
            let policy = IdleThreadPolicy(
                idleFor: try parseDuration(idleFor), action: pruneToHead ? .pruneToHead : .delete,
                removesExpiredPauses: removeExpiredPauses)
            let report = try await withStore(store) { checkpointer, _ in
                try await checkpointer.sweep(policy, batchSize: batch) { total in
                    Output.progress("swept \(counted(total.deletedCount + total.prunedCount, "thread")), \(counted(total.checkpointsRemoved, "checkpoint"))")
                    return true
                }
            }
            Output.endProgress()
            if store.json {
                return try Output.json([
                    "deleted": report.deletedCount, "pruned": report.prunedCount, "checkpoints": report.checkpointsRemoved,
                    "bytes": report.bytesRemoved,
                ])
            }
            Output.write(
                "deleted \(report.deletedCount) and pruned \(report.prunedCount) idle threads: \(report.checkpointsRemoved) checkpoints, \(report.bytesRemoved) bytes")
        }
    }
}

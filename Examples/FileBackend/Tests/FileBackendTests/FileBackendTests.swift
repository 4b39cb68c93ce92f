import Checkpointing
import CheckpointingTestKit
import FileBackend
import Foundation
import Testing

/// A fresh directory for one test, removed after it.
func withDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appending(path: "file-backend-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}

@Suite("FileStorage passes the conformance suite for what it declares")
struct FileBackendConformanceTests {
    // A whole-state store with an inbox: every check but delta storage.
    @Test(arguments: CheckpointerConformance.checks(for: [.inbox]))
    func conforms(_ check: ConformanceCheck) async throws {
        try await withDirectory { directory in
            let checkpointer = StorageCheckpointer(try FileStorage(directory: directory))
            try await check.run(against: checkpointer)
            try await checkpointer.close()
        }
    }
}

struct Counter: Codable, Sendable, Equatable {
    var values: [Int] = []
}

@Suite("FileStorage keeps state across processes and restarts")
struct FileBackendDurabilityTests {
    @Test("two checkpointers on one directory (two processes) lose no update")
    func twoProcessesLoseNothing() async throws {
        try await withDirectory { directory in
            let first = StorageCheckpointer(try FileStorage(directory: directory))
            let second = StorageCheckpointer(try FileStorage(directory: directory))
            let id = try ThreadID("shared")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, checkpointer) in [first, second].enumerated() {
                    group.addTask {
                        let thread = try checkpointer.thread(id, as: Counter.self)
                        for value in 0..<20 {
                            try await thread.update(startingWith: Counter(), maxAttempts: 100) { $0.values.append(index * 100 + value) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let reopened = StorageCheckpointer(try FileStorage(directory: directory))
            let values = try #require(try await reopened.thread(id, as: Counter.self).latest()).values
            #expect(values.count == 40, "every update of both writers is there")
            #expect(Set(values) == Set((0..<20).map { $0 } + (0..<20).map { 100 + $0 }))
            #expect(try await reopened.history(thread: id, limit: 100).count == 40)
        }
    }

    @Test("a damaged thread file gives corruptData, and other threads still read")
    func damagedFileIsCorruptData() async throws {
        try await withDirectory { directory in
            let checkpointer = StorageCheckpointer(try FileStorage(directory: directory))
            let damaged = try checkpointer.thread("damaged", as: Counter.self)
            let intact = try checkpointer.thread("intact", as: Counter.self)
            try await damaged.save(Counter(values: [1]))
            try await intact.save(Counter(values: [2]))
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
            #expect(files.count == 2)
            // Find the damaged thread's file by its content and cut it in half.
            for name in files {
                let url = directory.appending(path: name)
                let data = try Data(contentsOf: url)
                if String(decoding: data, as: UTF8.self).contains("\"damaged\"") {
                    try data.prefix(data.count / 2).write(to: url)
                }
            }
            do {
                _ = try await checkpointer.thread("damaged", as: Counter.self).latest()
                Issue.record("a damaged file read back")
            } catch let error as CheckpointError {
                #expect(error.code == .corruptData)
            }
            #expect(try await checkpointer.thread("intact", as: Counter.self).latest() == Counter(values: [2]))
        }
    }

    @Test("a file that is not the storage's does not break the inbox")
    func strayFileIsIgnored() async throws {
        try await withDirectory { directory in
            let checkpointer = StorageCheckpointer(try FileStorage(directory: directory))
            let thread = try checkpointer.thread("waiting", as: Counter.self)
            let pause = try await thread.pause(Counter(values: [1]), reason: "approve", prompt: "ok?")
            try Data("notes".utf8).write(to: directory.appending(path: "notes.json"))
            let inbox = try await checkpointer.pausedThreads(InboxQuery())
            #expect(inbox.items.map(\.pause.id) == [pause.id])
            try await checkpointer.close()
            do {
                _ = try await checkpointer.pausedThreads(InboxQuery())
                Issue.record("a call after close succeeded")
            } catch let error as CheckpointError {
                #expect(error.code == .closed)
            }
        }
    }
}

@Suite("FileStorage by configuration")
struct FileBackendConfigurationTests {
    @Test("files:///dir opens it; a malformed files: URL is invalidConfiguration")
    func opensByURL() async throws {
        try await withDirectory { directory in
            let configuration = try CheckpointerConfiguration(url: "files://\(directory.path)")
            let checkpointer = try await configuration.makeCheckpointer(backends: [FileStorage.backend])
            try await checkpointer.thread("configured", as: Counter.self).save(Counter(values: [7]))
            let again = try await configuration.makeCheckpointer(backends: [FileStorage.backend])
            #expect(try await again.thread("configured", as: Counter.self).latest() == Counter(values: [7]))
            for bad in ["files://host/dir", "files:relative", "files:///dir?sync=off", "files:///", "files:///tmp/a/%2e%2e/b"] {
                do {
                    _ = try await CheckpointerConfiguration(url: bad).makeCheckpointer(backends: [FileStorage.backend])
                    Issue.record("\(bad) was accepted")
                } catch let error as CheckpointError {
                    #expect(error.code == .invalidConfiguration, "\(bad)")
                }
            }
        }
    }
}

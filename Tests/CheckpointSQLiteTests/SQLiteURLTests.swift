import CheckpointSQLite
import Checkpointing
import CheckpointingTestKit
import Foundation
import Testing

/// A sqlite URL names one local file and its settings; anything else in it is an error.
@Suite("SQLite URLs")
struct SQLiteURLTests {
    @Test(arguments: [
        "sqlite://u:p@/a.db", "sqlite://u@localhost/a.db", "sqlite://localhost:5/a.db", "sqlite:///a.db?busy_timeout_ms=3600001",
        "sqlite:///a.db?readers=65", "sqlite:///a.db?content_cache_bytes=-1", "sqlite:///dir/%ZZ.db", "sqlite:///dir/a%00b.db",
        "sqlite:///a.db?synchronous=full&synchronous=off", "sqlite:///dir/a#b.db", "sqlite://a,b/x.db",
    ])
    func badURLsAreRefused(_ url: String) throws {
        let error = #expect(throws: CheckpointError.self) {
            try SQLiteCheckpointer.Configuration(url: CheckpointerURL(url))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.isRetryable == false)
    }

    @Test(arguments: [
        "sqlite:///var/lib/agent.db", "sqlite://./agent.db", "sqlite:///var/lib/my%20agents/a.db",
        "sqlite:///a.db?synchronous=full&busy_timeout_ms=250&readers=4&wal_checkpoint_pages=5000&idle_spin_us=0&content_cache_bytes=0",
    ])
    func theDescriptionIsTheURLItWasReadFrom(_ url: String) throws {
        let configuration = try SQLiteCheckpointer.Configuration(url: CheckpointerURL(url))
        #expect(configuration.description == url)
        let again = try SQLiteCheckpointer.Configuration(url: CheckpointerURL(configuration.description))
        #expect(again.path == configuration.path)
        #expect(again.description == url)
    }

    @Test func aPathWithBadPercentEncodingOpensNothing() async throws {
        let database = try TemporaryDatabase()
        let error = await #expect(throws: CheckpointError.self) {
            try await CheckpointerConfiguration(url: "sqlite://\(database.directory.path)/%ZZ.db")
                .makeCheckpointer(backends: [SQLiteCheckpointer.backend])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(try FileManager.default.contentsOfDirectory(atPath: database.directory.path).isEmpty)
    }

    @Test func aNULInThePathOpensNothing() async throws {
        let database = try TemporaryDatabase()
        let error = await #expect(throws: CheckpointError.self) {
            try await CheckpointerConfiguration(url: "sqlite://\(database.directory.path)/a%00b.db")
                .makeCheckpointer(backends: [SQLiteCheckpointer.backend])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(try FileManager.default.contentsOfDirectory(atPath: database.directory.path).isEmpty, "no file 'a'")
    }

    /// SQLite reads a filename that starts with `file:` as a URI of its own (with `?mode=`,
    /// `?vfs=` and the like); a configured path is always a file's path.
    @Test func aPathThatStartsWithFileIsAPathNotAnSQLiteURI() async throws {
        let database = try TemporaryDatabase()
        let error = await #expect(throws: CheckpointError.self) {
            try await CheckpointerConfiguration(url: "sqlite:file:\(database.path)")
                .makeCheckpointer(backends: [SQLiteCheckpointer.backend])
        }
        #expect(error?.code == .invalidConfiguration, "a relative path whose first directory, 'file:', does not exist")
        #expect(!FileManager.default.fileExists(atPath: database.path), "nothing was opened at the URI's path")
    }
}

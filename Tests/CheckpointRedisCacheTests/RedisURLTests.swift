import CheckpointRedisCache
import Checkpointing
import CheckpointingTestKit
import Testing

/// A Redis URL is checked whole before the cache is used: a bad part is
/// `invalidConfiguration`, never silently replaced by a default.
@Suite("Redis URLs")
struct RedisURLTests {
    @Test(arguments: [
        "redis://:s3cr@/0", "redis://:s3cr@:6379/0", "redis:///0", "redis://:s3cr@h:0/0", "redis://:s3cr@h:65536/0",
        "redis://h/2000000", "redis://h/0?pool_max=257", "redis://h/0?prefix=a%00b", "redis://h/0?ttl=5&ttl=6",
        "redis://h/0?timeout_ms=%ZZ", "redis://h/0?inline_reply_wait_us=10001", "redis://:s3cr@a:6379,b:6379/0",
        "redis://h/0?idle_timeout=-1", "redis://h/0?idle_timeout=86401",
    ])
    func badURLsAreRefused(_ url: String) throws {
        let error = #expect(throws: CheckpointError.self) {
            try RedisCachedCheckpointer.Configuration(url: CheckpointerURL(url))
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.isRetryable == false)
        #expect(error?.description.contains("s3cr") == false)
    }

    @Test func theInlineReplyWaitIsReadInMicroseconds() throws {
        let configuration = try RedisCachedCheckpointer.Configuration(url: CheckpointerURL("redis://h/0?inline_reply_wait_us=0"))
        #expect(configuration.inlineReplyWait == .zero)
        #expect(try RedisCachedCheckpointer.Configuration(url: CheckpointerURL("redis://h/0")).inlineReplyWait == .microseconds(500))
    }

    @Test func theIdleTimeoutIsReadInSecondsAndZeroIsNone() throws {
        #expect(try RedisCachedCheckpointer.Configuration(url: CheckpointerURL("redis://h/0")).idleTimeout == .seconds(300))
        let set = try RedisCachedCheckpointer.Configuration(url: CheckpointerURL("redis://h/0?idle_timeout=30"))
        #expect(set.idleTimeout == .seconds(30))
        #expect(set.description.contains("idle_timeout=30"))
        #expect(try RedisCachedCheckpointer.Configuration(url: CheckpointerURL("redis://h/0?idle_timeout=0")).idleTimeout == nil)
    }

    @Test func aPortOutOfRangeSetInCodeIsRefusedToo() async throws {
        let error = try await requireError(.invalidConfiguration) {
            try await RedisCachedCheckpointer(base: InMemoryCheckpointer(), configuration: .init(host: "h", port: 70000))
        }
        #expect(error.message.contains("port"))
        var configuration = RedisCachedCheckpointer.Configuration(host: "h")
        configuration.idleTimeout = .zero
        let idle = try await requireError(.invalidConfiguration) {
            try await RedisCachedCheckpointer(base: InMemoryCheckpointer(), configuration: configuration)
        }
        #expect(idle.message.contains("idleTimeout"))
    }
}

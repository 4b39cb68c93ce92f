import Checkpointing
import Testing

/// Every part of a checkpointer URL is checked before it is used: a malformed URL fails with
/// `invalidConfiguration` (not retryable) and a message naming the part, never the password.
@Suite("URL validation")
struct URLValidationTests {
    /// A URL and the words its error must name.
    struct BadURL: Sendable, CustomTestStringConvertible {
        var text: String
        var names: [String]
        init(_ text: String, _ names: String...) {
            self.text = text
            self.names = names
        }
        var testDescription: String { text }
    }

    static let password = "s3cr"

    @Test(arguments: [
        // Percent-encoding: '%' must be followed by two hex digits, in every part.
        BadURL("sqlite:///dir/%ZZ.db", "path", "percent"),
        BadURL("sqlite:///dir/a%2", "path", "percent"),
        BadURL("postgres://u:\(password)%ZZ@h/db", "password", "percent"),
        BadURL("postgres://u%G1:\(password)@h/db", "user", "percent"),
        BadURL("postgres://u:\(password)@h/db?application_name=a%ZZ", "application_name", "percent"),
        BadURL("redis://:\(password)@h/0?prefix%Z=x", "parameter", "percent"),
        // NUL anywhere: C strings end there, so the path (or host, or name) would be cut short.
        BadURL("sqlite:///dir/a%00b.db", "path", "NUL"),
        BadURL("postgres://u:\(password)@h%00x/db", "host", "NUL"),
        BadURL("postgres://u%00x:\(password)@h/db", "user", "NUL"),
        BadURL("postgres://u:\(password)%00x@h/db", "password", "NUL"),
        BadURL("postgres://u:\(password)@h/d%00b", "path", "NUL"),
        BadURL("postgres://u:\(password)@h/db?application_name=a%00b", "application_name", "NUL"),
        // Ports: 1 to 65535, digits only.
        BadURL("postgres://u:\(password)@127.0.0.1:99999/db", "port", "65535"),
        BadURL("postgres://u:\(password)@h:0/db", "port", "65535"),
        BadURL("postgres://u:\(password)@h:65536/db", "port", "65535"),
        BadURL("postgres://u:\(password)@h:99999999999999999999/db", "port", "65535"),
        BadURL("redis://:\(password)@h:70000/0", "port", "65535"),
        // A parameter given twice is ambiguous.
        BadURL("postgres://u:\(password)@h/db?pool_max=1&pool_max=2", "pool_max", "twice"),
        BadURL("sqlite:///a.db?readers=2&readers=3", "readers", "twice"),
        BadURL("redis://:\(password)@h/0?ttl=1&ttl=2", "ttl", "twice"),
        // A fragment would silently cut a path short ('#' in a path is written %23).
        BadURL("sqlite:///dir/a#b.db", "fragment"),
        BadURL("postgres://u:\(password)@h/db#x", "fragment"),
    ])
    func malformedPartsAreNamed(_ bad: BadURL) throws {
        let error = #expect(throws: CheckpointError.self) { try CheckpointerConfiguration(url: bad.text) }
        let found = try #require(error)
        #expect(found.code == .invalidConfiguration, "\(found)")
        #expect(!found.isRetryable)
        for name in bad.names { #expect(found.message.contains(name), "\(found)") }
        #expect(!found.description.contains(Self.password), "\(found)")
    }

    @Test(arguments: ["memory://host", "memory:/path", "memory://u:\(password)@h", "memory://h:5", "memory:?a=1"])
    func aMemoryURLTakesNothingAfterItsScheme(_ text: String) async throws {
        let configuration = try CheckpointerConfiguration(url: text)
        let error = await #expect(throws: CheckpointError.self) { try await configuration.makeCheckpointer() }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.isRetryable == false)
        #expect(error?.description.contains(Self.password) == false)
    }

    @Test func wellFormedURLsStillParse() throws {
        for text in [
            "memory:", "memory://", "sqlite:///var/lib/a%20b.db", "sqlite://./rel.db", "sqlite:rel/a.db",
            "postgres://u:p%40ss@h:5432/db?pool_max=2", "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u@h:/db", "redis://:pw@cache:6379/0?ttl=300&prefix=ckpt", "sqlite:///a.db?readers=2&&synchronous=full&",
        ] {
            #expect(throws: Never.self, "\(text)") { try CheckpointerConfiguration(url: text) }
        }
        let url = try CheckpointerURL("postgres://u:p%40ss@h:5432/db?pool_max=2&sslpassword=k3y")
        #expect(url.password == "p@ss")
        #expect(url.port == 5432)
        #expect(url.parameters == ["pool_max": "2", "sslpassword": "k3y"])
        #expect(!url.description.contains("p@ss") && !url.description.contains("p%40ss"), "\(url)")
        #expect(!url.description.contains("k3y"), "a TLS key's password is a password too: \(url)")
    }

    /// Found by scripts/fuzz.sh (url-sqlite): the error message of a text that is not a URL
    /// trapped on a range from the '://' back to an '@' written before it.
    @Test(arguments: ["a@b://[", "u \(password)@h://x", "é:\(password)@h://x?y", "@://"])
    func anAtBeforeTheSchemeSeparatorIsRefusedWithoutCrashing(_ text: String) {
        let error = #expect(throws: CheckpointError.self) { try CheckpointerURL(text) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.description.contains(Self.password) == false, "\(String(describing: error))")
    }

    /// Found by scripts/fuzz.sh --libfuzzer (url-sqlite, url-memory): the parts were checked
    /// after a split by Characters, and a ':' followed by a combining mark is one Character, so
    /// the check looked at other parts than URLComponents read and let a NUL through.
    @Test(arguments: [
        BadURL("sqlite:\u{301}/tmp/a\u{0}b.db:x", "path", "NUL"),
        BadURL("sqlite:\u{746}\u{0}\u{0}:?5h@x", "path", "NUL"),
        BadURL("sqlite:///a.db?readers=2&\u{301}x=%00", "NUL"),
    ])
    func partsAreSplitByScalarsNotCharacters(_ bad: BadURL) throws {
        let error = #expect(throws: CheckpointError.self) { try CheckpointerURL(bad.text) }
        let found = try #require(error)
        #expect(found.code == .invalidConfiguration, "\(found)")
        for name in bad.names { #expect(found.message.contains(name), "\(found)") }
        #expect(!found.description.contains(Self.password), "\(found)")
    }

    /// Found by scripts/fuzz.sh --libfuzzer (url-postgres): percent-encoding that is not UTF-8
    /// once decoded read as no user (or an empty path) at all.
    @Test(arguments: [
        BadURL("postgres://agent%8Aadmin:\(password)@h/db", "user", "UTF-8"),
        BadURL("sqlite:///a%FF.db", "path", "UTF-8"),
        BadURL("postgres://u:\(password)%C3@h/db", "password", "UTF-8"),
        BadURL("redis://h/0?prefix=%E2%82", "prefix", "UTF-8"),
    ])
    func percentEncodingMustDecodeToUTF8(_ bad: BadURL) throws {
        let error = #expect(throws: CheckpointError.self) { try CheckpointerURL(bad.text) }
        let found = try #require(error)
        #expect(found.code == .invalidConfiguration, "\(found)")
        for name in bad.names { #expect(found.message.contains(name), "\(found)") }
        #expect(!found.description.contains(Self.password), "\(found)")
    }

    /// Found by scripts/fuzz.sh (url-postgres): URLComponents leaves a ':' in the user as it is,
    /// so the description read as another user with a password.
    @Test func aUserWithAColonIsDescribedAsItIs() throws {
        let url = try CheckpointerURL("postgres://agent%3Aadmin:\(Self.password)@h/db")
        #expect(url.user == "agent:admin")
        let described = try CheckpointerURL(url.description)
        #expect(described.user == "agent:admin", "\(url)")
        #expect(described.password == "***", "\(url)")
        #expect(!url.description.contains(Self.password))
    }

    @Test func anUnparsableURLNeverEchoesItsPassword() {
        for text in ["postgres://agent:\(Self.password)@[oops", "postgres://u:p@h:5432x/db?sslpassword=\(Self.password)", "postgres://u:\(Self.password)@h:x/db"] {
            let error = #expect(throws: CheckpointError.self) { try CheckpointerURL(text) }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.description.contains(Self.password) == false, "\(String(describing: error))")
        }
    }
}

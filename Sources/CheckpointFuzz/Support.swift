import Checkpointing
import Foundation

/// Something wrong with how a target handled an input, other than a crash or a hang (which end
/// the process): an error that is not the typed one, or a broken round trip.
struct Finding: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// What one input did, in a form that two runs can compare: the input as fresh `Data` and the
/// same bytes as a slice (a `Data` whose indices do not start at 0) must do the same.
enum Outcome: Equatable {
    /// Rejected with a typed error of this code.
    case rejected(String)
    /// Decoded; a canonical form of what was decoded.
    case decoded(Data)

    var isDecoded: Bool {
        if case .decoded = self { return true }
        return false
    }
}

/// One fuzz target: a decoder of stored bytes or a parser of configuration text.
struct FuzzTarget: Sendable {
    /// The name used by `--target` and as the corpus folder.
    let name: String
    /// What it feeds the bytes to.
    let about: String
    /// Valid encodings made by the library, and edge cases.
    let seeds: @Sendable () throws -> [Data]
    /// Text pieces that mutations insert (URL punctuation, JSON tokens); may be empty.
    let dictionary: [[UInt8]]
    /// Runs one input. Throws a ``Finding`` when the library mishandled it.
    let run: @Sendable (Data) throws(Finding) -> Outcome

    init(
        _ name: String, _ about: String, dictionary: [String] = [], seeds: @escaping @Sendable () throws -> [Data],
        run: @escaping @Sendable (Data) throws(Finding) -> Outcome
    ) {
        self.name = name
        self.about = about
        self.seeds = seeds
        self.dictionary = dictionary.map { Array($0.utf8) }
        self.run = run
    }

    /// Runs the input as fresh `Data` and as a slice, and checks that both do the same.
    func runBothWays(_ input: Data) throws(Finding) -> Outcome {
        let fresh = try run(Data(input))
        var padded = Data([0xA5])
        padded.append(input)
        let slice = padded[(padded.startIndex + 1)...]
        let sliced = try run(slice)
        guard fresh == sliced else {
            throw Finding("the same bytes give \(fresh) as fresh Data but \(sliced) as a slice")
        }
        return fresh
    }
}

/// Runs `body`: its value, or the error when it threw a ``CheckpointError`` with one of
/// `codes`. Any other error is a finding.
func attempt<T>(
    _ what: String, _ codes: Set<CheckpointError.Code>, _ body: () throws -> T
) throws(Finding) -> Result<T, CheckpointError> {
    do {
        return .success(try body())
    } catch let error as CheckpointError {
        guard codes.contains(error.code) else {
            throw Finding("\(what) threw \(error.code), not \(codes.map(\.description).sorted()): \(error)")
        }
        guard !error.message.isEmpty else { throw Finding("\(what) threw \(error.code) without a message") }
        return .failure(error)
    } catch {
        throw Finding("\(what) threw \(type(of: error)), not a CheckpointError: \(error)")
    }
}

/// Runs `body`, which must succeed (a step of a round trip).
func must<T>(_ what: String, _ body: () throws -> T) throws(Finding) -> T {
    do {
        return try body()
    } catch {
        throw Finding("\(what) failed: \(error)")
    }
}

/// Fails with `message` unless `condition` holds.
func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(Finding) {
    guard condition else { throw Finding(message()) }
}

/// The rejected outcome of an error.
func rejected(_ error: CheckpointError) -> Outcome { .rejected(error.code.description) }

/// Builds the canonical form of a decoded value.
struct Fingerprint {
    private var writer = ByteWriter()

    mutating func add(_ data: Data) { writer.writeBytes(data) }
    mutating func add(_ text: String) { writer.writeBytes(Data(text.utf8)) }
    mutating func add(_ value: UInt64) { writer.writeVarint(value) }
    mutating func add(_ id: CheckpointID?) {
        guard let id else { return writer.writeByte(0) }
        writer.writeByte(1)
        writer.writeID(id)
    }

    var data: Data { writer.data }
    var outcome: Outcome { .decoded(writer.data) }

    /// A decoded outcome when the main decoder accepted the input, else a rejected one (which
    /// still compares all that was found).
    func outcome(decoded: Bool) -> Outcome { decoded ? .decoded(writer.data) : .rejected(writer.data.base64EncodedString()) }
}

/// The fixed ids, thread and times the seeds are made with and the targets decode with, so that
/// the committed corpus stays valid.
enum Fixed {
    /// The checkpoint that holds a manifest (its owner) or a row's blobs.
    static let owner = CheckpointID(high: 0x0193_8a00_0000_7123, low: 0x8000_0000_0000_0001)
    /// Its parent.
    static let parent = CheckpointID(high: 0x0193_8a00_0000_7122, low: 0x8000_0000_0000_0002)
    /// An older checkpoint.
    static let older = CheckpointID(high: 0x0193_8a00_0000_7121, low: 0x8000_0000_0000_0003)
    /// The thread of every decoded checkpoint.
    static let thread = threadID("tenant-7:fuzz")
    /// Its namespace.
    static let namespace = "sub"
    /// A time with a fraction of a second.
    static let date = Date(timeIntervalSince1970: 1_764_000_000.125)
    /// The run id of the Redis server the cache entries are checked against.
    static let runID = Data(repeating: UInt8(ascii: "a"), count: 40)

    /// A thread id the harness knows to be valid.
    static func threadID(_ text: String) -> ThreadID {
        do {
            return try ThreadID(text)
        } catch {
            fatalError("the fuzz harness's thread id '\(text)' is invalid: \(error)")
        }
    }

    /// The id of row `index` of a table the materialize target builds (ordered by index).
    static func rowID(_ index: UInt8) -> CheckpointID {
        CheckpointID(high: 0x0193_8a00_0000_7000 | UInt64(index), low: 0x8000_0000_0000_0000 | UInt64(index))
    }
}

/// The text form of bytes (lossy for invalid UTF-8, as a configuration value read from the
/// environment would be).
func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

/// Bytes of text.
func bytes(_ text: String) -> Data { Data(text.utf8) }

/// Whether two dates are the same time, as their binary forms go: the same bits, both NaN, or
/// within rounding of a conversion between reference dates.
func sameTime(_ a: Date, _ b: Date) -> Bool {
    let x = a.timeIntervalSinceReferenceDate
    let y = b.timeIntervalSinceReferenceDate
    if x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN) || x == y { return true }
    guard x.isFinite, y.isFinite else { return false }
    return abs(x - y) <= max(1e-6, abs(x) * 1e-15) + 1e-6
}

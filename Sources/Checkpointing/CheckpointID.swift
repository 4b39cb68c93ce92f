import Foundation
import Synchronization

/// A 128-bit, time-ordered checkpoint identifier in the UUIDv7 layout.
///
/// The first 48 bits are milliseconds since the Unix epoch, then the version, a 12-bit
/// counter that keeps ids made in the same millisecond by one process increasing, the
/// variant and 62 random bits. Ordering ids (``Comparable``, their ``bytes`` or their text
/// form) is ordering by creation, also across processes whose clocks agree.
public struct CheckpointID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The 64 most significant bits.
    public let high: UInt64
    /// The 64 least significant bits.
    public let low: UInt64

    /// Creates an id from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Creates an id from its 16 big-endian bytes.
    ///
    /// - Throws: ``CheckpointError/Code/corruptData`` when `bytes` does not hold exactly 16 bytes.
    public init<Bytes: Collection<UInt8>>(bytes: Bytes) throws(CheckpointError) {
        let fast = bytes.withContiguousStorageIfAvailable { buffer in
            buffer.count == 16 ? CheckpointID(UnsafeRawBufferPointer(buffer)) : nil
        }
        if let fast = fast {
            guard let id = fast else {
                throw CheckpointError(.corruptData, "a checkpoint id has 16 bytes, not \(bytes.count)")
            }
            self = id
            return
        }
        let array = Array(bytes)
        guard array.count == 16 else {
            throw CheckpointError(.corruptData, "a checkpoint id has 16 bytes, not \(array.count)")
        }
        self = array.withUnsafeBytes { CheckpointID($0) }
    }

    /// Reads 16 big-endian bytes; the caller checks the count.
    package init(_ buffer: UnsafeRawBufferPointer) {
        self.init(
            high: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
            low: UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
    }

    /// Parses the text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal, either case).
    ///
    /// - Throws: ``CheckpointError/Code/invalidArgument`` when the text is not such an id.
    public init(_ text: String) throws(CheckpointError) {
        var digits: [UInt8] = []
        digits.reserveCapacity(32)
        for (offset, character) in text.utf8.enumerated() {
            if character == UInt8(ascii: "-"), [8, 13, 18, 23].contains(offset) { continue }
            guard let value = Self.hexValue(character) else {
                throw CheckpointError(.invalidArgument, "'\(text.prefix(40))' is not a checkpoint id")
            }
            digits.append(value)
        }
        guard digits.count == 32, text.utf8.count == 36 else {
            throw CheckpointError(.invalidArgument, "'\(text.prefix(40))' is not a checkpoint id")
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (offset, digit) in digits.enumerated() {
            if offset < 16 { high = high << 4 | UInt64(digit) } else { low = low << 4 | UInt64(digit) }
        }
        self.init(high: high, low: low)
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The 16 big-endian bytes; byte-wise order equals id order.
    public var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            result[index] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(index)))
            result[index + 8] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(index)))
        }
        return result
    }

    /// The time the id was made, to the millisecond.
    public var timestamp: Date {
        Date(timeIntervalSince1970: Double(high >> 16) / 1000)
    }

    /// The lowercase text form, which sorts like the id.
    public var description: String {
        let hex = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(36)
        for (offset, byte) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(offset) { characters.append(UInt8(ascii: "-")) }
            characters.append(hex[Int(byte >> 4)])
            characters.append(hex[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// Orders ids by creation time, then by counter and random bits.
    public static func < (lhs: CheckpointID, rhs: CheckpointID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// Decodes the text form.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self = try CheckpointID(try container.decode(String.self))
    }

    /// Encodes the text form.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    // MARK: Generation

    private struct GeneratorState {
        var milliseconds: UInt64 = 0
        var counter: UInt64 = 0
    }

    private static let generator = Mutex(GeneratorState())

    /// Makes a new id that is greater than `previous` as well as every id this process made
    /// before, even when `previous` came from a process whose clock runs ahead.
    ///
    /// Backends require a checkpoint's id to be newer than its thread's head: make the id of a
    /// checkpoint that follows `previous` with this.
    public static func make(after previous: CheckpointID?, now: Date = Date()) -> CheckpointID {
        let candidate = make(now: now)
        guard let previous, candidate <= previous else { return candidate }
        let counter = previous.high & 0xfff
        let high =
            counter < 0xfff
            ? previous.high + 1
            : ((previous.high >> 16) + 1) << 16 | 0x7000
        let low = 0x8000_0000_0000_0000 | (UInt64.random(in: 0...UInt64.max) & 0x3fff_ffff_ffff_ffff)
        return CheckpointID(high: high, low: low)
    }

    /// Makes a new id, greater than every id this process made before.
    ///
    /// - Parameter now: the creation time; defaults to the system clock.
    public static func make(now: Date = Date()) -> CheckpointID {
        let wallClock = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        let (milliseconds, counter) = generator.withLock { state -> (UInt64, UInt64) in
            if wallClock > state.milliseconds {
                state.milliseconds = wallClock
                state.counter = UInt64.random(in: 0..<0x200)  // leaves room to count up
            } else {
                state.counter += 1
                if state.counter > 0xfff {  // counter exhausted: borrow the next millisecond
                    state.milliseconds += 1
                    state.counter = 0
                }
            }
            return (state.milliseconds, state.counter)
        }
        let high = (milliseconds & 0xffff_ffff_ffff) << 16 | 0x7000 | counter
        let low = 0x8000_0000_0000_0000 | (UInt64.random(in: 0...UInt64.max) & 0x3fff_ffff_ffff_ffff)
        return CheckpointID(high: high, low: low)
    }
}

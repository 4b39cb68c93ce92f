import Foundation
import Checkpointing

/// Seeded mutations of inputs: bit flips, interesting bytes, inserted and deleted bytes,
/// truncation, duplicated chunks, splices with other inputs, varints at length-field extremes,
/// interesting 64-bit words, and the target's dictionary of text pieces.
struct Mutator {
    var generator: SplitMix64
    let maximumLength: Int
    let dictionary: [[UInt8]]

    private static let interestingBytes: [UInt8] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0x81, 0xFE, 0xFF, 0x10, 0x20, 0x22, 0x25, 0x2F, 0x30, 0x3A, 0x3D,
        0x3F, 0x40, 0x23, 0x26, 0x5B, 0x5D, 0x7B, 0x7D, 0xC0, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF8,
    ]

    /// Varints a length or count field may hold: the extremes, and values just past the input.
    private func extremeVarints(length: Int) -> [[UInt8]] {
        let values: [UInt64] = [
            0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, UInt64(Int32.max), UInt64(UInt32.max), UInt64(Int.max) - 1,
            UInt64(Int.max), UInt64(Int.max) + 1, UInt64.max - 1, UInt64.max, UInt64(length), UInt64(length) + 1,
            UInt64(length) + 16, UInt64(length) &* 1000,
        ]
        var encodings = values.map(Self.varint)
        encodings.append(Array(repeating: 0xFF, count: 10) + [0x01])  // longer than any UInt64
        encodings.append(Array(repeating: 0x80, count: 12) + [0x00])  // a zero, padded
        return encodings
    }

    private static let interestingWords: [UInt64] = [
        0, UInt64.max, UInt64(Int.max), 0x8000_0000_0000_0000, Double.nan.bitPattern, Double.infinity.bitPattern,
        (-Double.infinity).bitPattern, (-0.0 as Double).bitPattern, Double.greatestFiniteMagnitude.bitPattern,
        Double.leastNonzeroMagnitude.bitPattern, (1e300 as Double).bitPattern, 0x0000_0001_0000_0000,
    ]

    static func varint(_ value: UInt64) -> [UInt8] {
        var value = value
        var bytes: [UInt8] = []
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
        return bytes
    }

    init(seed: UInt64, maximumLength: Int, dictionary: [[UInt8]]) {
        generator = SplitMix64(seed: seed)
        self.maximumLength = maximumLength
        self.dictionary = dictionary
    }

    private mutating func index(_ count: Int) -> Int { Int.random(in: 0..<max(count, 1), using: &generator) }

    /// One to four stacked mutations of `input`; `others` are spliced from.
    mutating func mutate(_ input: Data, others: [Data]) -> Data {
        var bytes = [UInt8](input)
        let rounds = 1 + index(4)
        for _ in 0..<rounds { mutateOnce(&bytes, others: others) }
        if bytes.count > maximumLength { bytes.removeLast(bytes.count - maximumLength) }
        return Data(bytes)
    }

    private mutating func mutateOnce(_ bytes: inout [UInt8], others: [Data]) {
        let choice = index(dictionary.isEmpty ? 12 : 14)
        switch choice {
        case 0 where !bytes.isEmpty:
            bytes[index(bytes.count)] ^= UInt8(1) << UInt8(index(8))
        case 1 where !bytes.isEmpty:
            bytes[index(bytes.count)] = Self.interestingBytes[index(Self.interestingBytes.count)]
        case 2 where !bytes.isEmpty:
            bytes[index(bytes.count)] = UInt8.random(in: 0...255, using: &generator)
        case 3:
            let count = 1 + index(8)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }, at: index(bytes.count + 1))
        case 4 where !bytes.isEmpty:
            let start = index(bytes.count)
            bytes.removeSubrange(start..<min(bytes.count, start + 1 + index(16)))
        case 5 where !bytes.isEmpty:
            bytes.removeLast(1 + index(bytes.count))
        case 6 where !bytes.isEmpty:
            let start = index(bytes.count)
            let chunk = Array(bytes[start..<min(bytes.count, start + 1 + index(32))])
            bytes.insert(contentsOf: chunk, at: index(bytes.count + 1))
        case 7:
            // A varint at a length field's extreme, inserted or in place of a byte.
            let varints = extremeVarints(length: bytes.count)
            let varint = varints[index(varints.count)]
            let at = index(bytes.count + 1)
            if at < bytes.count, index(2) == 0 {
                bytes.replaceSubrange(at..<at + 1, with: varint)
            } else {
                bytes.insert(contentsOf: varint, at: at)
            }
        case 8 where !others.isEmpty:
            let other = [UInt8](others[index(others.count)])
            bytes = Array(bytes.prefix(index(bytes.count + 1))) + Array(other.suffix(index(other.count + 1)))
        case 9:
            let word = Self.interestingWords[index(Self.interestingWords.count)]
            var encoded = index(2) == 0 ? Self.varint(word) : withUnsafeBytes(of: word.bigEndian) { Array($0) }
            if index(2) == 0 { encoded = withUnsafeBytes(of: word.littleEndian) { Array($0) } }
            let at = index(bytes.count + 1)
            let end = min(bytes.count, at + encoded.count)
            bytes.replaceSubrange(at..<end, with: encoded)
        case 10 where bytes.count >= 2:
            // Swap two bytes.
            let a = index(bytes.count)
            let b = index(bytes.count)
            bytes.swapAt(a, b)
        case 11 where !bytes.isEmpty:
            // Add or subtract a little from a byte (an off-by-one in a length).
            let at = index(bytes.count)
            bytes[at] = bytes[at] &+ UInt8(truncatingIfNeeded: index(7) - 3)
        case 12, 13:
            let piece = dictionary[index(dictionary.count)]
            let at = index(bytes.count + 1)
            if index(3) == 0, at < bytes.count {
                bytes.replaceSubrange(at..<min(bytes.count, at + piece.count), with: piece)
            } else {
                bytes.insert(contentsOf: piece, at: at)
            }
        default:
            bytes.append(UInt8.random(in: 0...255, using: &generator))
        }
    }
}

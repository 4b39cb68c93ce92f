import Checkpointing
import Foundation

extension CheckpointerConformance {
    /// The metadata filter checks, part of ``checks``.
    static let metadataFilterChecks: [ConformanceCheck] = [
        metadataFilterComparesNumbersByValue, metadataFilterAnyKey, metadataReadsBackAsWritten,
    ]

    static let metadataReadsBackAsWritten = ConformanceCheck(
        "metadata reads back as written: signs, exponents, extremes, escapes, any script"
    ) { checkpointer in
        let thread = try uniqueThread("metadata-values")
        let metadata: Metadata = [
            "negative zero": .double(-0.0), "a tenth": .double(0.1), "huge": .double(1e300), "tiny": .double(.leastNonzeroMagnitude),
            "whole": .double(3.0), "beyond Int": .double(1e20), "max": .int(Int.max), "min": .int(Int.min),
            "negative": .double(-2.5), "quotes \" and \\": .string("line\nbreak\ttab \"quoted\" \\ \u{1}"),
            "ключ": .string("значение"), "🧵": .string("emoji 👍🏽"), "empty": .string(""), "flag": .bool(false),
            "nothing": .null, "z-last": .int(-1), "A-first": .int(0),
        ]
        let write = CheckpointWrite(thread: thread, parentID: nil, step: 0, metadata: metadata, channels: ["v": .value(Data("1".utf8))])
        try await checkpointer.put(write)
        let read = try await checkpointer.checkpoint(thread: thread, namespace: "", id: write.id)
        let summary = try await checkpointer.history(thread: thread, limit: 10).first
        for (name, found) in [("checkpoint", read?.metadata), ("history", summary?.metadata)] {
            let found = found ?? [:]
            let wrong = metadata.keys.sorted().filter { key in
                guard let value = found[key], let written = metadata[key] else { return true }
                return !value.matchesFilter(written)
            }
            try await require(
                wrong.isEmpty && found.count == metadata.count,
                "\(name) read other metadata for \(wrong): \(found.filter { wrong.contains($0.key) })")
        }
    }

    static let metadataFilterComparesNumbersByValue = ConformanceCheck(
        "history filter: numbers compare by value, other types never match numbers"
    ) { checkpointer in
        let thread = try uniqueThread("filter-numbers")
        let stored: [(String, Metadata)] = [
            ("int 5", ["n": .int(5)]),
            ("double 5.0", ["n": .double(5.0)]),
            ("double 5.5", ["n": .double(5.5)]),
            ("true", ["n": .bool(true)]),
            ("string 5", ["n": .string("5")]),
            ("int 1", ["n": .int(1)]),
            ("int 0", ["n": .int(0)]),
            ("false", ["n": .bool(false)]),
            ("int 2^53+1", ["n": .int(9_007_199_254_740_993)]),
            ("null", ["n": .null]),
            // JSONEncoder writes it as 1.152921504606847e+18, whose exact value is another integer.
            ("double 2^60", ["n": .double(1_152_921_504_606_846_976)]),
        ]
        var names: [CheckpointID: String] = [:]
        var parent: CheckpointID?
        for (step, (name, metadata)) in stored.enumerated() {
            let next = CheckpointWrite(
                thread: thread, parentID: parent, step: step, metadata: metadata,
                channels: ["v": .value(Data("\(step)".utf8))])
            try await checkpointer.put(next)
            names[next.id] = name
            parent = next.id
        }
        let cases: [(MetadataValue, Set<String>)] = [
            (.int(5), ["int 5", "double 5.0"]),
            (.double(5.0), ["int 5", "double 5.0"]),
            (.double(5.5), ["double 5.5"]),
            (.int(1), ["int 1"]),
            (.double(1.0), ["int 1"]),
            (.bool(true), ["true"]),
            (.int(0), ["int 0"]),
            (.bool(false), ["false"]),
            (.string("5"), ["string 5"]),
            (.string("5.0"), []),
            (.double(9_007_199_254_740_992), []),
            (.int(9_007_199_254_740_993), ["int 2^53+1"]),
            (.null, ["null"]),
            (.double(1_152_921_504_606_846_976), ["double 2^60"]),
            (.int(1_152_921_504_606_846_976), ["double 2^60"]),
            (.int(1_152_921_504_606_847_000), []),
        ]
        var failures: [String] = []
        for summary in try await checkpointer.history(thread: thread, limit: 100) {
            guard let name = names[summary.id], let value = stored.first(where: { $0.0 == name })?.1["n"] else { continue }
            let read = summary.metadata["n"]
            if !(read.map { $0.matchesFilter(value) && value.matchesFilter($0) } ?? false) {
                failures.append("\(name) reads back as \(read.map(String.init(describing:)) ?? "nothing")")
            }
        }
        for (value, expected) in cases {
            let found = try await checkpointer.history(thread: thread, limit: 100, where: ["n": value])
            let matched = Set(found.map { names[$0.id] ?? "?" })
            if matched != expected {
                failures.append("filter n = \(value) matched \(matched.sorted()), expected \(expected.sorted())")
            }
        }
        try await require(failures.isEmpty, failures.joined(separator: "; "))
    }

    static let metadataFilterAnyKey = ConformanceCheck("history filter: any key can be filtered on") { checkpointer in
        let thread = try uniqueThread("filter-keys")
        let keys = [
            "a\"b", "\"", "a.b", "$", "$.a", "a[0]", "[", "it's", "back\\slash", "with space", "a/b", "", "a", "ünï ☕️",
            "tab\there", "line\nbreak", "*", "a\"]'.$ \\",
        ]
        var ids: [String: CheckpointID] = [:]
        var parent: CheckpointID?
        for (step, key) in keys.enumerated() {
            let next = CheckpointWrite(
                thread: thread, parentID: parent, step: step,
                metadata: [key: .int(step), "text": .string("value of \(key)"), "shared": true],
                channels: ["v": .value(Data("\(step)".utf8))])
            try await checkpointer.put(next)
            ids[key] = next.id
            parent = next.id
        }
        var failures: [String] = []
        for (step, key) in keys.enumerated() {
            let shown = key.debugDescription
            do {
                let found = try await checkpointer.history(thread: thread, limit: 100, where: [key: .int(step)])
                if found.map(\.id) != [ids[key]] { failures.append("\(shown) = \(step) matched \(found.count) checkpoints") }
                if found.first?.metadata[key] != .int(step) { failures.append("\(shown) does not read back") }
                let wrong = try await checkpointer.history(thread: thread, limit: 100, where: [key: .int(step + 1000)])
                if !wrong.isEmpty { failures.append("\(shown) = \(step + 1000) matched \(wrong.count) checkpoints") }
                let both = try await checkpointer.history(
                    thread: thread, limit: 100, where: [key: .int(step), "text": .string("value of \(key)"), "shared": true])
                if both.map(\.id) != [ids[key]] { failures.append("\(shown) with two more entries matched \(both.count)") }
            } catch {
                failures.append("\(shown): \(error)")
            }
        }
        try await require(failures.isEmpty, failures.joined(separator: "; "))
    }
}

import Foundation

struct Row: Codable {
    var scenario: String
    var samples: Int
    var p50Microseconds: Double
    var p99Microseconds: Double
    var floor: String?
    var floorP50Microseconds: Double?
    var floorP99Microseconds: Double?
    var ratioP50: Double?
    var ratioP99: Double?
}

func report(_ rows: inout [Row], _ scenario: String, _ samples: Samples, floor: (String, Samples)? = nil) {
    var row = Row(
        scenario: scenario, samples: samples.nanoseconds.count, p50Microseconds: samples.p50 / 1000,
        p99Microseconds: samples.p99 / 1000)
    if let (name, floorSamples) = floor {
        row.floor = name
        row.floorP50Microseconds = floorSamples.p50 / 1000
        row.floorP99Microseconds = floorSamples.p99 / 1000
        row.ratioP50 = samples.p50 / floorSamples.p50
        row.ratioP99 = samples.p99 / floorSamples.p99
    }
    rows.append(row)
}

func format(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "" }
    return String(format: value >= 100 ? "%.0f" : "%.2f", value)
}

/// Prints the table of rows, then the ratios and the storage figures drawn from them.
func printTable(_ rows: [Row], _ storage: [String: Int]) {
    let header = ["scenario", "n", "p50 µs", "p99 µs", "floor p50 µs", "floor p99 µs", "ratio p50", "ratio p99"]
    let table = [header] + rows.map { row in
        [
            row.scenario, "\(row.samples)", format(row.p50Microseconds), format(row.p99Microseconds),
            format(row.floorP50Microseconds), format(row.floorP99Microseconds), format(row.ratioP50), format(row.ratioP99),
        ]
    }
    let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
    for (index, line) in table.enumerated() {
        print(line.enumerated().map { column, cell in
            column == 0 ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[column] - cell.count) + cell
        }.joined(separator: "  "))
        if index == 0 { print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
    }
    if let put20 = rows.first(where: { $0.scenario == "sqlite normal: put, 16-25 messages" }),
        let put200 = rows.first(where: { $0.scenario == "sqlite normal: put, 191-200 messages" })
    {
        print(String(format: "put p50 at 200 messages / at 20 messages: %.2f", put200.p50Microseconds / put20.p50Microseconds))
    }
    if let put20 = rows.first(where: { $0.scenario == "sqlite normal: put, 16-25 messages, non-Equatable message" }),
        let put200 = rows.first(where: { $0.scenario == "sqlite normal: put, 191-200 messages, non-Equatable message" })
    {
        print(
            String(
                format: "put p50 at 200 messages / at 20 messages, non-Equatable message: %.2f",
                put200.p50Microseconds / put20.p50Microseconds))
    }
    if let file = storage["fileBytes"], let text = storage["textBytes"], let json = storage["messageJSONBytes"] {
        print(
            String(
                format: "500-turn conversation: file %d bytes; messages %d bytes of text (%.2fx), %d bytes as JSON (%.2fx)",
                file, text, Double(file) / Double(text), json, Double(file) / Double(json)))
        if let plain = storage["plainFileBytes"] {
            print(
                String(
                    format: "500-turn conversation, non-Equatable message: file %d bytes (%.2fx the text)", plain,
                    Double(plain) / Double(text)))
        }
    }
}

/// Writes the rows and the storage figures to `path` as JSON.
func writeJSON(_ rows: [Row], _ storage: [String: Int], to path: String) throws {
    struct Output: Codable { var rows: [Row]; var storage: [String: Int] }
    let output = JSONEncoder()
    output.outputFormatting = [.prettyPrinted, .sortedKeys]
    try output.encode(Output(rows: rows, storage: storage)).write(to: URL(fileURLWithPath: path))
    print("wrote \(path)")
}

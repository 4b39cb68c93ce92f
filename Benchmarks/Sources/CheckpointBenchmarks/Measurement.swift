struct Samples {
    var nanoseconds: [Double] = []
    mutating func add(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        nanoseconds.append(Double(seconds) * 1e9 + Double(attoseconds) / 1e9)
    }
    func percentile(_ p: Double) -> Double {
        guard !nanoseconds.isEmpty else { return .nan }
        let sorted = nanoseconds.sorted()
        let index = min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)
        return sorted[max(0, index)]
    }
    var p50: Double { percentile(50) }
    var p99: Double { percentile(99) }
}

@inline(__always)
func time<T>(_ samples: inout Samples, _ body: () throws -> T) rethrows -> T {
    let start = ContinuousClock.now
    let result = try body()
    samples.add(ContinuousClock.now - start)
    return result
}

@inline(__always)
func time<T>(_ samples: inout Samples, _ body: () async throws -> T) async rethrows -> T {
    let start = ContinuousClock.now
    let result = try await body()
    samples.add(ContinuousClock.now - start)
    return result
}

func merged(_ samples: [Int: Samples], _ sizes: ClosedRange<Int>) -> Samples {
    var result = Samples()
    for size in sizes { result.nanoseconds += samples[size]?.nanoseconds ?? [] }
    return result
}

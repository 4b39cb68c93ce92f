import Foundation

#if CHECKPOINT_LIBFUZZER
    import CCheckpointFuzzer
#endif

/// Fuzzes every decoder of stored bytes and every parser of configuration text.
///
///     CheckpointFuzz [--target NAME]... [--runs N] [--seed S] [--timeout-ms T] [--corpus DIR]
///                    [--artifacts DIR] [--max-len L] [--memory-mb M]
///     CheckpointFuzz --list
///     CheckpointFuzz --write-seeds DIR [--target NAME]...
///     CheckpointFuzz --replay FILE... [--target NAME]...
///     CheckpointFuzz --libfuzzer --target NAME [libFuzzer flags and corpus folders]
///
/// The plain mode runs each target's seeds (its corpus folder and the encodings the library
/// makes), then N seeded mutations of them, each input both as fresh `Data` and as a slice.
/// A crash writes the input to `<artifacts>/<target>-<digest>.crash` and kills the process; an
/// input that runs past the time limit is written to `.hang` and ends it with status 3; a
/// finding (an error that is not the typed one, a broken round trip) is written to `.finding`,
/// and the run ends with status 1. `--libfuzzer` (in a build with `-sanitize=fuzzer`, see
/// scripts/fuzz.sh) hands one target to libFuzzer instead.
@main
struct CheckpointFuzz {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        // libFuzzer's -fork and -jobs start this executable again with its own flags only:
        // the target comes with the environment.
        if let name = ProcessInfo.processInfo.environment[libFuzzerTargetVariable],
            let target = allTargets.first(where: { $0.name == name })
        {
            runLibFuzzer(target, arguments: arguments)
        }
        var options = PlainOptions()
        var names: [String] = []
        var mode = "plain"
        var files: [String] = []
        var seedFolder = ""
        var passThrough: [String] = []

        func value(_ flag: String) -> String {
            guard !arguments.isEmpty else { fail("\(flag) needs a value") }
            return arguments.removeFirst()
        }
        func number(_ flag: String) -> Int {
            let text = value(flag)
            guard let number = Int(text), number >= 0 else { fail("\(flag) takes a number, not '\(text)'") }
            return number
        }
        while !arguments.isEmpty {
            let argument = arguments.removeFirst()
            switch argument {
            case "--target": names.append(value(argument))
            case "--runs": options.runs = number(argument)
            case "--seed": options.seed = UInt64(number(argument))
            case "--timeout-ms": options.timeoutMilliseconds = max(1, number(argument))
            case "--corpus": options.corpus = value(argument)
            case "--artifacts": options.artifacts = value(argument)
            case "--max-len": options.maximumLength = max(1, number(argument))
            case "--memory-mb": options.memoryMegabytes = number(argument)
            case "--list": mode = "list"
            case "--write-seeds":
                mode = "write-seeds"
                seedFolder = value(argument)
            case "--replay": mode = "replay"
            case "--libfuzzer": mode = "libfuzzer"
            case "-h", "--help":
                print(usage)
                exit(0)
            default:
                if mode == "replay" && !argument.hasPrefix("-") {
                    files.append(argument)
                } else if mode == "libfuzzer" {
                    passThrough.append(argument)
                } else {
                    fail("unknown argument '\(argument)'\n\(usage)")
                }
            }
        }
        if !names.isEmpty {
            options.targets = names.map { name in
                guard let target = allTargets.first(where: { $0.name == name }) else {
                    fail("no target '\(name)'; targets: \(allTargets.map(\.name).joined(separator: ", "))")
                }
                return target
            }
        }
        do {
            switch mode {
            case "list":
                for target in allTargets { print("\(target.name)\t\(target.about)") }
            case "write-seeds":
                try writeSeeds(to: seedFolder, targets: options.targets)
            case "replay":
                exit(replay(files, targets: options.targets) == 0 ? 0 : 1)
            case "libfuzzer":
                guard options.targets.count == 1, let target = options.targets.first else {
                    fail("--libfuzzer runs one target: give --target NAME")
                }
                runLibFuzzer(target, arguments: passThrough)
            default:
                exit(try runPlain(options) == 0 ? 0 : 1)
            }
        } catch {
            fail("\(error)")
        }
    }

    static let usage = """
        usage: CheckpointFuzz [--target NAME]... [--runs N] [--seed S] [--timeout-ms T] [--corpus DIR]
                              [--artifacts DIR] [--max-len L] [--memory-mb M]
               CheckpointFuzz --list | --write-seeds DIR | --replay FILE... [--target NAME]...
               CheckpointFuzz --libfuzzer --target NAME [libFuzzer flags] [corpus folders]
        """
}

func fail(_ message: String) -> Never {
    printError("CheckpointFuzz: \(message)")
    exit(2)
}

// MARK: - libFuzzer

/// The environment variable that hands the target to the processes libFuzzer starts.
let libFuzzerTargetVariable = "CHECKPOINT_FUZZ_LIBFUZZER_TARGET"

/// The target libFuzzer's callback runs (a C callback captures nothing).
nonisolated(unsafe) private var libFuzzerTarget: FuzzTarget?

/// Hands one target to libFuzzer: every input runs both as fresh `Data` and as a slice, and a
/// finding aborts, so that libFuzzer keeps the input as a crash.
func runLibFuzzer(_ target: FuzzTarget, arguments: [String]) -> Never {
    #if CHECKPOINT_LIBFUZZER
        libFuzzerTarget = target
        setenv(libFuzzerTargetVariable, target.name, 1)
        let all = [CommandLine.arguments[0]] + arguments
        var argc = Int32(all.count)
        var pointers: [UnsafeMutablePointer<CChar>?] = all.map { strdup($0) } + [nil]
        let code = pointers.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var argv = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
                guard let target = libFuzzerTarget else { return 0 }
                let input = data.map { Data(bytes: $0, count: size) } ?? Data()
                do {
                    _ = try target.runBothWays(input)
                } catch {
                    printError("CheckpointFuzz: FINDING in \(target.name): \(error)")
                    abort()
                }
                return 0
            }
        }
        exit(code)
    #else
        fail(
            "this build has no libFuzzer; build with scripts/fuzz.sh --libfuzzer (swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCHECKPOINT_LIBFUZZER ...)"
        )
    #endif
}

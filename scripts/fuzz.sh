#!/usr/bin/env bash
# Fuzzes every decoder of stored bytes (manifests, row blobs, pauses, metadata, the Redis
# cache's entries, sealed values, ids) and every parser of configuration text (checkpointer
# URLs, key sources, key lists) with the CheckpointFuzz executable. Each input must decode or
# throw a typed CheckpointError: a crash, a hang, an untyped error or a broken round trip fails.
#
#   scripts/fuzz.sh                                   # plain: every target, seeds + 2000 mutations (debug build)
#   scripts/fuzz.sh --runs 200000 --seed 7            # plain, longer, other mutations
#   scripts/fuzz.sh --target manifest --runs 1000000  # one target (repeat --target for more)
#   scripts/fuzz.sh --libfuzzer --seconds 300         # libFuzzer + AddressSanitizer, 300 s per target
#   scripts/fuzz.sh --libfuzzer --target cache-entry --seconds 3600 [--jobs 2]
#   scripts/fuzz.sh --replay FILE... --target NAME    # run saved inputs again (crashes, findings)
#   scripts/fuzz.sh --list                            # the targets
#
# Plain mode writes what it finds to .build/fuzz-artifacts/; libFuzzer mode builds into
# .build-fuzz/ (release, -sanitize=fuzzer,address), grows a working corpus per target in
# .build-fuzz/corpus/<target>/ from the committed one in Fuzz/corpus/<target>/, and writes
# crashes to .build-fuzz/artifacts/. Copy an input that found a bug into Fuzz/corpus/<target>/
# once it is fixed: every run (CI's too) replays the corpus first.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=plain
seconds=60
jobs=1
targets=()
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --libfuzzer) mode=libfuzzer ;;
    --seconds) seconds="${2:?--seconds S}"; shift ;;
    --jobs) jobs="${2:?--jobs N}"; shift ;;
    --target) targets+=("${2:?--target NAME}"); pass+=(--target "$2"); shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done

if [ "$mode" = plain ]; then
  swift build -j 1 --product CheckpointFuzz >/dev/null
  exec "$(swift build -j 1 --show-bin-path)/CheckpointFuzz" "${pass[@]}"
fi

# libFuzzer: a release build with coverage instrumentation and AddressSanitizer. The fuzz
# executable's own main hands the target to libFuzzer's driver (LLVMFuzzerRunDriver); lld links
# it (gold fails on the sanitizer runtimes).
flags=(-c release --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCHECKPOINT_LIBFUZZER
  -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld)
swift build -j 1 "${flags[@]}" --product CheckpointFuzz
binary="$(swift build -j 1 "${flags[@]}" --show-bin-path)/CheckpointFuzz"
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("$binary" --list | cut -f1)
fi
mkdir -p .build-fuzz/artifacts
# The Swift backtracer is off (libFuzzer reports crashes itself, with the input), and so is
# LeakSanitizer (the harness's globals live until exit).
export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
status=0
for target in "${targets[@]}"; do
  corpus=".build-fuzz/corpus/$target"
  mkdir -p "$corpus"
  "$binary" --write-seeds .build-fuzz/corpus --target "$target"
  [ -d "Fuzz/corpus/$target" ] && cp -n "Fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz.sh: libFuzzer on $target for ${seconds} s (corpus $corpus)"
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-fork="$jobs")
  if ! "$binary" --libfuzzer --target "$target" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 "${parallel[@]}" -artifact_prefix=".build-fuzz/artifacts/$target-" -print_final_stats=1 \
    >".build-fuzz/$target.log" 2>&1; then
    echo "fuzz.sh: $target FAILED; see .build-fuzz/$target.log and .build-fuzz/artifacts/" >&2
    tail -n 40 ".build-fuzz/$target.log" >&2
    status=1
  else
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done )" ".build-fuzz/$target.log" | tr '\n' ' ' || true
    echo
  fi
done
exit $status

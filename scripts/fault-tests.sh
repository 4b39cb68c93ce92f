#!/usr/bin/env bash
# Fault tests that need whole processes: a SQLite writer process SIGKILLed at random moments,
# in synchronous=normal and synchronous=full, then checked: the head is at least the last
# acknowledged save, every checkpoint reads back exactly as written, and SQLite's
# integrity_check is ok. (Server restarts, Redis kills and freezes, damaged bytes and racing
# processes are in the test suite itself.)
#
#   scripts/fault-tests.sh              # 50 kills per mode (CI runs this)
#   scripts/fault-tests.sh --cycles 1000
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=50
[ "${1:-}" = "--cycles" ] && cycles="${2:?--cycles N}"
swift build --product CheckpointFaultWriter >/dev/null
binary="$(swift build --show-bin-path)/CheckpointFaultWriter"
work="$(mktemp -d /tmp/checkpoint-faults.XXXXXX)"
trap 'rm -rf "$work"' EXIT

total_lost=0
for mode in normal full; do
  for cycle in $(seq 1 "$cycles"); do
    # A fresh file every 10 kills (so checks stay short); within them the writer reopens the
    # file its predecessor was killed on.
    if [ $(((cycle - 1) % 10)) -eq 0 ]; then
      database="$work/$mode-$cycle.db"
      url="sqlite://$database?synchronous=$mode"
      : >"$work/$mode.acks"
    fi
    every=""
    [ $((cycle % 10)) -eq 0 ] || [ "$cycle" -eq "$cycles" ] && every="--all"
    "$binary" write "$url" 3 >>"$work/$mode.acks" 2>"$work/$mode.err" &
    writer=$!
    # A random moment: 20 to 300 ms into the run (start-up, migrations, saves, checkpoints).
    sleep "0.$(printf '%03d' $((RANDOM % 280 + 20)))"
    kill -KILL "$writer" 2>/dev/null || true
    wait "$writer" 2>/dev/null || true
    cat "$work/$mode.acks" >>"$work/$mode.all-acks"
    if ! "$binary" check "$url" "$work/$mode.acks" $every >"$work/$mode.check" 2>&1; then
      echo "fault-tests: $mode, kill $cycle: $(cat "$work/$mode.check")" >&2
      total_lost=$((total_lost + 1))
      break
    fi
    integrity="$(sqlite3 "$database" 'PRAGMA integrity_check;' 2>&1)"
    if [ "$integrity" != "ok" ]; then
      echo "fault-tests: $mode, kill $cycle: integrity_check: $integrity" >&2
      total_lost=$((total_lost + 1))
      break
    fi
  done
  acks=$(sort -u "$work/$mode.all-acks" | wc -l)
  echo "fault-tests: synchronous=$mode: $cycles kills, $acks acknowledged saves, none lost; last check: $(tail -n 1 "$work/$mode.check")"
done
if [ "$total_lost" -gt 0 ]; then
  echo "fault-tests: FAILED" >&2
  exit 1
fi
echo "fault-tests: 0 lost, 0 damaged"

#!/usr/bin/env bash
# Fault tests that need whole processes and real servers (started here on loopback, on free
# ports, in a temporary folder; all stopped and deleted at exit, also on failure):
#
# 1. SQLite kills: a writer process (CheckpointFaultWriter write) SIGKILLed at random
#    moments, in synchronous=normal and synchronous=full, then checked: the head is at least
#    the last acknowledged save, every checkpoint reads back exactly as written, and SQLite's
#    integrity_check is ok.                                   (cycles kills per mode)
# 2. Postgres restarts: a writer (write-retrying, which retries every error whose isRetryable
#    is true) keeps saving while the server is restarted with `pg_ctl restart -m immediate`;
#    then checked: the head is at least the last acknowledged save, every acknowledged
#    checkpoint reads back by its id exactly as written, the history lists every turn once.
#    Lost saves and non-retryable errors must be 0.           (cycles/10 restarts)
# 3. Redis kills and freezes: one RedisCachedCheckpointer over SQLite, a writer task and two
#    reader tasks (redis-cache), while the Redis server (append-only file, fsync every
#    second) is SIGKILLed and restarted from its file, or frozen with SIGSTOP/SIGCONT, each
#    fault at a random moment once the cache serves from Redis again. A read is stale when
#    the head it returns is older than the last save acknowledged before it started. Stale
#    reads, wrong reads and failed calls must be 0.
#                                                             (cycles/10 kills, 3*cycles/50 freezes)
# 4. Byte damage: copies of a reference SQLite file of four agent threads (appended messages,
#    metadata, an answered pause, a fork, a sub-agent namespace, two waiting pauses) with 4 to
#    50 random bytes changed past the header, each opened and read in full (every checkpoint,
#    head, history page and inbox query) and every read classified as exact, error (by code),
#    missing, stale (a state that was written but is not the latest: an older head, a
#    checkpoint before its answer, an answered pause listed, which is a row of SQLite's b-tree
#    lost whole or a deleted one come back; tolerated only in a file that SQLite's
#    integrity_check flags) or wrong (a value that is not what was written, with no error).
#    Wrong reads and crashed or hung processes must be 0.     (2*cycles files)
#    The damage comes from the seed and the file's number; the reference is built anew each
#    run (ids and times differ), so --keep-reference PATH keeps it for reproducing one file:
#    mkdir D && cp PATH D/reference.db && CheckpointFaultWriter damage D K+1 SEED K
#
# 5. Postgres failover: a primary and a streaming standby (pg_basebackup, synchronous
#    replication: a commit is acknowledged once the standby has it on disk); a writer
#    (write-retrying) on the multi-host URL `postgres://...@primary,standby/db` keeps saving;
#    the primary is killed (`pg_ctl stop -m immediate`) and the standby promoted; the same
#    writer process goes on. Then checked on the promoted server as in 2: lost saves and
#    non-retryable errors must be 0. Reports the time from the promotion to the first
#    acknowledged save.                                       (cycles/50 failovers, at least 1)
#
#   scripts/fault-tests.sh                      # CI: 50 kills per mode, 5 restarts, 5 Redis kills
#                                               # and 3 freezes, 100 damaged files, 1 failover
#                                               # (under 2 minutes)
#   scripts/fault-tests.sh --cycles 1000        # 1000 kills per mode, 100 restarts, 100 kills,
#                                               # 60 freezes, 2000 files
#   scripts/fault-tests.sh --only damage --files 10000 --damage-report-only
#
# Options: --cycles N scales every part as above; each of --restarts N, --redis-kills N,
# --redis-freezes N, --files N and --failovers N sets its part alone. --seed N: the damage's seed (default
# random, or FAULT_TESTS_SEED; printed). --only sqlite,postgres,redis,damage,failover
# (default all).
# --damage-report-only: report wrong reads without failing (also
# FAULT_TESTS_DAMAGE_REPORT_ONLY=1). --keep-reference PATH: see 4. Ports:
# FAULT_TESTS_POSTGRES_PORT, FAULT_TESTS_REDIS_PORT (default: a free port between 42000 and
# 54999). SWIFT_BUILD_JOBS passes -j to swift build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }

cycles=50 restarts="" redis_kills="" redis_freezes="" files="" failovers="" only="sqlite,postgres,redis,damage,failover"
seed="${FAULT_TESTS_SEED:-$(((RANDOM << 15) | RANDOM))}"
report_only="${FAULT_TESTS_DAMAGE_REPORT_ONLY:-0}" keep_reference=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles="${2:?--cycles N}"; shift 2 ;;
    --restarts) restarts="${2:?--restarts N}"; shift 2 ;;
    --redis-kills) redis_kills="${2:?--redis-kills N}"; shift 2 ;;
    --redis-freezes) redis_freezes="${2:?--redis-freezes N}"; shift 2 ;;
    --files) files="${2:?--files N}"; shift 2 ;;
    --failovers) failovers="${2:?--failovers N}"; shift 2 ;;
    --seed) seed="${2:?--seed N}"; shift 2 ;;
    --only) only="${2:?--only LIST}"; shift 2 ;;
    --damage-report-only) report_only=1; shift ;;
    --keep-reference) keep_reference="${2:?--keep-reference PATH}"; shift 2 ;;
    *) usage ;;
  esac
done
restarts="${restarts:-$((cycles / 10 > 0 ? cycles / 10 : 1))}"
redis_kills="${redis_kills:-$((cycles / 10 > 0 ? cycles / 10 : 1))}"
redis_freezes="${redis_freezes:-$((cycles * 3 / 50 > 0 ? cycles * 3 / 50 : 1))}"
files="${files:-$((cycles * 2))}"
failovers="${failovers:-$((cycles / 50 > 0 ? cycles / 50 : 1))}"
runs() { [[ ",$only," == *",$1,"* ]]; }

scripts/bootstrap.sh --test  # sqlite3, PostgreSQL's and Redis's servers
swift build ${SWIFT_BUILD_JOBS:+-j "$SWIFT_BUILD_JOBS"} --product CheckpointFaultWriter >/dev/null
binary="$(swift build --show-bin-path)/CheckpointFaultWriter"
work="$(mktemp -d /tmp/checkpoint-faults.XXXXXX)"
chmod 755 "$work"  # the postgres user reaches its cluster inside
# The one process of ours running in the background (each part runs one at a time), and the
# servers' folders: what cleanup stops.
live="" pg_dir="" redis_dir="" standby_dir=""
cleanup() {
  local status=$?
  if [ -n "$live" ]; then
    kill -KILL "$live" 2>/dev/null || true
    wait "$live" 2>/dev/null || true
  fi
  [ -z "$pg_dir" ] || scripts/postgres-server.sh destroy "$pg_dir" >/dev/null 2>&1 || true
  [ -z "$standby_dir" ] || scripts/postgres-server.sh destroy "$standby_dir" >/dev/null 2>&1 || true
  [ -z "$redis_dir" ] || scripts/redis-server.sh destroy "$redis_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

failures=()
summary=()
report() { echo "fault-tests: $*"; summary+=("$*"); }
problem() { echo "fault-tests: FAILURE: $*" >&2; failures+=("$*"); }

# A random moment: `pause MIN MAX` sleeps between MIN and MAX milliseconds.
pause() { local ms=$(($1 + RANDOM % ($2 - $1 + 1))); sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"; }

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A free port below Linux's ephemeral range (32768 and up): no outgoing connection takes it
# while its server is down.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((10000 + RANDOM % 10000))
    if port_is_free "$port"; then echo "$port"; return 0; fi
  done
  echo "fault-tests: no free port found" >&2
  return 1
}

count_acks() { grep -c '^ack ' "$1" || true; }
# Waits until FILE has at least N acknowledged saves, while process PID lives, for at most S seconds.
wait_for_acks() {
  local file=$1 want=$2 pid=$3 deadline=$((SECONDS + $4))
  while [ "$(count_acks "$file")" -lt "$want" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
# The value after NAME in the last line of FILE that starts with KIND.
field() { awk -v kind="$2" -v name="$3" '$1 == kind { for (i = 2; i < NF; i++) if ($i == name) v = $(i + 1) } END { print v + 0 }' "$1"; }

# 1. A SQLite writer SIGKILLed at random moments.
sqlite_kills() {
  local started=$SECONDS mode cycle database url every writer lost=0
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
      if [ $((cycle % 10)) -eq 0 ] || [ "$cycle" -eq "$cycles" ]; then every="--all"; fi
      "$binary" write "$url" 3 >>"$work/$mode.acks" 2>"$work/$mode.err" &
      writer=$! live=$!
      # A random moment: 20 to 300 ms into the run (start-up, migrations, saves, checkpoints).
      pause 20 300
      kill -KILL "$writer" 2>/dev/null || true
      wait "$writer" 2>/dev/null || true
      live=""
      cat "$work/$mode.acks" >>"$work/$mode.all-acks"
      if ! "$binary" check "$url" "$work/$mode.acks" $every >"$work/$mode.check" 2>&1; then
        problem "SQLite synchronous=$mode, kill $cycle: $(cat "$work/$mode.check")"
        lost=1
        break
      fi
      integrity="$(sqlite3 "$database" 'PRAGMA integrity_check;' 2>&1)"
      if [ "$integrity" != "ok" ]; then
        problem "SQLite synchronous=$mode, kill $cycle: integrity_check: $integrity"
        lost=1
        break
      fi
    done
    acks=$(sort -u "$work/$mode.all-acks" | wc -l)
    report "SQLite synchronous=$mode: $cycle kills, $acks acknowledged saves, $([ $lost -eq 0 ] && echo "none lost" || echo "FAILED"); last check: $(tail -n 1 "$work/$mode.check")"
  done
  echo "fault-tests: SQLite kills took $((SECONDS - started)) s"
}

# 2. Immediate Postgres restarts under a retrying writer.
postgres_restarts() {
  local started=$SECONDS port url out="$work/postgres.out" err="$work/postgres.err" writer restart restarted=0 failed=""
  port="${FAULT_TESTS_POSTGRES_PORT:-$(free_port)}"
  pg_dir="$work/postgres"
  url="$(scripts/postgres-server.sh start "$pg_dir" "$port")"
  "$binary" write-retrying "$url" 3 >"$out" 2>"$err" &
  writer=$! live=$!
  for restart in $(seq 1 "$restarts"); do
    # The writer is saving again (20 more acknowledged saves), then a random moment.
    if ! wait_for_acks "$out" $(($(count_acks "$out") + 20)) "$writer" 60; then
      failed="before restart $restart, no 20 saves were acknowledged within 60 s"
      break
    fi
    pause 0 300
    if ! scripts/postgres-server.sh restart "$pg_dir"; then
      failed="restart $restart: the server did not come back"
      break
    fi
    restarted=$restart
  done
  if [ -z "$failed" ] && ! wait_for_acks "$out" $(($(count_acks "$out") + 20)) "$writer" 60; then
    failed="after the last restart, no 20 saves were acknowledged within 60 s"
  fi
  local nonretryable=0
  if kill -0 "$writer" 2>/dev/null; then
    kill -KILL "$writer"
  else
    nonretryable=$(grep -c 'non-retryable' "$err" || true)
  fi
  wait "$writer" 2>/dev/null || true
  live=""
  [ -z "$failed" ] || problem "Postgres: $failed: $(tail -n 3 "$err")"
  local acks retries landed lost=0 check
  acks=$(count_acks "$out")
  retries=$(grep -c '^retry ' "$out" || true)
  landed=$(grep -c '^landed ' "$out" || true)
  if ! check="$("$binary" check "$url" "$out" --all 2>&1)"; then
    lost="$(sed -n 's/.*lost \([0-9][0-9]*\) acknowledged saves.*/\1/p' <<<"$check")"
    lost="${lost:-0}"
    problem "Postgres: check: $check"
  fi
  [ "$nonretryable" -eq 0 ] || problem "Postgres: the writer stopped on a non-retryable error: $(tail -n 1 "$err")"
  report "Postgres: $restarted immediate restarts, $acks acknowledged saves, lost $lost, non-retryable errors $nonretryable; $retries retried errors ($(grep '^retry ' "$out" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep = ", "}')), failed saves found committed $landed; check: $check"
  scripts/postgres-server.sh destroy "$pg_dir" >/dev/null 2>&1 || true
  pg_dir=""
  echo "fault-tests: Postgres restarts took $((SECONDS - started)) s"
}

# Waits until the cache's reader reports more than N hits (the cache serves again), at most S seconds.
wait_for_hits() {
  local want=$1 pid=$2 deadline=$((SECONDS + $3))
  while [ "$(field "$work/redis.out" status hits)" -le "$want" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# 3. Redis SIGKILLed (and restarted from its append-only file) and frozen under a writer and a reader.
redis_faults() {
  local started=$SECONDS port url out="$work/redis.out" err="$work/redis.err" cache fault kills=0 freezes=0 failed="" pid
  port="${FAULT_TESTS_REDIS_PORT:-$(free_port)}"
  redis_dir="$work/redis"
  url="$(scripts/redis-server.sh start-aof "$redis_dir" "$port")"
  "$binary" redis-cache "$work/redis-cache.db" "$url?prefix=faults&timeout_ms=100&breaker_cooldown_ms=200" >"$out" 2>"$err" &
  cache=$! live=$!
  # The faults in a random order.
  local faults=()
  for _ in $(seq 1 "$redis_kills"); do faults+=(kill); done
  for _ in $(seq 1 "$redis_freezes"); do faults+=(freeze); done
  for ((i = ${#faults[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1)))
    fault="${faults[i]}" faults[i]="${faults[j]}" faults[j]="$fault"
  done
  wait_for_hits 0 "$cache" 60 || failed="the cache served no read from Redis within 60 s"
  for fault in "${faults[@]}"; do
    [ -z "$failed" ] || break
    pause 300 1300
    case "$fault" in
      kill)
        scripts/redis-server.sh kill "$redis_dir"
        pause 100 600
        scripts/redis-server.sh start-aof "$redis_dir" "$port" >/dev/null
        kills=$((kills + 1))
        ;;
      freeze)
        pid="$(cat "$redis_dir/redis.pid")"
        kill -STOP "$pid"
        pause 200 1200
        kill -CONT "$pid"
        freezes=$((freezes + 1))
        ;;
    esac
    # Until the cache serves from Redis again (some reads in this window may be stale).
    wait_for_hits "$(field "$out" status hits)" "$cache" 60 || failed="the cache did not serve from Redis again within 60 s of $fault $((kills + freezes))"
  done
  # The last recovery is watched for a while too.
  pause 1000 2000
  if kill -0 "$cache" 2>/dev/null; then kill -TERM "$cache"; else failed="${failed:-the process ended early}"; fi
  # It stops within 30 s (its calls end), or it hangs: a failure too.
  local deadline=$((SECONDS + 30))
  while kill -0 "$cache" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
  if kill -0 "$cache" 2>/dev/null; then
    kill -KILL "$cache"
    failed="${failed:+$failed; }the process did not stop within 30 s of SIGTERM"
  fi
  local status=0
  wait "$cache" || status=$?
  live=""
  [ "$status" -eq 0 ] || failed="${failed:+$failed; }the process ended with status $status"
  [ -z "$failed" ] || problem "Redis: $failed: $(tail -n 3 "$err")"
  local reads stale wrong calls hits
  if ! grep -q '^done ' "$out"; then
    problem "Redis: no final report"
  fi
  reads=$(field "$out" done reads) stale=$(field "$out" done stale) wrong=$(field "$out" done wrong)
  calls=$(field "$out" done failed) hits=$(field "$out" done hits)
  [ "$stale" -eq 0 ] || problem "Redis: $stale stale reads: $(grep 'stale read' "$err" | head -n 3)"
  [ "$wrong" -eq 0 ] || problem "Redis: $wrong wrong reads: $(grep 'wrong read' "$err" | head -n 3)"
  [ "$calls" -eq 0 ] || problem "Redis: $calls failed calls: $(grep 'failed call' "$err" | head -n 3)"
  report "Redis: $kills kills (restarted from the append-only file), $freezes freezes, $(field "$out" done saves) saves, $reads reads ($hits from Redis, $(field "$out" done fallbacks) fallbacks, $(field "$out" done misses) misses), stale reads $stale, wrong reads $wrong, failed calls $calls"
  scripts/redis-server.sh destroy "$redis_dir" >/dev/null 2>&1 || true
  redis_dir=""
  echo "fault-tests: Redis faults took $((SECONDS - started)) s"
}

# 4. Random byte damage of a SQLite file.
byte_damage() {
  local started=$SECONDS dir="$work/damage" out="$work/damage.out" err="$work/damage.err" first=0 status crashes=() at
  while [ "$first" -lt "$files" ]; do
    status=0
    "$binary" damage "$dir" "$files" "$seed" "$first" >>"$out" 2>>"$err" || status=$?
    [ "$status" -ne 0 ] || break
    if [ "$status" -eq 3 ]; then
      at="$(awk '$1 == "hang" { v = $2 } END { print v }' "$out")"
      crashes+=("file $at hung")
    elif [ "$status" -ge 128 ]; then
      at="$(awk '$1 == "start" { v = $2 } END { print v }' "$out")"
      crashes+=("file $at crashed (signal $((status - 128)))")
    else
      problem "byte damage: the damage run failed: $(tail -n 3 "$err")"
      break
    fi
    if [ -z "$at" ] || [ "$at" -lt "$first" ]; then
      problem "byte damage: the damage run ended without starting a file: $(tail -n 3 "$err")"
      break
    fi
    first=$((at + 1))
  done
  local totals
  totals="$(awk '
    $1 == "file" {
      files++; reads += $6; exact += $8; missing += $10; wrong += $12; if ($12 > 0) wrongfiles++
      stale += $18; if ($18 > 0) stalefiles++
      n = split($14, parts, ",")
      for (i = 1; i <= n; i++) if (parts[i] != "-") { split(parts[i], kv, "="); errors[kv[1]] += kv[2]; errs += kv[2] }
      n = split($16, parts, ",")
      for (i = 1; i <= n; i++) if (parts[i] != "-") { split(parts[i], kv, "="); kinds[kv[1]] += kv[2] }
    }
    END {
      list = ""; for (code in errors) list = list (list == "" ? "" : ", ") code " " errors[code]
      what = ""; for (kind in kinds) what = what (what == "" ? "" : ", ") kind " " kinds[kind]
      gsub(/_/, " ", what)
      printf "%d %d %d %d %d %d %d %d %d\t%s\t%s\n", files, reads, exact, errs, missing, wrong, wrongfiles, stale, stalefiles, (list == "" ? "none" : list), (what == "" ? "none" : what)
    }' "$out")"
  local counts nfiles reads exact errs missing wrong wrongfiles stale stalefiles errorlist kindlist
  IFS=$'\t' read -r counts errorlist kindlist <<<"$totals"
  read -r nfiles reads exact errs missing wrong wrongfiles stale stalefiles <<<"$counts"
  local crashlist=""
  [ "${#crashes[@]}" -eq 0 ] || crashlist="$(printf '%s, ' "${crashes[@]}")" crashlist="${crashlist%, }"
  report "byte damage (seed $seed): $nfiles files read, $reads reads: $exact exact, $errs errors ($errorlist), $missing missing, $stale stale (an older written state, in $stalefiles files, each flagged by integrity_check), $wrong wrong (in $wrongfiles files${kindlist:+; what differed: $kindlist}); ${#crashes[@]} crashed or hung${crashlist:+ ($crashlist)}"
  [ -z "$crashlist" ] || problem "byte damage: $crashlist (seed $seed)"
  if [ "$wrong" -gt 0 ]; then
    if [ "$report_only" = 1 ]; then
      echo "fault-tests: byte damage: $wrong wrong reads tolerated (--damage-report-only); the first: $(grep -m 1 '^wrong ' "$out" | cut -c1-300)"
    else
      problem "byte damage: $wrong reads returned a value that is not what was written, without an error (seed $seed); the first: $(grep -m 1 '^wrong ' "$out" | cut -c1-240)"
    fi
  fi
  if [ -n "$keep_reference" ] && [ -f "$dir/reference.db" ]; then
    cp "$dir/reference.db" "$keep_reference"
    echo "fault-tests: byte damage: the reference is kept at $keep_reference"
  fi
  echo "fault-tests: byte damage took $((SECONDS - started)) s"
}

# 5. The primary killed and its synchronous standby promoted under a retrying writer.
postgres_failovers() {
  local started=$SECONDS failover primary_port standby_port url standby_url out err writer failed="" at promoted
  local total_acks=0 total_lost=0 total_landed=0 times=() nonretryable=0 check checks=()
  for failover in $(seq 1 "$failovers"); do
    out="$work/failover-$failover.out" err="$work/failover-$failover.err"
    primary_port="$(free_port)"
    standby_port="$(free_port)"
    pg_dir="$work/failover-primary-$failover"
    standby_dir="$work/failover-standby-$failover"
    scripts/postgres-server.sh start "$pg_dir" "$primary_port" >/dev/null
    standby_url="$(scripts/postgres-server.sh start-standby "$standby_dir" "$standby_port" "$pg_dir" "$primary_port")"
    url="postgres://checkpoint_app:app-secret@127.0.0.1:$primary_port,127.0.0.1:$standby_port/checkpoints?connect_timeout=2"
    "$binary" write-retrying "$url" 3 >"$out" 2>"$err" &
    writer=$! live=$!
    if ! wait_for_acks "$out" 30 "$writer" 60; then
      failed="failover $failover: no 30 saves were acknowledged within 60 s"
      break
    fi
    pause 0 300
    scripts/postgres-server.sh kill "$pg_dir"
    scripts/postgres-server.sh promote "$standby_dir"
    promoted=$(date +%s%N)
    at=$(count_acks "$out")
    if ! wait_for_acks "$out" $((at + 1)) "$writer" 60; then
      failed="failover $failover: no save was acknowledged within 60 s of the promotion"
      break
    fi
    times+=("$((($(date +%s%N) - promoted) / 1000000)) ms")
    if ! wait_for_acks "$out" $((at + 30)) "$writer" 60; then
      failed="failover $failover: no 30 saves were acknowledged within 60 s of the promotion"
      break
    fi
    if kill -0 "$writer" 2>/dev/null; then
      kill -KILL "$writer"
    else
      nonretryable=$((nonretryable + $(grep -c 'non-retryable' "$err" || true)))
    fi
    wait "$writer" 2>/dev/null || true
    live=""
    total_acks=$((total_acks + $(count_acks "$out")))
    total_landed=$((total_landed + $(grep -c '^landed ' "$out" || true)))
    if ! check="$("$binary" check "$standby_url" "$out" --all 2>&1)"; then
      local lost
      lost="$(sed -n 's/.*lost \([0-9][0-9]*\) acknowledged saves.*/\1/p' <<<"$check")"
      total_lost=$((total_lost + ${lost:-0}))
      problem "Postgres failover $failover: check on the promoted standby: $check"
    fi
    checks+=("$check")
    scripts/postgres-server.sh destroy "$pg_dir" >/dev/null 2>&1 || true
    scripts/postgres-server.sh destroy "$standby_dir" >/dev/null 2>&1 || true
    pg_dir="" standby_dir=""
  done
  if [ -n "$live" ]; then
    kill -KILL "$live" 2>/dev/null || true
    wait "$live" 2>/dev/null || true
    live=""
  fi
  [ -z "$failed" ] || problem "Postgres failover: $failed: $(tail -n 3 "$err")"
  [ "$nonretryable" -eq 0 ] || problem "Postgres failover: the writer stopped on a non-retryable error: $(tail -n 1 "$err")"
  local list=""
  [ "${#times[@]}" -eq 0 ] || list="$(printf '%s, ' "${times[@]}")" list="${list%, }"
  report "Postgres failover (synchronous standby promoted): ${#times[@]} failovers, $total_acks acknowledged saves, lost $total_lost, non-retryable errors $nonretryable, failed saves found committed $total_landed; promotion to the first acknowledged save: ${list:-none}; check: ${checks[*]:-none}"
  echo "fault-tests: Postgres failovers took $((SECONDS - started)) s"
}

total_started=$SECONDS
if runs sqlite; then sqlite_kills; fi
if runs postgres; then postgres_restarts; fi
if runs redis; then redis_faults; fi
if runs damage; then byte_damage; fi
if runs failover; then postgres_failovers; fi

echo
echo "fault-tests: summary ($((SECONDS - total_started)) s):"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failures[@]} -gt 0 ]; then
  echo "fault-tests: FAILED (${#failures[@]}):" >&2
  for line in "${failures[@]}"; do echo "  $line" >&2; done
  exit 1
fi
echo "fault-tests: all passed"

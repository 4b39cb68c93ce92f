#!/usr/bin/env bash
# Runs the benchmarks (release build) against every backend: starts a throwaway PostgreSQL and
# Redis on loopback for their scenarios and removes it at exit. Arguments go to the benchmark,
# e.g. scripts/benchmark.sh --only postgres --json results.json
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
scripts/bootstrap.sh --test
servers="$(mktemp -d /tmp/checkpointing-bench-servers.XXXXXX)"
chmod 755 "$servers"
cleanup() {
  "$root/scripts/pgbouncer-server.sh" destroy "$servers/pgbouncer" || true
  "$root/scripts/postgres-server.sh" destroy "$servers/postgres" || true
  "$root/scripts/redis-server.sh" destroy "$servers/redis" || true
  rm -rf "$servers"
}
trap cleanup EXIT
CHECKPOINT_BENCH_POSTGRES_URL="$(scripts/postgres-server.sh start "$servers/postgres" "${CHECKPOINT_BENCH_POSTGRES_PORT:-55434}")"
export CHECKPOINT_BENCH_POSTGRES_URL
# PgBouncer in transaction mode in front of it, with 16 server connections per database: more
# than the 8 a benchmark pool holds, so that the pooler's own limit is not what is measured.
CHECKPOINT_BENCH_PGBOUNCER_URL="$(scripts/pgbouncer-server.sh start "$servers/pgbouncer" "${CHECKPOINT_BENCH_PGBOUNCER_PORT:-55438}" "${CHECKPOINT_BENCH_POSTGRES_PORT:-55434}" 0 600 16)"
export CHECKPOINT_BENCH_PGBOUNCER_URL
CHECKPOINT_BENCH_REDIS_URL="$(scripts/redis-server.sh start "$servers/redis" "${CHECKPOINT_BENCH_REDIS_PORT:-55436}")"
export CHECKPOINT_BENCH_REDIS_URL
cd Benchmarks
swift run -c release checkpoint-benchmarks "$@"

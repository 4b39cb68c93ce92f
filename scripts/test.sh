#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, starts a throwaway PostgreSQL and Redis
# on loopback (stopped and removed at exit), builds (the benchmarks too, so that they keep
# compiling), and runs every test, then those of the example backend (Examples/FileBackend) and
# of the command-line tool (CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"
scripts/bootstrap.sh --test
swift build --build-tests
(cd Benchmarks && swift build)

servers="$(mktemp -d /tmp/checkpointing-test-servers.XXXXXX)"
chmod 755 "$servers"
cleanup() {
  scripts/pgbouncer-server.sh destroy "$servers/pgbouncer" || true
  scripts/postgres-server.sh destroy "$servers/postgres" || true
  scripts/redis-server.sh destroy "$servers/redis" || true
  rm -rf "$servers"
}
trap cleanup EXIT
CHECKPOINT_TEST_POSTGRES_URL="$(scripts/postgres-server.sh start "$servers/postgres" "${CHECKPOINT_TEST_POSTGRES_PORT:-55433}")"
export CHECKPOINT_TEST_POSTGRES_URL
# PgBouncer in transaction pooling mode in front of it (4 server connections per database).
CHECKPOINT_TEST_PGBOUNCER_URL="$(scripts/pgbouncer-server.sh start "$servers/pgbouncer" "${CHECKPOINT_TEST_PGBOUNCER_PORT:-55437}" "${CHECKPOINT_TEST_POSTGRES_PORT:-55433}" 0 600 4)"
export CHECKPOINT_TEST_PGBOUNCER_URL
CHECKPOINT_TEST_REDIS_URL="$(scripts/redis-server.sh start "$servers/redis" "${CHECKPOINT_TEST_REDIS_PORT:-55435}")"
export CHECKPOINT_TEST_REDIS_URL
swift test "$@"
# The example third-party backend, a package of its own built against the public API only,
# passes the conformance suite for what it declares.
swift test --package-path Examples/FileBackend
# The `checkpoint` command-line tool, run as a built executable against a SQLite file and the
# test PostgreSQL.
swift build --package-path CLI
swift test --package-path CLI

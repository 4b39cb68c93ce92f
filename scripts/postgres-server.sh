#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster on loopback, for the tests and benchmarks.
#
#   scripts/postgres-server.sh start DIR PORT   # initdb in DIR (when empty), start, print the URL
#   scripts/postgres-server.sh stop DIR         # stop the cluster (fast), keep DIR
#   scripts/postgres-server.sh kill DIR         # stop it abruptly (immediate mode), keep DIR
#   scripts/postgres-server.sh restart DIR      # restart it abruptly (immediate mode: no shutdown
#                                               # checkpoint, crash recovery on start)
#   scripts/postgres-server.sh destroy DIR      # stop it and remove DIR
#   scripts/postgres-server.sh start-standby DIR PORT PRIMARY_DIR PRIMARY_PORT [sync|async]
#                                               # a streaming standby of the cluster in
#                                               # PRIMARY_DIR (pg_basebackup), started; with sync
#                                               # (the default) the primary's synchronous standby:
#                                               # a commit is acknowledged once the standby has it
#                                               # on disk (and waits while the standby is down)
#   scripts/postgres-server.sh promote DIR      # promote a standby to primary
#
# The cluster runs as the `postgres` user (PostgreSQL refuses root), listens on 127.0.0.1 only,
# and has a role `checkpoint_app` (password `app-secret`, not a superuser, so row-level
# security applies to it) owning a database `checkpoints`, and a superuser `checkpoint_admin`
# (password `admin-secret`). The URL printed uses `checkpoint_app`.
set -euo pipefail
# The server outlives this script: it must not inherit the caller's descriptors beyond
# stdin/out/err (a parent that waits for a pipe or socket to close would wait forever).
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
export PATH="$PATH:/usr/sbin:/sbin"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$bin/pg_ctl" ] || { echo "PostgreSQL server binaries not found; run scripts/bootstrap.sh" >&2; exit 1; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# Starts the server; after an abrupt stop the old postmaster can take a moment to let go of
# its port and shared memory, so a failed start is retried, and the last one shows the log.
start_server() {
  for attempt in 1 2 3 4 5; do
    if as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null; then return 0; fi
    sleep 0.5
  done
  tail -n 20 "$dir/server.log" >&2
  return 1
}

command="${1:?usage: $0 start|stop|kill|restart|destroy|start-standby|promote DIR [PORT]}"
dir="${2:?usage: $0 start|stop|kill|restart|destroy|start-standby|promote DIR [PORT]}"

case "$command" in
  start)
    port="${3:?usage: $0 start DIR PORT}"
    mkdir -p "$dir"
    chown postgres "$dir" 2>/dev/null || true
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_postgres "$bin/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log" >&2; exit 1; }
      cat >>"$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 500
fsync = on
synchronous_commit = on
shared_buffers = 128MB
EOF
      start_server
      as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 <<'EOF'
CREATE ROLE checkpoint_app LOGIN PASSWORD 'app-secret';
CREATE ROLE checkpoint_admin LOGIN SUPERUSER PASSWORD 'admin-secret';
CREATE DATABASE checkpoints OWNER checkpoint_app;
EOF
    else
      start_server
    fi
    echo "postgres://checkpoint_app:app-secret@127.0.0.1:$port/checkpoints"
    ;;
  stop)
    as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    ;;
  kill)
    as_postgres "$bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null
    ;;
  restart)
    # A failed start after the stop (the old postmaster still letting go) is retried.
    as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -m immediate -w -t 60 restart >/dev/null 2>&1 || start_server
    ;;
  start-standby)
    port="${3:?usage: $0 start-standby DIR PORT PRIMARY_DIR PRIMARY_PORT}"
    primary_dir="${4:?usage: $0 start-standby DIR PORT PRIMARY_DIR PRIMARY_PORT}"
    primary_port="${5:?usage: $0 start-standby DIR PORT PRIMARY_DIR PRIMARY_PORT}"
    replication="${6:-sync}"
    primary_sql() {
      as_postgres "$bin/psql" -h "$primary_dir" -p "$primary_port" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 -c "$1"
    }
    mkdir -p "$dir"
    chown postgres "$dir" 2>/dev/null || true
    chmod 700 "$dir"
    # The copy's postgresql.conf is the primary's: its own port and socket are appended (the
    # last setting wins). The primary is made synchronous only after the copy, which would
    # otherwise inherit synchronous_standby_names and wait for a standby of its own once promoted.
    as_postgres env PGPASSWORD=admin-secret "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U checkpoint_admin \
      -D "$dir" -R -X stream -c fast >"$dir.basebackup.log" 2>&1 || { cat "$dir.basebackup.log" >&2; exit 1; }
    cat >>"$dir/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
hot_standby = on
EOF
    start_server
    if [ "$replication" = async ]; then
      for _ in $(seq 1 300); do
        [ "$(primary_sql "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
        sleep 0.1
      done
      echo "postgres://checkpoint_app:app-secret@127.0.0.1:$port/checkpoints"
      exit 0
    fi
    primary_sql "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
    primary_sql "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 300); do
      [ "$(primary_sql "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'")" = 1 ] && break
      sleep 0.1
    done
    [ "$(primary_sql "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] \
      || { echo "the standby never became the primary's synchronous standby" >&2; tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "postgres://checkpoint_app:app-secret@127.0.0.1:$port/checkpoints"
    ;;
  promote)
    as_postgres "$bin/pg_ctl" -D "$dir" -w -t 60 promote >/dev/null
    ;;
  destroy)
    as_postgres "$bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir" "$dir.initdb.log" "$dir.basebackup.log"
    ;;
  *)
    echo "usage: $0 start|stop|kill|restart|destroy|start-standby|promote DIR [PORT]" >&2
    exit 2
    ;;
esac

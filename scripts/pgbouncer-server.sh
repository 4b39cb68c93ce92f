#!/usr/bin/env bash
# Starts or stops a throwaway PgBouncer on loopback in front of the test PostgreSQL (see
# postgres-server.sh), in transaction pooling mode, for the tests and benchmarks.
#
#   scripts/pgbouncer-server.sh start DIR PORT POSTGRES_PORT [CLIENT_IDLE_S] [SERVER_IDLE_S] [POOL_SIZE]
#       # writes DIR/pgbouncer.ini, starts it, prints the URL (role checkpoint_app, database
#       # checkpoints; any database name is passed on to the server's of that name); idle timeouts in seconds (default 0 and 600, PgBouncer's own defaults),
#       # POOL_SIZE server connections (default 20)
#   scripts/pgbouncer-server.sh stop DIR       # stop it (SIGTERM), keep DIR
#   scripts/pgbouncer-server.sh destroy DIR    # stop it and remove DIR
#
# The admin console (database `pgbouncer`) takes the same role, for tests that read
# `SHOW CLIENTS`. PgBouncer refuses to run as root: it runs as the `postgres` user.
set -euo pipefail
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
export PATH="$PATH:/usr/sbin:/sbin"
command -v pgbouncer >/dev/null || { echo "pgbouncer not found; run scripts/bootstrap.sh --test" >&2; exit 1; }
command="${1:?usage: $0 start|stop|destroy DIR [PORT POSTGRES_PORT [CLIENT_IDLE_S] [SERVER_IDLE_S] [POOL_SIZE]]}"
dir="${2:?usage: $0 start|stop|destroy DIR ...}"

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

stop_server() {
  [ -f "$dir/pgbouncer.pid" ] || return 0
  local pid
  pid="$(cat "$dir/pgbouncer.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pgbouncer.pid"
}

case "$command" in
  start)
    port="${3:?usage: $0 start DIR PORT POSTGRES_PORT}"
    upstream="${4:?usage: $0 start DIR PORT POSTGRES_PORT}"
    client_idle="${5:-0}"
    server_idle="${6:-600}"
    pool_size="${7:-20}"
    mkdir -p "$dir"
    cat >"$dir/userlist.txt" <<'EOF'
"checkpoint_app" "app-secret"
EOF
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$upstream

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
admin_users = checkpoint_app
pool_mode = transaction
default_pool_size = $pool_size
max_client_conn = 1000
client_idle_timeout = $client_idle
server_idle_timeout = $server_idle
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    chown -R postgres "$dir" 2>/dev/null || true
    as_postgres pgbouncer -d -q "$dir/pgbouncer.ini"
    ready=no
    for _ in $(seq 1 600); do
      if PGPASSWORD=app-secret psql -h 127.0.0.1 -p "$port" -U checkpoint_app -d pgbouncer -Atqc "SHOW VERSION" >/dev/null 2>&1; then
        ready=yes
        break
      fi
      sleep 0.05
    done
    if [ "$ready" != yes ]; then
      echo "pgbouncer on port $port did not answer within 30 s; its log:" >&2
      tail -20 "$dir/pgbouncer.log" >&2 || true
      exit 1
    fi
    echo "postgres://checkpoint_app:app-secret@127.0.0.1:$port/checkpoints"
    ;;
  stop) stop_server ;;
  destroy)
    stop_server
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop|destroy DIR ..." >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Starts or stops a throwaway redis-server on loopback, for the tests and benchmarks.
#
#   scripts/redis-server.sh start DIR PORT [PASSWORD]   # start (no persistence), print the URL
#   scripts/redis-server.sh start-aof DIR PORT          # start with an append-only file in DIR
#                                                       # (fsync every second): after a kill, the
#                                                       # same command brings it back with its data
#   scripts/redis-server.sh stop DIR                    # stop it (SIGTERM), keep DIR
#   scripts/redis-server.sh kill DIR                    # stop it abruptly (SIGKILL), keep DIR
#   scripts/redis-server.sh destroy DIR                 # stop it and remove DIR
set -euo pipefail
# The server outlives this script: it must not inherit the caller's descriptors beyond
# stdin/out/err (a parent that waits for a pipe or socket to close would wait forever).
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
command -v redis-server >/dev/null || { echo "redis-server not found; run scripts/bootstrap.sh --test" >&2; exit 1; }
command="${1:?usage: $0 start|start-aof|stop|kill|destroy DIR [PORT] [PASSWORD]}"
dir="${2:?usage: $0 start|start-aof|stop|kill|destroy DIR [PORT] [PASSWORD]}"

signal_server() {
  [ -f "$dir/redis.pid" ] || return 0
  local pid
  pid="$(cat "$dir/redis.pid")"
  kill "-$1" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$dir/redis.pid"
}

case "$command" in
  start | start-aof)
    port="${3:?usage: $0 $command DIR PORT [PASSWORD]}"
    mkdir -p "$dir"
    auth=()
    [ -n "${4:-}" ] && auth=(--requirepass "$4")
    persistence=(--appendonly no)
    [ "$command" = start-aof ] && persistence=(--appendonly yes --appendfsync everysec)
    # DEBUG (for tests that freeze the server with DEBUG SLEEP) only from loopback clients.
    redis-server --bind 127.0.0.1 --port "$port" --save '' "${persistence[@]}" --daemonize yes --enable-debug-command local \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "${auth[@]}" </dev/null >/dev/null
    # Wait (up to 30 s, on a loaded machine) until it answers PING, which it does only once it
    # has loaded its data; a server that never answers fails the start, with its log.
    ready=no
    for _ in $(seq 1 600); do
      if redis-cli -p "$port" ${4:+-a "$4" --no-auth-warning} ping 2>/dev/null | grep -q PONG; then ready=yes; break; fi
      sleep 0.05
    done
    if [ "$ready" != yes ]; then
      echo "redis-server on port $port did not answer PING within 30 s; its log:" >&2
      tail -20 "$dir/redis.log" >&2 || true
      exit 1
    fi
    echo "redis://${4:+:$4@}127.0.0.1:$port/0"
    ;;
  stop) signal_server TERM ;;
  kill) signal_server KILL ;;
  destroy)
    signal_server KILL
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|start-aof|stop|kill|destroy DIR [PORT] [PASSWORD]" >&2
    exit 2
    ;;
esac

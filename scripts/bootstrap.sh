#!/usr/bin/env bash
# Installs the Debian packages the project builds with, when they are missing.
#   scripts/bootstrap.sh          # build dependencies (SQLite, libsodium, libpq, hiredis headers)
#   scripts/bootstrap.sh --test   # and the servers the tests run against (PostgreSQL, PgBouncer, Redis)
set -euo pipefail
packages=(libsqlite3-dev sqlite3 libsodium-dev libpq-dev libhiredis-dev pkg-config)
if [ "${1:-}" = "--test" ]; then
  packages+=(postgresql postgresql-client pgbouncer redis-server redis-tools)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

#!/usr/bin/env bash
# PostgreSQL from Debian's packages, for tests and local runs: no Docker, no system service.
#   deploy/local/postgres.sh start   # prints a DATABASE_URL for Newsflow
#   deploy/local/postgres.sh stop
#   deploy/local/postgres.sh url
# Data lives in $NEWSFLOW_PG_DIR (default /tmp/newsflow-postgres); port $NEWSFLOW_PG_PORT (default 54329).
set -euo pipefail
dir="${NEWSFLOW_PG_DIR:-/tmp/newsflow-postgres}"
port="${NEWSFLOW_PG_PORT:-54329}"
url="postgresql+asyncpg://newsflow:newsflow@127.0.0.1:${port}/newsflow"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "PostgreSQL is not installed: run 'apt-get install postgresql' (or use 'docker compose up')." >&2
  exit 3
fi

# initdb refuses to run as root: use the postgres account the Debian package creates.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ ! -s "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
      as_owner "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    fi
    psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -q)
    if ! "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'newsflow'" | grep -q 1; then
      "${psql[@]}" -c "CREATE ROLE newsflow LOGIN PASSWORD 'newsflow' CREATEDB"
    fi
    if ! "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'newsflow'" | grep -q 1; then
      "${psql[@]}" -c "CREATE DATABASE newsflow OWNER newsflow"
    fi
    echo "$url"
    ;;
  stop)
    if [ -s "$dir/PG_VERSION" ]; then as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true; fi
    ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac

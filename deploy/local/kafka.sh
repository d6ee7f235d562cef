#!/usr/bin/env bash
# A real Apache Kafka 4.x broker without Docker: jars resolved from Maven Central with Maven
# (cached in ~/.cache/newsflow), one KRaft node on 127.0.0.1.
#   deploy/local/kafka.sh start   # prints the bootstrap address (127.0.0.1:9092 unless taken)
#   deploy/local/kafka.sh stop
# Needs Java 17+ and Maven; without them it says so and points to `docker compose up`.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
newsflow="${NEWSFLOW_BIN:-$here/.venv/bin/newsflow}"
if [ ! -x "$newsflow" ]; then
  echo "The newsflow command is not installed: run 'make setup' first." >&2
  exit 1
fi
case "${1:-}" in
  start) exec "$newsflow" kafka start --workdir "${NEWSFLOW_HOME:-$here/.newsflow}/kafka" --port "${KAFKA_PORT:-9092}" ;;
  stop) exec "$newsflow" kafka stop --workdir "${NEWSFLOW_HOME:-$here/.newsflow}/kafka" ;;
  fetch) exec "$newsflow" kafka fetch ;;
  *) echo "usage: $0 start|stop|fetch" >&2; exit 2 ;;
esac

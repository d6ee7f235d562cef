#!/usr/bin/env bash
# Builds local stand-ins for the two images Compose pulls, for machines where no container registry answers:
#   apache/kafka:4.1.1 -> localhost/newsflow-kafka-stand-in:4.1.1 (the same broker jars from Maven Central, Java 17)
#   postgres:17        -> localhost/newsflow-postgres-stand-in:15 (Debian bookworm's PostgreSQL 15)
# each with the real image's user, folders and environment variables (deploy/images/stand-ins/*/Containerfile).
#   eval "$(deploy/images/stand-ins.sh)"     # prints KAFKA_IMAGE=... and POSTGRES_IMAGE=... for Compose
#   docker compose up
# Needs podman (or docker), mmdebstrap and Maven (deploy/images/setup-podman.sh, deploy/local/system-packages.sh).
# Idempotent: an image is built again only when its folder changed (--rebuild to build both again).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
engine="${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}"
kafka_tag=localhost/newsflow-kafka-stand-in:4.1.1
postgres_tag=localhost/newsflow-postgres-stand-in:15
rebuild=false
[ "${1-}" = --rebuild ] && rebuild=true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
format=()
[ "$engine" = podman ] && format=(--format docker)  # keeps HEALTHCHECK; docker build has no such flag

# A stand-in is built again when its folder changed since: the image carries the folder's hash as a label.
digest() { (cd "$root/deploy/images/stand-ins/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
exists() {
  local tag=$1 folder=$2
  ! $rebuild && [ "$("$engine" image inspect --format '{{index .Config.Labels "io.newsflow.stand-in"}}' "$tag" 2>/dev/null)" = "$(digest "$folder")" ]
}

if ! exists "$kafka_tag" kafka; then
  base=$(CONTAINER_ENGINE="$engine" "$root/deploy/images/stand-in-base.sh" localhost/newsflow-stand-in-jre:bookworm \
    openjdk-17-jre-headless)
  cp -r "$root/deploy/images/stand-ins/kafka" "$work/kafka"
  mvn -q -B -f "$work/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$work/kafka/libs" \
    -DincludeScope=runtime >&2
  echo "stand-ins: building $kafka_tag" >&2
  "$engine" build "${format[@]}" --build-arg "BASE_IMAGE=$base" --label "io.newsflow.stand-in=$(digest kafka)" \
    -f "$work/kafka/Containerfile" -t "$kafka_tag" "$work/kafka" >&2
fi
if ! exists "$postgres_tag" postgres; then
  base=$(CONTAINER_ENGINE="$engine" "$root/deploy/images/stand-in-base.sh" \
    localhost/newsflow-stand-in-postgres-base:bookworm postgresql-15,postgresql-client-15)
  echo "stand-ins: building $postgres_tag" >&2
  "$engine" build "${format[@]}" --build-arg "BASE_IMAGE=$base" --label "io.newsflow.stand-in=$(digest postgres)" \
    -f "$root/deploy/images/stand-ins/postgres/Containerfile" -t "$postgres_tag" "$root/deploy/images/stand-ins/postgres" >&2
fi
echo "export KAFKA_IMAGE=$kafka_tag"
echo "export POSTGRES_IMAGE=$postgres_tag"

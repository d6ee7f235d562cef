#!/usr/bin/env bash
# Prints a Docker Compose command for this machine, building one if there is none: `docker compose` where Docker's
# plugin answers, else `docker-compose` on the PATH, else Docker Compose v5 built from the Go module proxy into
# ~/.cache/newsflow/bin (about two minutes once; Debian has no Compose v2 and no registry serves its binary here).
#   compose=$(deploy/compose/get-compose.sh) && $compose version
# With Podman, point it at Podman's Docker API: podman system service --time=0 unix:///run/podman/podman.sock &
# export DOCKER_HOST=unix:///run/podman/podman.sock
set -euo pipefail
version=v5.6.0
bin="$HOME/.cache/newsflow/bin/docker-compose-$version"
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  echo "docker compose"
  exit 0
fi
# Docker Compose v2 or later only: podman-compose answers to this name too, without --wait or health in `ps`.
if command -v docker-compose >/dev/null 2>&1 && [[ "$(docker-compose version 2>/dev/null)" =~ ^Docker\ Compose\ version\ v[2-9] ]]; then
  command -v docker-compose
  exit 0
fi
if [ ! -x "$bin" ]; then
  command -v go >/dev/null 2>&1 || { echo "no Docker Compose and no Go to build one with" >&2; exit 1; }
  echo "compose: building Docker Compose $version from the Go module proxy into $bin" >&2
  source=$(go mod download -json "github.com/docker/compose/v5@$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
  # Built as the main module, so that its go.mod's replace and exclude lines apply (`go install pkg@version` refuses).
  cp -r "$source/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$(dirname "$bin")"
  (cd "$work" && go build -trimpath -ldflags "-X github.com/docker/compose/v5/internal.Version=$version" \
    -o "$bin.partial" ./cmd) >&2
  mv "$bin.partial" "$bin"
fi
echo "$bin"

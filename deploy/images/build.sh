#!/usr/bin/env bash
# Builds the four service images from the repository root with podman (or docker) and prints their sizes.
#   deploy/images/build.sh [SERVICE...]        # default: ingest cleanup classify storage
# Tags newsflow-<service>:latest (IMAGE_TAG to change). Environment:
#   CONTAINER_ENGINE   podman or docker (default: podman if installed, else docker)
#   BASE_IMAGE         the Python base; by default the Dockerfiles' pinned python:3.11-slim, or, when no registry
#                      answers, a stand-in built from Debian's packages (deploy/images/stand-in-base.sh)
#   TORCH_INDEX_URL    where classify's torch comes from; by default PyTorch's CPU index, or PyPI (the larger
#                      CUDA build) when that index does not answer
#   CLASSIFY_TARGET    runtime (default, no compiler) or compiled (adds g++ for torch.compile)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(ingest cleanup classify storage)
engine="${CONTAINER_ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}"
tag="${IMAGE_TAG:-latest}"
pinned=$(sed -n 's/^ARG BASE_IMAGE=//p' services/ingest/Dockerfile)

args=()
if [ "$engine" = podman ]; then
  args+=(--format docker)  # podman's docker format keeps HEALTHCHECK (OCI images drop it); docker has no such flag
  # Builds reach the package registries through the host's network and its CA bundle (a proxy may re-sign TLS),
  # and reuse the host's uv cache (the same one `make setup` fills), so a rebuild downloads nothing again.
  cache="${UV_CACHE_DIR:-$HOME/.cache/newsflow/uv}"
  mkdir -p "$cache"
  args+=(--network host -v /etc/ssl/certs:/etc/ssl/certs:ro -v "$cache:/root/.cache/uv")
  [ -f /etc/pip.conf ] && args+=(-v /etc/pip.conf:/etc/pip.conf:ro)
fi

base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if "$engine" image inspect "$pinned" >/dev/null 2>&1 || "$engine" pull -q "$pinned" >/dev/null 2>&1; then
    base="$pinned"
  else
    echo "images: $pinned cannot be pulled here; building a stand-in from Debian's packages" >&2
    base=$(CONTAINER_ENGINE="$engine" deploy/images/stand-in-base.sh)
  fi
fi
args+=(--build-arg "BASE_IMAGE=$base")

torch_index="${TORCH_INDEX_URL:-}"
if [ -z "$torch_index" ] && [[ " ${services[*]} " == *" classify "* ]]; then
  if python3 -c 'import urllib.request; urllib.request.urlopen("https://download.pytorch.org/whl/cpu/torch/", timeout=10)' 2>/dev/null; then
    torch_index=https://download.pytorch.org/whl/cpu
  else
    echo "images: PyTorch's CPU index does not answer; classify gets torch from PyPI (the CUDA build, larger)" >&2
    torch_index=https://pypi.org/simple
  fi
fi

for service in "${services[@]}"; do
  extra=()
  if [ "$service" = classify ]; then
    extra+=(--build-arg "TORCH_INDEX_URL=$torch_index" --target "${CLASSIFY_TARGET:-runtime}")
  fi
  echo "images: building newsflow-$service:$tag on $base" >&2
  start=$SECONDS
  previous=$("$engine" image inspect --format '{{.Id}}' "newsflow-$service:$tag" 2>/dev/null || true)
  "$engine" build "${args[@]}" "${extra[@]}" -f "services/$service/Dockerfile" -t "newsflow-$service:$tag" . >&2
  echo "images: newsflow-$service built in $((SECONDS - start)) s" >&2
  # The image this tag named before is left untagged by the rebuild: remove it, so rebuilds do not pile up. The
  # engine refuses while a container uses it or another tag names it, and then it stays.
  current=$("$engine" image inspect --format '{{.Id}}' "newsflow-$service:$tag")
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    "$engine" rmi "$previous" >/dev/null 2>&1 || true
  fi
done
for service in "${services[@]}"; do
  "$engine" image inspect --format "newsflow-$service:$tag {{.Size}}" "newsflow-$service:$tag" |
    awk '{printf "%-28s %6.0f MB\n", $1, $2 / 1e6}'
done

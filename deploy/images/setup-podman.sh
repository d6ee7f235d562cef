#!/usr/bin/env bash
# Installs what building and running the images without a Docker engine needs: Debian's podman and buildah, and
# mmdebstrap for the stand-in base image. Runs as root (or through sudo). Idempotent.
#   deploy/images/setup-podman.sh
set -euo pipefail
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman buildah runc uidmap fuse-overlayfs slirp4netns)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "images: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A sandbox may not raise resource limits: the containers' limits stay at or below the host's (4096 at most).
limit() {
  local value
  value=$(ulimit "$1")
  if [ "$value" = unlimited ] || [ "$value" -gt 4096 ]; then value=4096; fi
  echo "$value"
}
if [ ! -f /etc/containers/containers.conf ]; then
  $sudo mkdir -p /etc/containers
  # runc: crun refuses a hybrid cgroup layout that runc accepts.
  $sudo tee /etc/containers/containers.conf >/dev/null <<CONF
[containers]
default_ulimits = ["nofile=$(limit -n):$(limit -n)", "nproc=$(limit -u):$(limit -u)"]
[engine]
runtime = "runc"
CONF
fi

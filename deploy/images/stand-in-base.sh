#!/usr/bin/env bash
# Builds a stand-in for python:3.11-slim from Debian bookworm's own packages (Python 3.11), for machines that
# cannot pull from a container registry. The images are then built with --build-arg BASE_IMAGE=<this tag>.
#   deploy/images/stand-in-base.sh [TAG [PACKAGES]]   # default localhost/newsflow-base:bookworm-py3.11
# PACKAGES (comma-separated) makes another Debian base instead: deploy/images/stand-ins.sh's Java one.
# Needs mmdebstrap and podman (deploy/images/setup-podman.sh installs both). Idempotent: an existing tag is kept.
set -euo pipefail
tag="${1:-localhost/newsflow-base:bookworm-py3.11}"
# python3-venv brings ensurepip so `python -m venv` gets pip; python-is-python3 gives `python`.
python=python3,python3-venv,python-is-python3
packages="${2:-$python}"
engine="${CONTAINER_ENGINE:-podman}"
if "$engine" image exists "$tag" 2>/dev/null; then
  echo "$tag"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# minbase: Essential and Priority:required packages (bash, coreutils, passwd for useradd) plus apt, as the real
# slim image has. The docs, man pages and locales the real slim image also leaves out are dropped by the dpkg
# filters; man1 stays as an empty folder, where update-alternatives links the man pages of Java's commands.
mmdebstrap --quiet --variant=minbase --include="ca-certificates,$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --essential-hook='mkdir -p "$1/usr/share/man/man1"' bookworm "$work/base.tar" >&2
changes=(--change 'ENV LANG=C.UTF-8')
[ "$packages" = "$python" ] && changes+=(--change 'CMD ["python3"]')
"$engine" import "${changes[@]}" "$work/base.tar" "$tag" >/dev/null
echo "$tag"

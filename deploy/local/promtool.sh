#!/usr/bin/env bash
# Prints the path of a promtool, Prometheus' rule checker and tester, which the alerts' tests run
# (tests/alerts/newsflow-alerts.test.yml). One on the PATH is used as it is; else Debian's prometheus package is
# downloaded and unpacked into ~/.cache/newsflow/promtool (or under NEWSFLOW_CACHE) once: no root, and nothing
# installed or started (installing the package would also start a Prometheus server on port 9090).
#   promtool=$(deploy/local/promtool.sh) && "$promtool" --version
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
cache="${NEWSFLOW_CACHE:-$HOME/.cache/newsflow}/promtool"
bin="$cache/usr/bin/promtool"
if [ ! -x "$bin" ]; then
  command -v apt-get >/dev/null 2>&1 || {
    echo "promtool: none on the PATH and no apt-get to fetch Debian's prometheus package; install promtool" >&2
    exit 1
  }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "promtool: unpacking Debian's prometheus package into $cache" >&2
  # A fresh machine may have no package lists yet: read them first where this may (root).
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 || true
    (cd "$work" && apt-get download prometheus >/dev/null) || {
      echo "promtool: apt-get download prometheus failed (run apt-get update, or install promtool)" >&2
      exit 1
    }
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/unpacked"
  mkdir -p "$cache/usr/bin"
  cp "$work/unpacked/usr/bin/promtool" "$bin.partial"
  mv "$bin.partial" "$bin"
fi
echo "$bin"

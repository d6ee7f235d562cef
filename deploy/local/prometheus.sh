#!/usr/bin/env bash
# Prints the path of Prometheus' own programs, for the tests: promtool, the rule checker and tester that runs the
# alerts' scenarios (tests/alerts/newsflow-alerts.test.yml), or the prometheus server that scrapes a running pipeline
# in tests/integration/test_prometheus.py. Those on the PATH are used as they are; else Debian's prometheus package
# is downloaded and unpacked into ~/.cache/newsflow/prometheus (or under NEWSFLOW_CACHE) once: no root, and
# nothing installed or started (installing the package would also start a Prometheus server on port 9090).
#   promtool=$(deploy/local/prometheus.sh promtool) && "$promtool" --version
#   prometheus=$(deploy/local/prometheus.sh prometheus)
set -euo pipefail
program=${1:-promtool}
case "$program" in promtool | prometheus) ;; *)
  echo "usage: $0 promtool|prometheus" >&2
  exit 2
  ;;
esac
if command -v "$program" >/dev/null 2>&1; then
  command -v "$program"
  exit 0
fi
cache="${NEWSFLOW_CACHE:-$HOME/.cache/newsflow}/prometheus"
if [ ! -x "$cache/usr/bin/promtool" ] || [ ! -x "$cache/usr/bin/prometheus" ]; then
  command -v apt-get >/dev/null 2>&1 || {
    echo "$program: none on the PATH and no apt-get to fetch Debian's prometheus package; install Prometheus" >&2
    exit 1
  }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "$program: unpacking Debian's prometheus package into $cache" >&2
  # A fresh machine may have no package lists yet: read them first where this may (root).
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
    (cd "$work" && apt-get download prometheus >/dev/null) || {
      echo "$program: apt-get download prometheus failed (run apt-get update, or install Prometheus)" >&2
      exit 1
    }
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/unpacked"
  mkdir -p "$cache/usr/bin"
  for name in promtool prometheus; do
    cp "$work/unpacked/usr/bin/$name" "$cache/usr/bin/$name.partial"
    mv "$cache/usr/bin/$name.partial" "$cache/usr/bin/$name"
  done
fi
echo "$cache/usr/bin/$program"

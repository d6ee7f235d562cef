#!/usr/bin/env bash
# The Debian packages `make demo` and `make test` need besides Python, checked before anything else runs, so that a
# fresh machine fails (or is set up) in one place with one clear line instead of halfway through the test suite.
#   deploy/local/system-packages.sh demo   # the Kafka broker: Java 17 and Maven
#   deploy/local/system-packages.sh test   # also PostgreSQL, g++, openssl and Chromium for the tests
# What is missing is installed with apt-get when this may (as root, or with sudo that asks no password);
# NEWSFLOW_INSTALL_PACKAGES=0 only checks and prints the command to run. Idempotent and silent when nothing is missing.
set -euo pipefail

purpose=${1:-test}
case "$purpose" in demo | test) ;; *)
  echo "usage: $0 demo|test" >&2
  exit 2
  ;;
esac

missing=()
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)  # `python3 -m venv` for .venv
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)      # runs the Kafka broker
command -v mvn >/dev/null 2>&1 || missing+=(maven)                         # resolves the broker's jars
if [ "$purpose" = test ]; then
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)  # the `postgres` tests
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)  # PostgreSQL refuses to run as root
  command -v g++ >/dev/null 2>&1 || missing+=(g++)              # torch.compile of the classify encoder
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)      # certificates of the SASL_SSL broker
  # The web page's tests (`browser`) drive Debian's Chromium: Playwright's own browser download is not used.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0

command_line="apt-get install -y ${missing[*]}"
may_install=false
if [ "${NEWSFLOW_INSTALL_PACKAGES:-1}" != 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    sudo=""
    may_install=true
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
    may_install=true
  fi
fi
if [ "$may_install" != true ]; then
  echo "newsflow: make $purpose needs these Debian packages: ${missing[*]}" >&2
  echo "newsflow: install them with: sudo $command_line" >&2
  exit 1
fi
echo "newsflow: installing what make $purpose needs: ${missing[*]} (NEWSFLOW_INSTALL_PACKAGES=0 only checks)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null

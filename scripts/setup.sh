#!/usr/bin/env bash
# Installs what ceramic-audit's build and tests need and the machine lacks. Idempotent; run by
# scripts/test.sh and .ci/run, so a fresh machine needs nothing done by hand.
set -euo pipefail

need_rustup_component() {
  # rustfmt and clippy ship as rustup components; a minimal toolchain may lack them.
  local tool=$1 component=$2
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      echo "setup: installing rustup component $component" >&2
      rustup component add "$component"
    else
      echo "setup: cargo $tool is missing and rustup is not available to install $component" >&2
      exit 1
    fi
  fi
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; this project needs a Rust toolchain (rustup) on PATH" >&2
  exit 1
fi
need_rustup_component fmt rustfmt
need_rustup_component clippy clippy

# PostgreSQL server binaries for the integration tests (temporary servers started by the tests).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing postgresql (initdb not found)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: initdb not found and apt-get is not available; install PostgreSQL server binaries" >&2
    exit 1
  fi
fi
# pg_dump and pg_restore for `backup`/`restore` and their tests (issue 14): a machine can have the
# server binaries (initdb) without the client tools.
if ! command -v pg_dump >/dev/null 2>&1 || ! command -v pg_restore >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing postgresql-client (pg_dump or pg_restore not found)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-client >/dev/null
  else
    echo "setup: pg_dump/pg_restore not found and apt-get is not available; install the PostgreSQL client tools" >&2
    exit 1
  fi
fi
# Running as root, the tests start Postgres as the `postgres` user (it refuses root), via runuser.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "setup: creating the postgres system user for the test servers" >&2
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# The real-node suite (interop/test.sh, run by .ci/run) drives js-ceramic with Node.js/npm and
# uses curl, openssl and python3 in its scripts.
missing=()
for tool in node npm curl openssl python3; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    pkgs=()
    for t in "${missing[@]}"; do
      case $t in node) pkgs+=(nodejs) ;; *) pkgs+=("$t") ;; esac
    done
    echo "setup: installing ${pkgs[*]} (not found)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "setup: ${missing[*]} not found and apt-get is not available (needed by interop/)" >&2
    exit 1
  fi
fi

# The alert rules in deploy/ are checked with promtool (tests/suite/deploy.rs), which Debian
# ships in its prometheus package (~100 MB; the server is not started by the tests).
if ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing prometheus (for promtool)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "setup: promtool not found and apt-get is not available (needed by tests/suite/deploy.rs)" >&2
    exit 1
  fi
fi

# The gate part of interop/heal-test.sh runs a real HAProxy (Debian's package) in front of two
# nodes. It lives in /usr/sbin, which a non-root PATH may lack.
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing haproxy (not found)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
  else
    echo "setup: haproxy not found and apt-get is not available (needed by interop/heal-test.sh)" >&2
    exit 1
  fi
fi

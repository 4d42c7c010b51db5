#!/bin/sh
# Installs what the index-audit benchmark runs beside ceramic-audit: reladiff (the maintained
# data-diff, from PyPI) in a virtualenv, psql for the naive dump-and-compare script, and ip/tc
# (iproute2) for the shaped links.
# Prints the reladiff executable's path on its last line.
set -eu
venv=${CERAMIC_AUDIT_BENCH_VENV:-$HOME/.cache/ceramic-audit/bench-venv}
if ! command -v psql > /dev/null; then
    apt-get install -y postgresql-client >&2 # install psql for benches/naive_audit.sh
fi
if ! command -v tc > /dev/null || ! command -v ip > /dev/null; then
    apt-get install -y iproute2 >&2 # install ip and tc for the shaped links (benches/index_audit/link.rs)
fi
if [ ! -x "$venv/bin/reladiff" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'reladiff[postgresql]==0.6.0' >&2 # install reladiff (hashdiff peer)
fi
echo "$venv/bin/reladiff"

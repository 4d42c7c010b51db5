#!/bin/sh
# Installs what the index-audit benchmark runs beside ceramic-audit: reladiff (the maintained
# data-diff, from PyPI) in a virtualenv, and psql for the naive dump-and-compare script.
# Prints the reladiff executable's path on its last line.
set -eu
venv=${CERAMIC_AUDIT_BENCH_VENV:-$HOME/.cache/ceramic-audit/bench-venv}
if ! command -v psql > /dev/null; then
    apt-get install -y postgresql-client >&2 # install psql for benches/naive_audit.sh
fi
if [ ! -x "$venv/bin/reladiff" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'reladiff[postgresql]==0.6.0' >&2 # install reladiff (hashdiff peer)
fi
echo "$venv/bin/reladiff"

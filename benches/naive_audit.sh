#!/bin/sh
# The audit an operator would script without ceramic-audit: dump each node's rows with psql's
# \copy (all nodes at once), sort them, and compare the dumps with comm. Prints the number of
# stream ids that differ on any node and the largest dump's size in bytes:
#   differing=<n> bytes=<max dump bytes>
# Usage: naive_audit.sh MODEL COLUMNS DSN_A DSN_B [DSN_C ...]
#   COLUMNS: the SQL select list after stream_id (e.g. `tip`).
set -eu
model=$1
columns=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for dsn in "$@"; do
    # LC_ALL=C: sort and comm in byte order, as the dumps are compared.
    (psql "$dsn" -XAtq -c "\\copy (SELECT stream_id, $columns FROM \"$model\") TO STDOUT" \
        | LC_ALL=C sort > "$tmp/$i") &
    i=$((i + 1))
done
wait
n=$i
# A stream is the same everywhere exactly when its line is the same on the first node and on
# every other one, so comparing the first dump with each other dump finds every difference.
i=1
while [ "$i" -lt "$n" ]; do
    LC_ALL=C comm -3 "$tmp/0" "$tmp/$i"
    i=$((i + 1))
done | sed 's/^\t//' | cut -f1 | LC_ALL=C sort -u > "$tmp/diff"
bytes=$(wc -c "$tmp"/[0-9]* | awk '$2 != "total" && $1 > m { m = $1 } END { print m + 0 }')
echo "differing=$(wc -l < "$tmp/diff") bytes=$bytes"

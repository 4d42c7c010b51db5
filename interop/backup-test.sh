#!/usr/bin/env bash
# The backup disaster drill against real js-ceramic nodes (issue 14). On a 3-node cluster (a, b
# on Postgres, c on SQLite):
#   1. node b is backed up while a keeps writing to streams b syncs; `backup verify` passes;
#   2. after more writes, a second backup differs from the first only in the streams written;
#   3. more writes after that backup; then b's daemon and js-ipfs are stopped and its index
#      database, state store and IPFS repo deleted; `restore` puts the second backup back (the
#      IPFS starts from an empty repo), and b starts: every stream b had at backup time loads with
#      the same tip and content, its index rows are back, an audit shows only what was written
#      after the backup, `repair --apply` brings it over, and the final audit is clean.
# Also: restore refuses a non-empty target and a damaged backup, and nothing is written then.
#
# usage: interop/backup-test.sh      (builds the release binary; leaves nothing running)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CFG="$HERE/cluster.toml"
fail() { echo "FAIL: $*"; exit 1; }

# Index rows of node b's notes as "stream tip content" lines (sorted).
b_rows() { pg b "select stream_id || ' ' || tip || ' ' || stream_content::text from \"$NOTE_MODEL\" order by 1"; }
# Note rows of a backup's dump as "stream tip" lines (sorted).
dump_rows() {
  pg_restore --data-only -f - "$1/index/index.pgdump" | python3 -c '
import sys
model, rows, cur = sys.argv[1], [], False
for line in sys.stdin:
    line = line.rstrip("\n")
    if line.startswith("COPY ") and line.split(" ")[1].split(".")[-1].strip("\"") == model:
        cols = line.split(" (", 1)[1].split(") FROM")[0].split(", ")
        cur = True; continue
    if cur and line == "\\.": cur = False; continue
    if cur:
        f = dict(zip(cols, line.split("\t"))); rows.append("%s %s" % (f["stream_id"], f["tip"]))
print("\n".join(sorted(rows)))' "$NOTE_MODEL"
}
state_on_b() { # stream -> "tip content" as b serves it without syncing
  node -e 'fetch(process.argv[1]).then((r) => r.json()).then((j) => console.log(j.state.log.at(-1).cid, JSON.stringify(j.state.content)))' \
    "http://127.0.0.1:$((BASE + 2))/api/v0/streams/$1?sync=2"
}

s=()
for i in 1 2 3 4 5 6; do s+=("$("$C" mid a create note "{\"title\":\"note $i\",\"count\":$i}" | stream_of)"); done
"$C" mid a update "${s[0]}" '{"title":"note 1 v1"}' >/dev/null
wait_rows 6
sleep 3

# 1. A backup of b while a keeps writing to streams b syncs (s[4], s[5]).
touch "$OUT/writing"
( k=0; while [ -f "$OUT/writing" ]; do k=$((k + 1))
    "$C" mid a update "${s[4 + k % 2]}" "{\"title\":\"busy $k\"}" >/dev/null 2>&1 || true; done ) &
writer=$!
sleep 4
t0=$(date +%s.%N)
"$AUDIT" backup --config "$CFG" --node b --out "$OUT/bk1" | tee "$OUT/bk1.txt"
t1=$(date +%s.%N)
sleep 2
rm -f "$OUT/writing"; wait "$writer" || true
"$AUDIT" backup verify "$OUT/bk1" || fail "backup verify of the live backup exited $?"
echo "ok: live backup taken in $(python3 -c "print(round($t1 - $t0, 2))") s while a wrote; it verifies"

# 2. More writes (s[1] updated, a new note), then a second backup.
sleep 6
"$C" mid a update "${s[1]}" '{"title":"note 2 v1"}' >/dev/null
made=$("$C" mid a create note '{"title":"made between the backups"}' | stream_of)
wait_rows 7
sleep 4
"$AUDIT" backup --config "$CFG" --node b --out "$OUT/bk2" >"$OUT/bk2.txt"
"$AUDIT" backup verify "$OUT/bk2" | tee "$OUT/bk2-verify.txt"
dump_rows "$OUT/bk1" >"$OUT/rows1"; dump_rows "$OUT/bk2" >"$OUT/rows2"
changed=$({ diff "$OUT/rows1" "$OUT/rows2" || true; } | { grep '^[<>]' || true; } | cut -c3- | cut -d' ' -f1 | sort -u | tr '\n' ' ')
for x in $changed; do
  case " ${s[1]} $made ${s[4]} ${s[5]} " in *" $x "*) ;; *) fail "the second backup also differs in $x";; esac
done
case " $changed " in *" ${s[1]} "*) ;; *) fail "the second backup lacks the update of ${s[1]}";; esac
case " $changed " in *" $made "*) ;; *) fail "the second backup lacks $made";; esac
echo "ok: the second backup differs from the first only in the streams written: $changed"

# What b had at backup time (its index, quiescent since before the second backup).
b_rows >"$OUT/at-backup"
[ "$(cut -d' ' -f1,2 "$OUT/at-backup")" = "$(cat "$OUT/rows2")" ] || fail "the second backup's rows differ from b's index"

# 3. Writes after the backup, then the disaster.
"$C" mid a update "${s[2]}" '{"title":"note 3 after the backup"}' >/dev/null
late=$("$C" mid a create note '{"title":"made after the backup"}' | stream_of)
wait_rows 8
sleep 3
"$C" stop-node b
"$C" stop-ipfs b
# The index database is dropped, not emptied: restore must create it.
psql -h 127.0.0.1 -p "$PG_PORT" -U ceramic -d postgres -qAt -c "drop database ceramic_b"
rm -rf "$RUN/statestore-b" "$RUN/ipfs-b"
"$C" start-ipfs b
echo "disaster: b's index database, state store and IPFS repo deleted"

# Restore refusals first: a damaged copy of the backup, and a non-empty target.
cp -r "$OUT/bk2" "$OUT/bk2-damaged"
truncate -s -20 "$OUT/bk2-damaged/blocks/blocks.car"
set +e
"$AUDIT" restore "$OUT/bk2-damaged" --config "$CFG" --node b 2>"$OUT/refused.txt"; code=$?
set -e
[ "$code" = 2 ] && grep -q "fails verification" "$OUT/refused.txt" && [ ! -e "$RUN/statestore-b" ] \
  || fail "restore of a damaged backup: exit $code, $(cat "$OUT/refused.txt")"
mkdir -p "$RUN/statestore-b/inmemory" && echo x >"$RUN/statestore-b/inmemory/junk"
set +e
"$AUDIT" restore "$OUT/bk2" --config "$CFG" --node b 2>"$OUT/refused2.txt"; code=$?
set -e
[ "$code" = 2 ] && grep -q "refuses to overwrite" "$OUT/refused2.txt" && [ -f "$RUN/statestore-b/inmemory/junk" ] \
  || fail "restore over a non-empty state store: exit $code, $(cat "$OUT/refused2.txt")"
rm -rf "$RUN/statestore-b"
echo "ok: restore refused a damaged backup and a non-empty target, writing nothing"

"$AUDIT" restore "$OUT/bk2" --config "$CFG" --node b | tee "$OUT/restore.txt"
grep -q 'index: created the database "ceramic_b"' "$OUT/restore.txt" || fail "restore did not create b's index database"
[ "$(b_rows)" = "$(cat "$OUT/at-backup")" ] || fail "b's index rows after the restore differ from those at backup time"
echo "ok: b's index rows are back ($(wc -l <"$OUT/at-backup") notes)"
"$C" start-node b
while read -r id tip content; do
  got=$(state_on_b "$id")
  python3 -c 'import json, sys; t, c = sys.argv[1].split(" ", 1); sys.exit(t != sys.argv[2] or json.loads(c) != json.loads(sys.argv[3]))' \
    "$got" "$tip" "$content" || fail "stream $id on b after the restore: $got; at backup time: $tip $content"
done <"$OUT/at-backup"
echo "ok: every stream b had at backup time loads on b with the same tip and content"

set +e
"$AUDIT" audit -q --config "$CFG" --out "$OUT/after-restore"; code=$?
set -e
[ "$code" = 1 ] || fail "the audit after the restore exited $code, expected 1"
python3 - "$OUT/after-restore/report.json" "${s[2]}" "$late" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
got = sorted((d["stream_id"], d["node"], d["kind"]) for d in report["divergences"])
want = sorted([(sys.argv[2], "b", "lagging"), (sys.argv[3], "b", "missing_stream")])
if got != want:
    print("FAIL: the audit after the restore differs\n  got: ", got, "\n  want:", want); sys.exit(1)
print("ok: the audit after the restore shows only the writes made after the backup:", got)
PY
"$AUDIT" repair --config "$CFG" --from-report "$OUT/after-restore/report.json" --nodes b \
  --journal "$OUT/journal.jsonl" --out "$OUT/repair" --apply -q || fail "repair --apply exited $?"
sleep 3
"$AUDIT" audit -q --config "$CFG" --out "$OUT/final" || fail "the final audit exited $?"
echo "ok: repair --apply brought the post-backup writes over; the final audit is clean"
echo "interop backup test passed"

#!/usr/bin/env bash
# The interop scenario against real js-ceramic nodes (issue 4): a clean 3-node cluster (two
# Postgres indexes, one SQLite) must audit consistent (exit 0); then
#   - one stream is written with anchoring on: a's in-memory anchor service anchors it, and b
#     and c (other anchor services) never take the anchor commit;
#   - node b misses 1, 2 and 3 updates of three streams and two new streams while it is down;
#   - one index row on c gets another tip by SQL (a crash between state store and index);
#   - b's index row of the comment is deleted by SQL (the state store still has it).
# Reading the nodes over HTTP, the audit must report exactly: b and c lagging the anchored
# stream by its anchor commit (hinted unrepairable), b lagging by 1, 2 and 3 commits, b missing
# the two new streams (not in its pin list), c's row index_stale, b's comment index_missing —
# and nothing else; `--verify-state all` adds nothing; a second audit reports the same (the
# audit did not heal what it measured).
#
# usage: interop/test.sh      (builds the release binary; leaves nothing running)
# Run by .ci/run after the unit and integration tests (a cold npm install takes ~3 minutes).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

s=()
for i in 1 2 3 4; do s+=("$("$C" mid a create note "{\"title\":\"note $i\",\"count\":$i}" | stream_of)"); done
comment=$("$C" mid a create comment "{\"text\":\"first\",\"noteId\":\"${s[0]}\"}" | stream_of)
echo "streams: ${s[*]} comment $comment"

# Every node must have indexed everything before the clean audit.
wait_rows 4
sleep 3
"$AUDIT" audit -q --config "$HERE/cluster.toml" --out "$OUT/clean" || {
  echo "FAIL: the clean cluster is not consistent"; cut -c1-200 "$OUT/clean/divergences.csv"; exit 1; }
echo "ok: clean cluster consistent"

# An anchored stream: a's in-memory anchor service anchors it about a minute later.
anchored=$(ANCHOR=1 "$C" mid a create note '{"title":"anchored"}' | stream_of)
# b must have indexed it before it is stopped: otherwise (a slow, loaded machine) b misses the
# creation itself and the stream is missing on b instead of lagging by the anchor commit.
wait_rows 5

# b misses updates: s1 once, s2 twice, s3 three times; and two streams created meanwhile.
b_tips() { pg b "select stream_id || ' ' || tip from \"$NOTE_MODEL\" where stream_id in ('${s[0]}', '${s[1]}', '${s[2]}') order by 1"; }
tips_before=$(b_tips)
"$C" stop-node b
for k in 1; do "$C" mid a update "${s[0]}" "{\"title\":\"note 1 v$k\"}" >/dev/null; done
for k in 1 2; do "$C" mid a update "${s[1]}" "{\"title\":\"note 2 v$k\"}" >/dev/null; done
for k in 1 2 3; do "$C" mid a update "${s[2]}" "{\"title\":\"note 3 v$k\"}" >/dev/null; done
new1=$("$C" mid a create note '{"title":"made while b was down"}' | stream_of)
new2=$("$C" mid a create note '{"title":"also made while b was down"}' | stream_of)
restart_after_missed_writes b
# c: the index row of s4 gets another (real) tip by SQL, as after a crash between the state
# store save and the index upsert.
tip_in_c() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select tip from \"%s\" where stream_id=?" % sys.argv[2], (sys.argv[3],)).fetchone()[0])' \
  "$RUN/sqlite-c/index.sqlite" "$NOTE_MODEL" "$1"; }
old_tip=$(tip_in_c "${s[3]}")
other_tip=$(tip_in_c "${s[0]}")
python3 - "$RUN/sqlite-c/index.sqlite" "$NOTE_MODEL" "${s[3]}" "$other_tip" <<'EOF'
import sqlite3, sys
db, model, stream, tip = sys.argv[1:5]
con = sqlite3.connect(db)
con.execute(f'update "{model}" set tip = ? where stream_id = ?', (tip, stream))
con.commit()
EOF
echo "c: ${s[3]} tip $old_tip -> $other_tip"
# b: the comment's index row disappears (the state store keeps the stream).
pg b "delete from \"$COMMENT_MODEL\" where stream_id = '$comment'"
echo "b: index row of $comment deleted"
# Wait for a to anchor (its own read is harmless: a holds the stream).
wait_anchored "$anchored"
sleep 8
# Before any audit, b's index (read by SQL, which changes nothing) must lack the two new streams
# and still hold the three old tips: otherwise the test bed delivered what b should miss (see
# restart_after_missed_writes), not the audit.
held=$(pg b "select count(*) from \"$NOTE_MODEL\" where stream_id in ('$new1', '$new2')")
[ "$held" = 0 ] || { echo "FAIL: the test bed delivered $held of the streams b should miss before the audit ran"; exit 1; }
[ "$(b_tips)" = "$tips_before" ] || { echo "FAIL: the test bed delivered updates b should miss before the audit ran"; exit 1; }

check() { # report.json
python3 - "$1" "${s[0]}" "${s[1]}" "${s[2]}" "${s[3]}" "$new1" "$new2" "$anchored" "$comment" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
s1, s2, s3, s4, new1, new2, anchored, comment = sys.argv[2:10]
got = sorted((d["stream_id"], d["node"], d["kind"]) for d in report["divergences"])
want = sorted([
    (s1, "b", "lagging"), (s2, "b", "lagging"), (s3, "b", "lagging"),
    (new1, "b", "missing_stream"), (new2, "b", "missing_stream"),
    (s4, "c", "index_stale"),
    (anchored, "b", "lagging"), (anchored, "c", "lagging"),
    (comment, "b", "index_missing"),
])
if got != want:
    print("FAIL: divergences differ")
    print("  got: ", got)
    print("  want:", want)
    sys.exit(1)
missing = {s1: 1, s2: 2, s3: 3}
for d in report["divergences"]:
    if d["kind"] == "lagging" and d["stream_id"] != anchored:
        assert d["agreeing_nodes"] == ["a", "c"], d
        assert d["missing_commits"] == missing[d["stream_id"]], d
        assert d["ahead_node"] in ("a", "c"), d
        assert d["repair_hint"].startswith("republish"), d
    if d["stream_id"] == anchored:
        assert d["ahead_node"] == "a" and d["missing_commits"] == 1, d
        assert d["repair_hint"].startswith("unrepairable"), d
    if d["kind"] == "missing_stream":
        assert "not in the node's pin list" in d["detail"], d
    if d["kind"] == "index_stale":
        assert "state tip" in d["detail"], d
print("ok: exactly the expected divergences (%d)" % len(got))
EOF
}

audit() { # out-dir extra-args…
  set +e
  "$AUDIT" audit --config "$HERE/cluster.toml" --out "$@" >"$1.txt"
  code=$?
  set -e
  [ "$code" = 1 ] || { echo "FAIL: expected exit code 1, got $code"; exit 1; }
}
audit "$OUT/diverged"
check "$OUT/diverged/report.json"
audit "$OUT/verified" --verify-state all
check "$OUT/verified/report.json"
echo "ok: --verify-state all found nothing more"
audit "$OUT/again"
check "$OUT/again/report.json"
echo "ok: a second audit sees the same cluster"
mkdir -p "$ROOT/target/interop"
cp "$OUT/diverged/divergences.csv" "$ROOT/target/interop/divergences.csv"
cp "$OUT/diverged.txt" "$ROOT/target/interop/summary.txt"
echo "interop test passed"

#!/usr/bin/env bash
# The container image and the Compose service, built and exercised (issue 17), with podman and
# runc from Debian, a base made by mmdebstrap (no registry) and podman-compose from PyPI:
#   1. the image: built from the release binary; runs as uid 10001; OCI labels; HEALTHCHECK;
#   2. `audit` in the container = the same command outside: on the fixture cluster, and on the
#      real js-ceramic cluster of interop/ (host network) whose Postgres the test gives a
#      read-only `auditor` role with a scram password, read from a mounted file;
#   3. deploy/docker-compose.yml, unchanged, beside that cluster (an override puts it on the
#      host network): the first cycle completes, /metrics and the healthcheck answer from the
#      host, logs are JSON lines, limits and restart policy are applied; `down` stops it with
#      SIGTERM (exit 0, no temporaries in the volume); a second `up` carries the divergences'
#      first_seen and cycles on from the volume; the `repair` profile plans a repair (dry run);
#   4. neither secret appears in `podman image inspect`, `history`, `inspect` or the volume.
# Prints the image size and the time from `up` to the first completed cycle.
#
# usage: deploy/container-test.sh     (run by .ci/run; installs what is missing; leaves nothing
# running). Ports: CERAMIC_AUDIT_INTEROP_PORT (base, default 7460) as interop/, plus base+301
# for the service's metrics. Warm ~2 min (measured 131 s); cold adds apt (~1 min), mmdebstrap
# (20–100 s), pip (seconds), npm (~3 min), the release build.
. "$(dirname "${BASH_SOURCE[0]}")/container-lib.sh"
START=$(date +%s)

install_tools
build_image
W=$(mktemp -d)
BIN=$ROOT/target/release/ceramic-audit
say "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1 / 1e6}')"

# --- 1. the image -------------------------------------------------------------------------
inspect() { podman image inspect --format "$1" "$IMAGE"; }
[ "$(inspect '{{.Config.User}}')" = 10001:10001 ] || fail "image user is '$(inspect '{{.Config.User}}')', expected 10001:10001"
for label in version revision source; do
  v=$(inspect "{{index .Config.Labels \"org.opencontainers.image.$label\"}}")
  case $v in "" | unknown | "<no value>") fail "OCI label org.opencontainers.image.$label is '$v'" ;; esac
done
[ "$(inspect '{{.Config.Labels}}' | grep -c "$(git -C "$ROOT" rev-parse HEAD)")" = 1 ] || fail "revision label is not HEAD"
inspect '{{json .Config.Healthcheck}}' | grep -q ceramic-audit-healthcheck || fail "no HEALTHCHECK in the image"
podman run --rm --no-healthcheck --network none "$IMAGE" --version | grep -q "^ceramic-audit " || fail "--version in the image"
echo "ok: image runs as 10001:10001, labels version/revision/source set, HEALTHCHECK defined"
check_build_context

# Runs a one-shot command in the image: read-only root filesystem, no healthcheck timer.
run_in_image() { podman run --rm --no-healthcheck --read-only "$@"; }

# The same report: exit codes, divergences.csv byte for byte, report.json but for timings.
same_report() { # label host_dir host_rc ctr_dir ctr_rc
  [ "$3" = "$5" ] || fail "$1: exit code $5 in the container, $3 outside"
  cmp -s "$2/divergences.csv" "$4/divergences.csv" || {
    diff "$2/divergences.csv" "$4/divergences.csv" | head -20 >&2; fail "$1: divergences.csv differs"; }
  python3 - "$2/report.json" "$4/report.json" <<'EOF' || fail "$1: report.json differs beyond timings"
import json, sys
TIMING = {"started_at", "finished_at", "duration_ms", "millis"}
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"report.json differs at {k!r}:\n  outside:   {a.get(k)!r:.300}\n  container: {b.get(k)!r:.300}", file=sys.stderr)
    sys.exit(1)
EOF
  echo "ok: $1: the container's report equals the one made outside (exit $3, $(($(wc -l <"$2/divergences.csv") - 1)) divergence row(s))"
}

# --- 2a. audit on the fixture cluster, inside and outside ----------------------------------
mkdir -p "$W/fixture/host" "$W/fixture/ctr"
chown 10001:10001 "$W/fixture/ctr"
FIXTURE=$ROOT/fixtures/cluster-3/cluster.toml
rc_host=0; "$BIN" audit -q --config "$FIXTURE" --out "$W/fixture/host/r" || rc_host=$?
rc_ctr=0; run_in_image --network none -v "$ROOT/fixtures:$ROOT/fixtures:ro" -v "$W/fixture/ctr:/out" \
  "$IMAGE" audit -q --config "$FIXTURE" --out /out/r || rc_ctr=$?
same_report "fixture cluster" "$W/fixture/host/r" "$rc_host" "$W/fixture/ctr/r" "$rc_ctr"
[ "$rc_host" = 1 ] || fail "the fixture cluster diverges: exit 1 expected, got $rc_host"

# --- 2b. the real cluster: js-ceramic nodes, Postgres with an auditor role -----------------
. "$ROOT/interop/lib.sh"   # starts the cluster (a, b on Postgres, c on SQLite); its trap stops it
PROJECT=ceramic-audit-test-$BASE
MPORT=$((BASE + 301))
pc() { (cd "$W/compose" && "$COMPOSE" -p "$PROJECT" -f docker-compose.yml -f host.yml "$@"); }
cleanup() {
  [ -d "$W/compose" ] && pc down -v >/dev/null 2>&1
  "$C" down --clean >/dev/null 2>&1 || true
  rm -rf "$OUT" "$W"
}
trap cleanup EXIT

PW=$(openssl rand -hex 24)
mkdir -p "$W/secrets"
printf '%s' "$PW" >"$W/secrets/pg_password"
cp "$RUN/admin.seed" "$W/secrets/admin_seed"
ADMIN_SEED=$(tr -d '\n' <"$W/secrets/admin_seed")
# The image's user reads the secrets (bind mounts keep the host's owner and mode).
chown -R 10001:10001 "$W/secrets"; chmod 0500 "$W/secrets"; chmod 0400 "$W/secrets"/*
# What an operator gives an audit: a login that can read every index, checked by password.
pg a "create role auditor login password '$PW'; grant pg_read_all_data to auditor"
sed -i '1i host all auditor 127.0.0.1/32 scram-sha-256' "$RUN/pg/data/pg_hba.conf"
pg a "select pg_reload_conf()" >/dev/null
PGPASSWORD=wrong psql -h 127.0.0.1 -p "$PG_PORT" -U auditor -d ceramic_a -c 'select 1' >/dev/null 2>&1 \
  && fail "Postgres accepted the auditor with a wrong password"

write_cluster() { # file secrets_dir
  {
    echo 'cluster = "interop"'
    local i=0 n
    for n in a b c; do
      i=$((i + 1))
      echo; echo '[[nodes]]'; echo "name = \"$n\""
      echo "api_url = \"http://127.0.0.1:$((BASE + i))\""
      if [ "$n" = c ]; then
        echo "index = \"sqlite://$RUN/sqlite-c/index.sqlite\""
      else
        echo "index = \"postgres://auditor@127.0.0.1:$PG_PORT/ceramic_$n\""
        echo "password_file = \"$2/pg_password\""
      fi
      echo "admin_key_file = \"$2/admin_seed\""
    done
  } >"$1"
}
write_cluster "$W/live.toml" "$W/secrets"

# Three notes everywhere, then b's index loses one row (its pin list keeps the stream): a
# divergence that stays (index_missing on b) until something reindexes it.
s=()
for i in 1 2 3; do s+=("$("$C" mid a create note "{\"title\":\"note $i\",\"count\":$i}" | stream_of)"); done
wait_rows 3
pg b "delete from \"$NOTE_MODEL\" where stream_id = '${s[0]}'"
# c (SQLite) syncs over pubsub too; wait until the audit sees only the deleted row.
for i in $(seq 1 30); do
  rc_host=0; "$BIN" audit -q --config "$W/live.toml" --out "$W/live/host" || rc_host=$?
  [ "$(tail -n +2 "$W/live/host/divergences.csv" | wc -l)" = 1 ] && grep -q ",b,index_missing," "$W/live/host/divergences.csv" && break
  [ "$i" = 30 ] && { cut -c1-200 "$W/live/host/divergences.csv" >&2; fail "the cluster did not settle to one index_missing on b"; }
  rm -rf "$W/live/host"; sleep 2
done
mkdir -p "$W/live/ctr"; chown 10001:10001 "$W/live/ctr"
rc_ctr=0; run_in_image --network host -v "$W/live.toml:$W/live.toml:ro" -v "$W/secrets:$W/secrets:ro" \
  -v "$RUN/sqlite-c:$RUN/sqlite-c:ro" -v "$W/live/ctr:/out" "$IMAGE" audit -q --config "$W/live.toml" --out /out/r || rc_ctr=$?
same_report "real cluster (Postgres as auditor, scram password from a mounted file)" "$W/live/host" "$rc_host" "$W/live/ctr/r" "$rc_ctr"

. "$DEPLOY/container-compose-test.sh"
echo "container-test: passed in $(($(date +%s) - START)) s"

# Part 3 of deploy/container-test.sh (sourced there, after the real cluster is up): the Compose
# service of deploy/docker-compose.yml beside that cluster, as an operator runs it.

# The operator's directory: the Compose file as shipped, cluster.toml, secrets/, .env; plus the
# test's override, which only moves the services onto the host network (the nodes listen on
# 127.0.0.1 here) and mounts node c's SQLite index.
mkdir -p "$W/compose"
cp "$DEPLOY/docker-compose.yml" "$W/compose/"
cp -a "$W/secrets" "$W/compose/secrets"
write_cluster "$W/compose/cluster.toml" /run/secrets
cat >"$W/compose/.env" <<EOF
CERAMIC_AUDIT_IMAGE=$IMAGE
CERAMIC_AUDIT_EVERY=20s
CERAMIC_AUDIT_LOG_FORMAT=json
CERAMIC_AUDIT_GATE_AFTER=0s
EOF
cat >"$W/compose/host.yml" <<EOF
services:
  ceramic-audit:
    network_mode: host
    networks: !reset []
    ports: !reset []
    environment:
      CERAMIC_AUDIT_METRICS_LISTEN: 127.0.0.1:$MPORT
    volumes:
      - $RUN/sqlite-c:$RUN/sqlite-c:ro
  repair:
    network_mode: host
    networks: !reset []
    volumes:
      - $RUN/sqlite-c:$RUN/sqlite-c:ro
networks: !reset {}
EOF
CTR=${PROJECT}_ceramic-audit_1
VOLUME=${PROJECT}_ceramic-audit-data
METRICS=http://127.0.0.1:$MPORT/metrics
pc down -v >/dev/null 2>&1 || true   # what a killed earlier run may have left

# metric NAME [label=value…]: the sum of NAME's samples carrying those labels (empty: none).
metric() {
  curl -sf -m 5 "$METRICS" | python3 -c '
import sys
name, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
total, seen = 0.0, False
for line in sys.stdin:
    if line.startswith("#") or not line.strip():
        continue
    head, value = line.rsplit(" ", 1)
    metric_name, _, body = head.partition("{")
    labels = dict(p.split("=", 1) for p in body.rstrip("}").split(",") if p)
    labels = {k: v.strip(chr(34)) for k, v in labels.items()}
    if metric_name == name and all(labels.get(k) == v for k, v in want.items()):
        total, seen = total + float(value), True
if seen:
    print(int(total) if total.is_integer() else total)
' "$@"
}

ms_now() { echo $(($(date +%s%N) / 1000000)); }

# Waits until the service's process has completed its first cycle (full on a new volume,
# incremental when the volume holds an earlier state).
wait_first_cycle() {
  local i
  for i in $(seq 1 240); do
    [ "$(metric ceramic_audit_cycles_total 2>/dev/null)" = 1 ] && return 0
    sleep 0.5
  done
  podman logs --tail 20 "$CTR" >&2 || true
  fail "no completed cycle within 120 s of up"
}

# The divergence every cycle reports (b's deleted index row), as "first_seen cycles".
ageing_of_deleted_row() {
  python3 - "$(podman volume inspect --format '{{.Mountpoint}}' "$VOLUME")/watch/latest/report.json" "${s[0]}" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = [d for d in report["divergences"] if d["stream_id"] == sys.argv[2] and d["node"] == "b"]
assert len(rows) == 1 and rows[0]["kind"] == "index_missing", rows
print(rows[0]["first_seen"], rows[0]["cycles"])
EOF
}


# --- up: the first cycle, metrics, healthcheck, user, limits, logs --------------------------
t_up=$(ms_now)
pc up -d >"$W/up.log" 2>&1 || { cat "$W/up.log" >&2; fail "podman-compose up failed"; }
wait_first_cycle
FIRST_CYCLE_MS=$(($(ms_now) - t_up))
echo "ok: up to first completed cycle: $((FIRST_CYCLE_MS / 1000)).$((FIRST_CYCLE_MS % 1000 / 100)) s"

for n in a b c; do
  [ "$(metric ceramic_audit_node_up node=$n)" = 1 ] || fail "ceramic_audit_node_up{node=$n} is not 1"
done
[ "$(metric ceramic_audit_divergences kind=index_missing node=b model="$NOTE_MODEL")" = 1 ] \
  || fail "metrics do not show b's index_missing: $(curl -s "$METRICS" | grep 'divergences{' | grep -v ' 0$')"
[ "$(metric ceramic_audit_divergences kind=index_missing node=a model="$NOTE_MODEL")" = 0 ] || fail "a reported index_missing"
echo "ok: /metrics from the host: nodes a, b, c up, b's index_missing counted"
curl -s "$METRICS" | grep -E '^ceramic_audit_(node_up|divergences|cycles_total)' | grep -v ' 0$' | sed 's/^/    /'

# The load-balancer gate, as HAProxy asks it: a in, b (its index lost a row) out.
ready() { curl -s -m 5 -o "$W/ready-$1" -w '%{http_code}' "http://127.0.0.1:$MPORT/ready/$1"; }
[ "$(ready a)" = 200 ] || fail "/ready/a: $(cat "$W/ready-a")"
[ "$(ready b)" = 503 ] && grep -q '^not ready: index_missing=1' "$W/ready-b" || fail "/ready/b: $(cat "$W/ready-b")"
echo "ok: readiness from the host: /ready/a 200 ($(cat "$W/ready-a")), /ready/b 503 ($(cat "$W/ready-b"))"

podman healthcheck run "$CTR" >/dev/null 2>&1 || fail "podman healthcheck run $CTR: $(podman healthcheck run "$CTR" 2>&1)"
pid=$(podman inspect --format '{{.State.Pid}}' "$CTR")
uid=$(awk '/^Uid:/ {print $2 "/" $3}' "/proc/$pid/status")
[ "$uid" = 10001/10001 ] || fail "the service runs as uid $uid, expected 10001"
[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}' "$CTR")" \
  = "true 536870912 1000000000 unless-stopped" ] || fail "limits or policies not applied: $(podman inspect --format '{{json .HostConfig}}' "$CTR" | head -c 400)"
echo "ok: healthy; process uid 10001; read-only root, 512 MB and 1 CPU limits, restart unless-stopped"

podman logs "$CTR" 2>/dev/null >"$W/logs-up1.json"
python3 - "$W/logs-up1.json" <<'EOF' || fail "the service's stdout is not JSON log lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert any(l["fields"]["message"].startswith("cycle 1 (full): ") for l in lines), lines[-3:]
EOF
echo "ok: logs are JSON lines on stdout ($(wc -l <"$W/logs-up1.json") so far); the last:"
tail -1 "$W/logs-up1.json" | sed 's/^/    /'
podman ps --filter "name=$CTR" --format '    {{.Names}}  {{.Status}}  {{.Command}}'

# --- down: SIGTERM, exit 0, nothing temporary left ------------------------------------------
# `stop` (the SIGTERM `down` sends, with the same grace period) is timed, the stopped
# container's whole log read, and then `down` removes it. A `podman logs -f` following a
# container that `down` removes missed its last line in one CI run.
t_down=$(ms_now)
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pc stop >"$W/down.log" 2>&1 || { cat "$W/down.log" >&2; fail "podman-compose stop failed"; }
DOWN_MS=$(($(ms_now) - t_down))
podman logs "$CTR" >"$W/logs-down.out" 2>"$W/logs-down.err" || fail "no log of the stopped container"
pc down >>"$W/down.log" 2>&1 || { cat "$W/down.log" >&2; fail "podman-compose down failed"; }
code=$(podman events --stream=false --since "$since" --filter "container=$CTR" \
  --filter event=died --format '{{.ContainerExitCode}}' 2>/dev/null | tail -1)
[ "$code" = 0 ] || fail "the service exited with '$code' on down, expected 0 (SIGTERM)"
[ "$DOWN_MS" -lt 15000 ] || fail "down took $DOWN_MS ms: SIGTERM was not enough (stop_grace_period is 30 s)"
tail -1 "$W/logs-down.out" | grep -q '^watch: [0-9]* cycle(s)' || fail "no shutdown summary: $(tail -2 "$W/logs-down.out")"
MOUNT=$(podman volume inspect --format '{{.Mountpoint}}' "$VOLUME") || fail "the volume did not survive down"
left=$(find "$MOUNT" \( -name '.tmp*' -o -name '*.tmp' -o -name '*.partial' \) | head -5)
[ -z "$left" ] || fail "temporary files left in the volume: $left"
[ -z "$(find "$MOUNT" ! -uid 10001 | head -1)" ] || fail "files not owned by 10001 in the volume: $(find "$MOUNT" ! -uid 10001 | head -3)"
ageing=$(ageing_of_deleted_row) || fail "the latest cycle report does not show b's index_missing"
read -r first_seen cycles <<<"$ageing"
echo "ok: down in $DOWN_MS ms, exit 0 ($(tail -1 "$W/logs-down.out")); no temporaries; b's row first seen $first_seen, $cycles cycle(s)"

# --- a second up: the state in the volume carries on -----------------------------------------
pc up -d >"$W/up2.log" 2>&1 || { cat "$W/up2.log" >&2; fail "the second podman-compose up failed"; }
wait_first_cycle
ageing=$(ageing_of_deleted_row) || fail "the second up's report does not show b's index_missing"
read -r first_seen2 cycles2 <<<"$ageing"
[ "$first_seen2" = "$first_seen" ] || fail "first_seen changed across down/up: $first_seen -> $first_seen2"
[ "$cycles2" = $((cycles + 1)) ] || fail "cycles went from $cycles to $cycles2 across down/up, expected $((cycles + 1))"
echo "ok: second up: b's row still first seen $first_seen2, now $cycles2 cycle(s)"

# --- the repair profile: a dry-run plan from the latest watch report ------------------------
pc --profile repair run --rm repair --nodes b >"$W/repair.out" 2>"$W/repair.err" \
  || { cat "$W/repair.out" "$W/repair.err" >&2; fail "the repair profile failed"; }
grep -q "dry run" "$W/repair.out" || fail "repair did not say dry run: $(cat "$W/repair.out")"
plan=$(find "$MOUNT/reports" -name plan.csv | head -1)
[ -n "$plan" ] && grep -q "${s[0]}.*,b,.*reindex" "$plan" || fail "the repair plan does not reindex ${s[0]} on b: $(cat "$plan" 2>/dev/null)"
echo "ok: repair profile: dry run planned reindex of ${s[0]} on b ($(head -1 "$W/repair.out" | cut -c1-100))"

# --- no secret in the image, its history, the container or the volume -----------------------
for what in "image inspect $IMAGE" "history --no-trunc $IMAGE" "inspect $CTR"; do
  # shellcheck disable=SC2086
  out=$(podman $what 2>/dev/null) || fail "podman $what failed"
  for secret in "$PW" "$ADMIN_SEED"; do
    case $out in *"$secret"*) fail "a secret appears in podman $what" ;; esac
  done
done
grep -rqF -e "$PW" -e "$ADMIN_SEED" "$MOUNT" && fail "a secret was written into the volume"
echo "ok: neither the Postgres password nor the admin seed in image inspect, history, container inspect or the volume"

pc down -v >/dev/null 2>&1 || fail "final down -v failed"
SIZE_MB=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f", $1 / 1e6}')
echo "image: $SIZE_MB MB; up to first completed cycle: $((FIRST_CYCLE_MS / 1000)).$((FIRST_CYCLE_MS % 1000 / 100)) s; down: $DOWN_MS ms"

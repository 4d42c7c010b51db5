#!/usr/bin/env bash
# A local cluster of real js-ceramic nodes (@ceramicnetwork/cli 6.11.0, unmodified, from the npm
# registry), each with its own js-ipfs node, syncing over pubsub; indexes in one Postgres 15
# cluster (a database per node) or in SQLite files. Everything listens on 127.0.0.1 only.
#
#   cluster.sh install                 npm install into the cache (once; again when a package.json changes)
#   cluster.sh up N [--sqlite NODE]... start N nodes a, b, c, … (NODE indexes into SQLite); writes cluster.toml
#   cluster.sh deploy                  deploy the note and comment models on a, index them on every node
#   cluster.sh mid NODE create KIND JSON | mid NODE update STREAM JSON
#                                      write a ModelInstanceDocument (KIND: note|comment; anchor: false
#                                      unless ANCHOR=1); prints {streamId, tip, content, log}
#   cluster.sh stop-node X | start-node X
#                                      stop or restart node X's Ceramic daemon (its js-ipfs keeps running)
#   cluster.sh stop-ipfs X | start-ipfs X
#                                      stop node X's js-ipfs, or start it (a new repo gets a new peer
#                                      ID) and reconnect it to every other node
#   cluster.sh partition X | heal X    cut node X's IPFS off from every peer, or reconnect it
#   cluster.sh status                  what runs, with PIDs and memory
#   cluster.sh down [--clean]          stop every process this script started (--clean: delete the run dir)
#
# Environment: CERAMIC_AUDIT_INTEROP_CACHE (node_modules, default ~/.cache/ceramic-audit/interop),
# CERAMIC_AUDIT_INTEROP_RUN (repos, configs, logs, PIDs; default /tmp/ceramic-audit-interop),
# CERAMIC_AUDIT_INTEROP_PORT (base port, default 7460: Ceramic HTTP base+i, IPFS RPC base+100+i,
# IPFS swarm base+200+i, Postgres base+300).
#
# Facts this relies on (../shared/reference/real-ceramic.md has the details and exact errors):
# two registry gaps are filled by stub packages (npm/stubs); cli 6.x's bundled IPFS needs Kubo from
# the web, so each daemon uses a js-ipfs node in remote mode with IPFS_FLAVOR=go; without a fixed
# pubsub topic the in-memory network picks a random one per process and nodes never sync.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CERAMIC_AUDIT_INTEROP_CACHE:-$HOME/.cache/ceramic-audit/interop}
RUN=${CERAMIC_AUDIT_INTEROP_RUN:-/tmp/ceramic-audit-interop}
BASE=${CERAMIC_AUDIT_INTEROP_PORT:-7460}
PG_PORT=$((BASE + 300))
NAMES=(a b c d e f g h)
TOPIC=/ceramic/inmemory-ceramic-audit

die() { echo "cluster.sh: $*" >&2; exit 2; }
say() { echo "cluster.sh: $*" >&2; }

pgbin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
  die "PostgreSQL server binaries not found (scripts/setup.sh installs them)"
}

# Run a command as the postgres user when we are root (initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

index_of() { # node name -> 1-based index
  local i
  for i in "${!NAMES[@]}"; do [ "${NAMES[$i]}" = "$1" ] && { echo $((i + 1)); return; }; done
  die "unknown node '$1' (nodes are named a, b, c, …)"
}
http_port() { echo $((BASE + $(index_of "$1"))); }
api_port() { echo $((BASE + 100 + $(index_of "$1"))); }
swarm_port() { echo $((BASE + 200 + $(index_of "$1"))); }
nodes() { cat "$RUN/nodes" 2>/dev/null || die "no cluster is up (cluster.sh up N)"; }

stamp() { cat "$HERE"/npm/v6/package.json "$HERE"/npm/jsipfs/package.json "$HERE"/npm/stubs/*/* | sha256sum | cut -c1-16; }

do_install() {
  command -v node >/dev/null || die "node is missing (Node.js ≥ 20.8 is needed)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=8)?0:1)' \
    || die "Node.js ≥ 20.8 is needed, found $(node --version)"
  command -v npm >/dev/null || die "npm is missing"
  mkdir -p "$CACHE/npm"
  if [ "$(cat "$CACHE/stamp" 2>/dev/null)" != "$(stamp)" ] || [ ! -d "$CACHE/npm/v6/node_modules/@ceramicnetwork/cli" ] \
      || [ ! -d "$CACHE/npm/jsipfs/node_modules/ipfs-core" ]; then
    say "npm install into $CACHE (about 3 minutes the first time)"
    mkdir -p "$CACHE/npm/v6" "$CACHE/npm/jsipfs" "$CACHE/npm/stubs"
    cp -r "$HERE/npm/stubs/." "$CACHE/npm/stubs/"
    cp "$HERE/npm/v6/package.json" "$CACHE/npm/v6/"
    cp "$HERE/npm/jsipfs/package.json" "$CACHE/npm/jsipfs/"
    (cd "$CACHE/npm/v6" && npm install --no-audit --no-fund --loglevel=error) || die "npm install of the Ceramic CLI failed"
    (cd "$CACHE/npm/jsipfs" && npm install --no-audit --no-fund --loglevel=error) || die "npm install of js-ipfs failed"
    stamp > "$CACHE/stamp"
  fi
  mkdir -p "$CACHE/npm/v6/scripts"
  cp "$HERE"/scripts/*.mjs "$CACHE/npm/v6/scripts/"
  cp "$HERE/npm/jsipfs/ipfs-node.mjs" "$CACHE/npm/jsipfs/"
  say "installed: $(du -sh "$CACHE/npm" | cut -f1) in $CACHE/npm"
}

js() { (cd "$CACHE/npm/v6" && node "scripts/$1" "${@:2}"); }

start_pg() {
  local bin; bin=$(pgbin)
  mkdir -p "$RUN/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$RUN/pg"
  if [ ! -f "$RUN/pg/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$RUN/pg/data" -U ceramic --auth=trust -E UTF8 --locale=C.UTF-8 >"$RUN/pg-initdb.log" \
      || die "initdb failed: $(tail -5 "$RUN/pg-initdb.log")"
  fi
  if ! as_pg "$bin/pg_ctl" -D "$RUN/pg/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$RUN/pg/data" -w -l "$RUN/pg/pg.log" \
      -o "-p $PG_PORT -k $RUN/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
      || die "Postgres did not start: $(tail -5 "$RUN/pg/pg.log")"
  fi
}

psql_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U ceramic -v ON_ERROR_STOP=1 -qAt "$@"; }

start_ipfs() { # name
  local n=$1
  mkdir -p "$RUN/pids" "$RUN/logs"
  if [ -f "$RUN/pids/ipfs-$n.pid" ] && kill -0 "$(cat "$RUN/pids/ipfs-$n.pid")" 2>/dev/null; then return; fi
  # Only the node process goes to the background (its PID is the one recorded), detached from
  # this script's stdin and stdout so nothing waits on it.
  (cd "$CACHE/npm/jsipfs" || exit 1
    nohup node ipfs-node.mjs "$RUN/ipfs-$n" "$(swarm_port "$n")" "$(api_port "$n")" \
      </dev/null >"$RUN/logs/ipfs-$n.log" 2>&1 &
    echo $! >"$RUN/pids/ipfs-$n.pid")
  local i
  for i in $(seq 1 120); do grep -q '"ready":true' "$RUN/logs/ipfs-$n.log" 2>/dev/null && return; sleep 0.5; done
  die "js-ipfs $n did not start: $(tail -5 "$RUN/logs/ipfs-$n.log")"
}

peer_id() { curl -sf -X POST "http://127.0.0.1:$(api_port "$1")/api/v0/id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).ID))'; }

connect() { # from to
  curl -sf -X POST "http://127.0.0.1:$(api_port "$1")/api/v0/swarm/connect?arg=/ip4/127.0.0.1/tcp/$(swarm_port "$2")/p2p/$(peer_id "$2")" >/dev/null \
    || die "could not connect the IPFS of $1 to $2"
}

write_config() { # name
  local n=$1 db
  if grep -qx "$n" "$RUN/sqlite" 2>/dev/null; then
    mkdir -p "$RUN/sqlite-$n"
    db="sqlite://$RUN/sqlite-$n/index.sqlite"
  else
    db="postgres://ceramic@127.0.0.1:$PG_PORT/ceramic_$n"
  fi
  [ -f "$RUN/seed-$n" ] || openssl rand -hex 32 >"$RUN/seed-$n"
  cat >"$RUN/$n.config.json" <<EOF
{
  "anchor": {},
  "http-api": { "cors-allowed-origins": [".*"], "admin-dids": ["$(cat "$RUN/admin.did")"] },
  "ipfs": { "mode": "remote", "host": "http://127.0.0.1:$(api_port "$n")" },
  "logger": { "log-level": 2, "log-to-files": false },
  "metrics": { "metrics-exporter-enabled": false, "prometheus-exporter-enabled": false },
  "network": { "name": "inmemory", "pubsub-topic": "$TOPIC" },
  "node": { "private-seed-url": "inplace:ed25519#$(cat "$RUN/seed-$n")" },
  "state-store": { "mode": "fs", "local-directory": "$RUN/statestore-$n" },
  "indexing": { "db": "$db", "allow-queries-before-historical-sync": true, "enable-historical-sync": false }
}
EOF
}

start_ceramic() { # name
  local n=$1 port
  port=$(http_port "$n")
  if [ -f "$RUN/pids/ceramic-$n.pid" ] && kill -0 "$(cat "$RUN/pids/ceramic-$n.pid")" 2>/dev/null; then return; fi
  mkdir -p "$RUN/home-$n"
  # nohup execs node, so the PID recorded is the daemon's own (a restart by PID must hit it).
  (cd "$CACHE/npm/v6" || exit 1
    IPFS_FLAVOR=go HOME="$RUN/home-$n" nohup node node_modules/@ceramicnetwork/cli/bin/ceramic.js daemon \
      --config "$RUN/$n.config.json" --port "$port" --hostname 127.0.0.1 </dev/null >>"$RUN/logs/ceramic-$n.log" 2>&1 &
    echo $! >"$RUN/pids/ceramic-$n.pid")
  local i
  for i in $(seq 1 240); do
    curl -sf -m 2 "http://127.0.0.1:$port/api/v0/node/healthcheck" >/dev/null && return
    kill -0 "$(cat "$RUN/pids/ceramic-$n.pid")" 2>/dev/null || break
    sleep 0.5
  done
  die "Ceramic $n did not start: $(tail -20 "$RUN/logs/ceramic-$n.log")"
}

stop_pid() { # pidfile
  local f=$1 p i
  p=$(cat "$f" 2>/dev/null || true)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

write_cluster_toml() {
  local n out="$HERE/cluster.toml"
  {
    echo "# Written by interop/cluster.sh up; audit with: ceramic-audit audit --config interop/cluster.toml"
    echo "cluster = \"interop\""
    for n in $(nodes); do
      echo
      echo "[[nodes]]"
      echo "name = \"$n\""
      echo "api_url = \"http://127.0.0.1:$(http_port "$n")\""
      if grep -qx "$n" "$RUN/sqlite" 2>/dev/null; then
        echo "index = \"sqlite://$RUN/sqlite-$n/index.sqlite\""
      else
        echo "index = \"postgres://ceramic@127.0.0.1:$PG_PORT/ceramic_$n\""
      fi
      # The admin DID's seed (listed in every node's admin-dids): lets the audit read pin lists.
      echo "admin_key_file = \"$RUN/admin.seed\""
      # Where backup/restore find the state store and the IPFS RPC API (issue 14).
      echo "state_store = \"$RUN/statestore-$n\""
      echo "ipfs_api = \"http://127.0.0.1:$(api_port "$n")\""
    done
  } >"$out"
  say "wrote $out"
}

do_up() {
  local count=${1:-}
  [[ "$count" =~ ^[1-8]$ ]] || die "usage: cluster.sh up N [--sqlite NODE]... (N from 1 to 8)"
  shift
  [ -f "$CACHE/stamp" ] || do_install
  cp "$HERE"/scripts/*.mjs "$CACHE/npm/v6/scripts/"
  cp "$HERE/npm/jsipfs/ipfs-node.mjs" "$CACHE/npm/jsipfs/"
  mkdir -p "$RUN/pids" "$RUN/logs"
  : >"$RUN/sqlite"
  while [ $# -gt 0 ]; do
    case "$1" in
      --sqlite) [ -n "${2:-}" ] || die "--sqlite needs a node name"; index_of "$2" >/dev/null; echo "$2" >>"$RUN/sqlite"; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  printf '%s\n' "${NAMES[@]:0:$count}" >"$RUN/nodes"
  start_pg
  local n
  for n in $(nodes); do
    grep -qx "$n" "$RUN/sqlite" && continue
    psql_q -d postgres -c "select 1 from pg_database where datname = 'ceramic_$n'" | grep -q 1 \
      || psql_q -d postgres -c "create database ceramic_$n"
  done
  [ -f "$RUN/admin.seed" ] || openssl rand -hex 32 >"$RUN/admin.seed"
  [ -f "$RUN/user.seed" ] || openssl rand -hex 32 >"$RUN/user.seed"
  js did-from-seed.mjs "$(cat "$RUN/admin.seed")" >"$RUN/admin.did"
  for n in $(nodes); do start_ipfs "$n"; done
  local first; first=$(nodes | head -1)
  for n in $(nodes); do [ "$n" = "$first" ] || connect "$n" "$first"; done
  for n in $(nodes); do write_config "$n"; start_ceramic "$n"; say "node $n: http://127.0.0.1:$(http_port "$n")"; done
  write_cluster_toml
}

do_deploy() {
  local first note comment n others
  first=$(nodes | head -1)
  note=$(js deploy-model.mjs "http://127.0.0.1:$(http_port "$first")" "$(cat "$RUN/admin.seed")" note | node -pe 'JSON.parse(require("fs").readFileSync(0)).model')
  comment=$(js deploy-model.mjs "http://127.0.0.1:$(http_port "$first")" "$(cat "$RUN/admin.seed")" comment "$note" | node -pe 'JSON.parse(require("fs").readFileSync(0)).model')
  for n in $(nodes); do
    [ "$n" = "$first" ] && continue
    js index-model.mjs "http://127.0.0.1:$(http_port "$n")" "$(cat "$RUN/admin.seed")" "$note" "$comment" >/dev/null
  done
  printf '{"note": "%s", "comment": "%s"}\n' "$note" "$comment" | tee "$RUN/models.json"
}

do_mid() {
  local n=${1:-} cmd=${2:-}
  [ -n "$n" ] || die "usage: cluster.sh mid NODE create KIND JSON | mid NODE update STREAM JSON"
  local url="http://127.0.0.1:$(http_port "$n")"
  case "$cmd" in
    create)
      local model
      model=$(node -pe "require('$RUN/models.json')['${3:-}'] || ''")
      [ -n "$model" ] || die "KIND must be note or comment (after cluster.sh deploy)"
      js mid.mjs create "$url" "$(cat "$RUN/user.seed")" "$model" "${4:?content JSON}" ;;
    update) js mid.mjs update "$url" "$(cat "$RUN/user.seed")" "${3:?stream id}" "${4:?content JSON}" ;;
    *) die "usage: cluster.sh mid NODE create KIND JSON | mid NODE update STREAM JSON" ;;
  esac
}

do_partition() { # X: disconnect X's IPFS from every other node, both ways
  local x=$1 n
  index_of "$x" >/dev/null
  for n in $(nodes); do
    [ "$n" = "$x" ] && continue
    curl -sf -X POST "http://127.0.0.1:$(api_port "$x")/api/v0/swarm/disconnect?arg=/ip4/127.0.0.1/tcp/$(swarm_port "$n")/p2p/$(peer_id "$n")" >/dev/null || true
    curl -sf -X POST "http://127.0.0.1:$(api_port "$n")/api/v0/swarm/disconnect?arg=/ip4/127.0.0.1/tcp/$(swarm_port "$x")/p2p/$(peer_id "$x")" >/dev/null || true
  done
  touch "$RUN/partitioned-$x"
  say "node $x partitioned"
}

do_heal() {
  local x=$1 n
  for n in $(nodes); do [ "$n" = "$x" ] || connect "$x" "$n"; done
  rm -f "$RUN/partitioned-$x"
  say "node $x reconnected"
}

do_status() {
  local f p name
  [ -d "$RUN/pids" ] || { echo "nothing runs"; return; }
  for f in "$RUN"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid); p=$(cat "$f")
    if kill -0 "$p" 2>/dev/null; then
      echo "$name pid $p rss $(($(ps -o rss= -p "$p") / 1024)) MB"
    else
      echo "$name down"
    fi
  done
  if as_pg "$(pgbin)/pg_ctl" -D "$RUN/pg/data" status >/dev/null 2>&1; then echo "postgres :$PG_PORT up"; else echo "postgres down"; fi
}

do_down() {
  local f
  if [ -d "$RUN/pids" ]; then
    for f in "$RUN"/pids/ceramic-*.pid; do [ -e "$f" ] && stop_pid "$f"; done
    for f in "$RUN"/pids/*.pid; do [ -e "$f" ] && stop_pid "$f"; done
  fi
  if [ -f "$RUN/pg/data/PG_VERSION" ]; then
    as_pg "$(pgbin)/pg_ctl" -D "$RUN/pg/data" -m fast stop >/dev/null 2>&1 || true
  fi
  if [ "${1:-}" = "--clean" ]; then rm -rf "$RUN" "$HERE/cluster.toml"; fi
  say "down"
}

case "${1:-}" in
  install) do_install ;;
  up) shift; do_up "$@" ;;
  deploy) do_deploy ;;
  mid) shift; do_mid "$@" ;;
  stop-node) stop_pid "$RUN/pids/ceramic-${2:?node}.pid"; say "Ceramic ${2} stopped" ;;
  stop-ipfs) stop_pid "$RUN/pids/ipfs-${2:?node}.pid"; say "js-ipfs ${2} stopped" ;;
  start-ipfs) # a fresh repo's first dial is sometimes refused (observed once in ~5 runs): retry
    start_ipfs "${2:?node}"
    for i in 1 2 3 4 5; do (do_heal "$2") && break; [ "$i" = 5 ] && die "js-ipfs ${2} could not reconnect"; sleep 2; done
    say "js-ipfs ${2} up" ;;
  start-node) start_ceramic "${2:?node}"; say "Ceramic ${2} up" ;;
  partition) do_partition "${2:?node}" ;;
  heal) do_heal "${2:?node}" ;;
  status) do_status ;;
  down) do_down "${2:-}" ;;
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

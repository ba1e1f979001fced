#!/usr/bin/env bash
# Does each server flush a write to disk before it answers? Counts, with strace, the fsync and
# fdatasync calls each server's processes make while WRITES single-document writes are sent one
# after another (each waits for its answer), so "flushes per write" below 1 means answers that
# can come before the write is on disk. Servers: pouchdb-server (LevelDB), Breakwater (SQLite,
# its defaults) and Parse Server (its writes are PostgreSQL's: its backends and WAL writer are
# traced instead of node). Needs the peers installed: ../shared/peers/install.sh pouchdb parse
# Usage (from the project root): bench/peers/durability.sh   [WRITES=300] [BW_BIN=.venv/bin/breakwater]
set -euo pipefail
PEERS_DIR="${PEERS_DIR:-$(cd "$(dirname "$0")/../../../shared/peers" && pwd)}"
source "$PEERS_DIR/common.sh"   # PIDS, start_bg, stop_all (by PID, on exit), wait_port, log
WRITES="${WRITES:-300}"
BW_BIN="$(realpath "${BW_BIN:-.venv/bin/breakwater}")"
POUCH_PORT="${POUCH_PORT:-15984}"; BW_PORT="${BW_PORT:-18081}"; PARSE_PORT="${PARSE_PORT:-11337}"
RUN="$SCRATCH/durability"; DB=parsebench; APP=benchapp
rm -rf "$RUN" && mkdir -p "$RUN/pouch" "$RUN/bw" "$RUN/parse"
command -v strace >/dev/null || { log "strace is needed: apt-get install -y strace"; exit 1; }
[ -x "$SCRATCH/pouch/node_modules/.bin/pouchdb-server" ] || { log "run $PEERS_DIR/install.sh pouchdb"; exit 1; }
[ -x "$SCRATCH/parse/node_modules/.bin/parse-server" ] || { log "run $PEERS_DIR/install.sh parse"; exit 1; }

# writes METHOD URL_TEMPLATE [HEADER]: WRITES sequential writes on one kept-alive connection.
writes() {
  python3 - "$WRITES" "$@" <<'PY'
import http.client, json, sys, urllib.parse
n, method, template = int(sys.argv[1]), sys.argv[2], sys.argv[3]
headers = {"Content-Type": "application/json"}
if len(sys.argv) > 4:
    name, _, value = sys.argv[4].partition(":")
    headers[name.strip()] = value.strip()
url = urllib.parse.urlsplit(template)
connection = http.client.HTTPConnection(url.hostname, url.port)
for i in range(n):
    body = json.dumps({"title": f"write {i}", "done": False, "n": i})
    connection.request(method, url.path.replace("{id}", f"d{i}"), body, headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status >= 300:
        sys.exit(f"{method} {url.path}: {answer.status}")
PY
}

# traced LABEL PIDS... -- COMMAND: runs COMMAND while strace counts the PIDs' flushes.
traced() {
  local label=$1 out="$RUN/$1.strace"; shift
  local args=()
  while [ "$1" != "--" ]; do args+=(-p "$1"); shift; done
  shift
  strace -f -qq -c -e trace=fsync,fdatasync -o "$out" "${args[@]}" &
  local tracer=$!
  sleep 1
  "$@"
  sleep 0.5   # a flush that follows the last answer still counts
  kill -INT "$tracer"; wait "$tracer" || true
  local flushes
  awk -v label="$label" -v writes="$WRITES" '$NF == "fsync" || $NF == "fdatasync" {s += $4}
    END {printf "DURABILITY server=%s writes=%d flushes=%d flushes_per_write=%.2f\n", label, writes, s, s / writes}' "$out"
}

# --- pouchdb-server (as ../shared/peers/bench_pouchdb.sh starts it)
(cd "$RUN/pouch" && exec node "$SCRATCH/pouch/node_modules/.bin/pouchdb-server" --host 127.0.0.1 \
  --port "$POUCH_PORT" --dir "$RUN/pouch" --config "$RUN/pouch/config.json" -n) >"$RUN/pouch.log" 2>&1 &
POUCH_PID=$!; PIDS+=("$POUCH_PID")
wait_port "$POUCH_PORT" 60
curl -fsS -X PUT "http://127.0.0.1:$POUCH_PORT/bench" >/dev/null
traced pouchdb-server "$POUCH_PID" -- writes PUT "http://127.0.0.1:$POUCH_PORT/bench/{id}"

# --- Breakwater (as ../shared/peers/bench_vs_breakwater.sh starts it)
(cd "$RUN/bw" && BREAKWATER_AUTH_RATE_PER_IP=0 exec "$BW_BIN" serve --host 127.0.0.1 \
  --port "$BW_PORT" --data "$RUN/bw/data") >"$RUN/bw.log" 2>&1 &
BW_PID=$!; PIDS+=("$BW_PID")
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$BW_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
traced breakwater "$BW_PID" -- writes PUT "http://127.0.0.1:$BW_PORT/v1/collections/bench/docs/{id}"

# --- Parse Server on the local PostgreSQL (as ../shared/peers/bench_parse.sh sets it up)
psql_su() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt "$@"; }
on_exit_hook() { psql_su -d postgres -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true; }
psql_su -d postgres -c "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='$DB') THEN CREATE ROLE $DB LOGIN PASSWORD '$DB'; END IF; END\$\$"
psql_su -d postgres -c "DROP DATABASE IF EXISTS $DB"
psql_su -d postgres -c "CREATE DATABASE $DB OWNER $DB"
log "PostgreSQL: fsync=$(psql_su -c 'show fsync') synchronous_commit=$(psql_su -c 'show synchronous_commit')"
cat >"$RUN/parse/config.json" <<JSON
{ "appId": "$APP", "masterKey": "durability-$RANDOM$RANDOM",
  "databaseURI": "postgres://$DB:$DB@127.0.0.1:5432/$DB",
  "host": "127.0.0.1", "port": $PARSE_PORT, "mountPath": "/parse",
  "serverURL": "http://127.0.0.1:$PARSE_PORT/parse", "allowClientClassCreation": true,
  "logLevel": "error", "logsFolder": "$RUN/parse/logs" }
JSON
(cd "$RUN/parse" && exec node "$SCRATCH/parse/node_modules/.bin/parse-server" "$RUN/parse/config.json") \
  >"$RUN/parse.log" 2>&1 &
PARSE_PID=$!; PIDS+=("$PARSE_PID")
for _ in $(seq 600); do curl -fsS "http://127.0.0.1:$PARSE_PORT/parse/health" 2>/dev/null | grep -q ok && break; sleep 0.1; done
H="X-Parse-Application-Id: $APP"
# one create first, so that the class's table exists and its creation is not counted
WRITES=1 writes POST "http://127.0.0.1:$PARSE_PORT/parse/classes/Bench" "$H" >/dev/null
mapfile -t PG_PIDS < <({ pgrep -u postgres -x postgres; pgrep -u postgres -f '^postgres: '; } | sort -u)
traced parse-server-postgresql "${PG_PIDS[@]}" -- writes POST "http://127.0.0.1:$PARSE_PORT/parse/classes/Bench" "$H"

#!/usr/bin/env bash
# bench/tracking: kiln's MLflow tracking API against the issue's bars, each
# figure next to the raw SQLite limit for the same rows measured in the same
# run (bench/tracking/sqlite_limit.c) and MLflow's figure for scale.
#
#   (a) log-batch ingest, 1000 metrics per call, 100 calls (one connection),
#       and the concurrent variant (8 connections, 50 calls each) -> metrics/s
#   (b) metrics/get-history of one key with 100,000 points -> ms
#   (c) runs/search over 100,000 runs (5 params, 5 metrics each) with
#       `metrics.acc > 0.5 and params.lr = '0.01'` by `metrics.acc DESC`,
#       max_results 100 -> ms (and the time to create the runs)
#   (d) log-metric latency, 2,000 sequential calls on one connection -> p50/p99
#
# Env:
#   KILN_BIN             kiln binary (default build/kiln)
#   BENCH_ROUNDS         rounds of each read (default 7) and of each ingest (default 3 via
#                        BENCH_INGEST_ROUNDS); medians are reported
#   BENCH_RUNS           runs for (c) (default 100000)
#   BENCH_INGEST_CALLS   calls for (a) (default 100)
#   BENCH_CONNECTIONS    connections for (a)'s concurrent variant and (c)'s setup (default 8)
#   BENCH_LATENCY_CALLS  calls for (d) (default 2000)
#   BENCH_STRICT         1 = exit non-zero when a bar is missed
#   BENCH_OUT            JSON output (default build/bench/tracking.json)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

KILN_BIN=${KILN_BIN:-build/kiln}
ROUNDS=${BENCH_ROUNDS:-7}
INGEST_ROUNDS=${BENCH_INGEST_ROUNDS:-3}
NRUNS=${BENCH_RUNS:-100000}
CALLS=${BENCH_INGEST_CALLS:-100}
CONNS=${BENCH_CONNECTIONS:-8}
LAT_CALLS=${BENCH_LATENCY_CALLS:-2000}
STRICT=${BENCH_STRICT:-0}
OUT_JSON=${BENCH_OUT:-build/bench/tracking.json}
START_TIMEOUT_S=${BENCH_START_TIMEOUT:-15}
METRICS_PER_CALL=1000
KEYS_PER_CALL=10
# the limit's schemas: one row per point (0004) and the chunk layout kiln writes (0004 + 0007 + 0008)
ROWS_SCHEMA=src/store/migrations/0004_tracking.sql
CHUNK_MIGRATIONS=(src/store/migrations/0004_tracking.sql src/store/migrations/0007_metric_rollups.sql
  src/store/migrations/0008_metric_chunks.sql)

die() {
  echo "bench/tracking: $*" >&2
  exit 1
}

for tool in cc curl awk /usr/bin/python3; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
[ -x "$KILN_BIN" ] || die "kiln binary '$KILN_BIN' not found or not executable (run 'make' first, or set KILN_BIN)"
for n in "$ROUNDS" "$INGEST_ROUNDS" "$NRUNS" "$CALLS" "$CONNS" "$LAT_CALLS"; do
  case $n in '' | *[!0-9]* | 0) die "counts must be positive integers (got '$n')" ;; esac
done

mkdir -p build/bench "$(dirname "$OUT_JSON")"
cc -O2 -Wall -Wextra -o build/bench/tclient bench/tracking/tclient.c -lpthread -lm ||
  die "building build/bench/tclient failed"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -o build/bench/sqlite_limit bench/tracking/sqlite_limit.c $(pkg-config --cflags --libs sqlite3 2>/dev/null || echo -lsqlite3) -lm ||
  die "building build/bench/sqlite_limit failed (needs libsqlite3-dev)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-tracking.XXXXXX")
SERVER_PID=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench/tracking: $(nproc) CPUs, load average at start: $LOAD_START; $NRUNS runs for search," \
  "reads x$ROUNDS, ingest x$INGEST_ROUNDS" >&2

# ---- kiln, on a fresh data directory (SQLite default) ---------------------------------
PW="Bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')-Zq9"
KILN_ADMIN_PASSWORD="$PW" "$KILN_BIN" server --data "$TMP/data" --listen 127.0.0.1:0 \
  >"$TMP/kiln.out" 2>"$TMP/kiln.err" &
SERVER_PID=$!
PORT=""
deadline=$((SECONDS + START_TIMEOUT_S))
while [ "$SECONDS" -le "$deadline" ]; do
  line=$(grep -m1 -oE 'http://127\.0\.0\.1:[0-9]+' "$TMP/kiln.out" || true)
  if [ -n "$line" ]; then
    PORT=${line##*:}
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$TMP/kiln.err" >&2; die "kiln exited before listening"; }
  sleep 0.05
done
[ -n "$PORT" ] || die "kiln printed no http://127.0.0.1:PORT within ${START_TIMEOUT_S}s"
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do
  [ "$SECONDS" -le "$deadline" ] || die "kiln does not answer /healthz"
  sleep 0.05
done
URL="http://127.0.0.1:$PORT"

jget() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
TOKEN=$(curl -sf -X POST "$URL/api/v1/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PW\"}" | jget access_token) || die "admin sign-in failed"
KEY=$(curl -sf -X POST "$URL/api/v1/api-keys" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"bench-tracking","scopes":["read","write"]}' | jget key) || die "creating an API key failed"
experiment() {
  curl -sf -X POST "$URL/api/2.0/mlflow/experiments/create" -H "Authorization: Bearer $KEY" \
    -d "{\"name\":\"$1\"}" | jget experiment_id
}
EXP=$(experiment bench) || die "experiments/create failed"
TC() { build/bench/tclient "$PORT" "$KEY" "$@"; }
new_run() { TC create-run "$EXP"; }
# value NAME FILE: the number after NAME in a tclient/sqlite_limit output
value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
  echo "${stat##*) }" | awk '{ print $12 + $13 }'
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
R="$TMP/results"
: >"$R"
rec() { echo "$1 $2" >>"$R"; }

# (a) ingest: one connection, then CONNS connections (a run each)
for i in $(seq 1 "$INGEST_ROUNDS"); do
  run=$(new_run)
  t0=$(cpu_ticks "$SERVER_PID")
  TC ingest "$run" "$CALLS" "$METRICS_PER_CALL" "$KEYS_PER_CALL" 1 0 >"$TMP/ingest1.$i" ||
    die "ingest failed: $(cat "$TMP/ingest1.$i")"
  t1=$(cpu_ticks "$SERVER_PID")
  rec ingest_seq "$(value metrics_per_s "$TMP/ingest1.$i")"
  rec ingest_cpu_us_per_metric "$(awk -v a="$t0" -v b="$t1" -v n="$((CALLS * METRICS_PER_CALL))" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.3f", (b - a) * 1e6 / hz / n }')"
  runs=""
  for _ in $(seq 1 "$CONNS"); do runs+="${runs:+,}$(new_run)"; done
  TC ingest "$runs" "$((CONNS * 50))" "$METRICS_PER_CALL" "$KEYS_PER_CALL" "$CONNS" 0 >"$TMP/ingestc.$i" ||
    die "concurrent ingest failed: $(cat "$TMP/ingestc.$i")"
  rec ingest_conc "$(value metrics_per_s "$TMP/ingestc.$i")"
done

# (b) one key with CALLS * 1000 points, logged through log-batch, then read back
hrun=$(new_run)
TC ingest "$hrun" "$CALLS" "$METRICS_PER_CALL" 1 1 0 >"$TMP/ingest-one-key" || die "history setup failed"
rec ingest_one_key "$(value metrics_per_s "$TMP/ingest-one-key")"
TC get "/api/2.0/mlflow/metrics/get-history?run_id=$hrun&metric_key=loss" "$ROUNDS" >"$TMP/history" ||
  die "get-history failed"
[ "$(value key_fields "$TMP/history")" = "$((CALLS * METRICS_PER_CALL))" ] ||
  die "get-history answered $(value key_fields "$TMP/history") points, not $((CALLS * METRICS_PER_CALL))"
rec history_ms "$(value median_ms "$TMP/history")"
rec history_bytes "$(value bytes "$TMP/history")"

# (d) single log-metric latency
lrun=$(new_run)
TC latency "$lrun" "$LAT_CALLS" >"$TMP/latency" || die "log-metric latency failed"
rec single_p50_ms "$(value p50_ms "$TMP/latency")"
rec single_p99_ms "$(value p99_ms "$TMP/latency")"

# (c) NRUNS runs (runs/create + one log-batch of 5 params and 5 metrics each), then the search
SEXP=$(experiment search) || die "experiments/create failed"
TC runs "$SEXP" "$NRUNS" "$CONNS" >"$TMP/runs" || die "creating runs failed: $(cat "$TMP/runs")"
rec runs_setup_s "$(value seconds "$TMP/runs")"
rec runs_setup_per_s "$(value runs_per_s "$TMP/runs")"
BODY="{\"experiment_ids\":[\"$SEXP\"],\"filter\":\"metrics.acc > 0.5 and params.lr = '0.01'\",\"order_by\":[\"metrics.acc DESC\"],\"max_results\":100}"
TC post /api/2.0/mlflow/runs/search "$BODY" "$ROUNDS" >"$TMP/search" || die "runs/search failed"
[ "$(value runs "$TMP/search")" = 100 ] || die "runs/search answered $(value runs "$TMP/search") runs, not 100"
rec search_ms "$(value median_ms "$TMP/search")"

kill -TERM "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

# ---- the limit: the same rows straight through SQLite, same schema and pragmas ---------------
cat "${CHUNK_MIGRATIONS[@]}" >"$TMP/chunks.sql"
for i in $(seq 1 "$INGEST_ROUNDS"); do
  n=$([ "$i" = 1 ] && echo "$NRUNS" || echo 1)
  build/bench/sqlite_limit "$ROWS_SCHEMA" "$TMP/chunks.sql" "$TMP/limit.db" "$CALLS" "$METRICS_PER_CALL" "$KEYS_PER_CALL" "$n" \
    "$LAT_CALLS" "$ROUNDS" >"$TMP/limit.$i" || die "sqlite_limit failed"
  rec limit_ingest_one_txn "$(value ingest_one_txn_metrics_per_s "$TMP/limit.$i")"
  rec limit_ingest_txn_per_call "$(value ingest_txn_per_call_metrics_per_s "$TMP/limit.$i")"
  rec limit_rows_ingest_one_txn "$(value rows_ingest_one_txn_metrics_per_s "$TMP/limit.$i")"
  rec limit_rows_ingest_txn_per_call "$(value rows_ingest_txn_per_call_metrics_per_s "$TMP/limit.$i")"
  if [ "$i" = 1 ]; then
    rec limit_history_ms "$(value history_median_ms "$TMP/limit.$i")"
    rec limit_search_ms "$(value search_median_ms "$TMP/limit.$i")"
    rec limit_runs_setup_s "$(value runs_setup_s "$TMP/limit.$i")"
    rec limit_single_p50_ms "$(value single_p50_ms "$TMP/limit.$i")"
    rec limit_single_p99_ms "$(value single_p99_ms "$TMP/limit.$i")"
    rec sqlite_version "$(value sqlite_version "$TMP/limit.$i")"
  fi
  rm -f "$TMP"/limit.db*
done

rec load_start "\"$LOAD_START\""
rec load_end "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
STATUS=0
/usr/bin/python3 bench/tracking/report.py "$R" "$OUT_JSON" \
  "{\"runs\": $NRUNS, \"ingest_calls\": $CALLS, \"metrics_per_call\": $METRICS_PER_CALL, \"keys_per_call\": $KEYS_PER_CALL, \"connections\": $CONNS, \"latency_calls\": $LAT_CALLS, \"rounds\": $ROUNDS, \"ingest_rounds\": $INGEST_ROUNDS, \"cpus\": $(nproc), \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\", \"kiln_bin\": \"$KILN_BIN\"}" ||
  STATUS=$?
if [ "$STATUS" = 3 ] && [ "$STRICT" != 1 ]; then STATUS=0; fi
exit "$STATUS"

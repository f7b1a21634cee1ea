#!/usr/bin/env bash
# bench/serving: kiln's prediction endpoints against the FastAPI + uvicorn
# peer (bench/peers/fastapi_serving.py) serving the same XGBoost and
# scikit-learn models, measured with wrk in the same run; plus kiln's
# Server-Timing overhead at one connection and the raw backend call
# in-process (bench/serving/raw.c) as the limit.
#
# Env:
#   KILN_BIN           kiln binary (default build/kiln)
#   BENCH_DURATION     wrk duration per measurement (default 10s)
#   BENCH_CONNECTIONS  connection counts (default "1 16 64")
#   BENCH_ROWS         rows per request (default "1 32")
#   BENCH_MODELS       models (default "xgb rf"; the bars are about xgb)
#   BENCH_ENDPOINTS    predict (MLflow JSON) and/or v2 (KServe V2 JSON) (default "predict v2")
#   BENCH_WARMUP       wrk warm-up before each measurement (default 2s; 0 = none)
#   BENCH_PROBE_CALLS  requests of the Server-Timing probe (default 5000)
#   BENCH_RAW_CALLS    calls per figure of the raw backend limit (default 100000)
#   BENCH_LOAD_BODY    JSON body of kiln's explicit load of xgb (default {}: kiln's defaults)
#   BENCH_RF_LOAD_BODY the same for rf (default {"instances": 2}: two worker processes, as the peer has)
#   PEER_WORKERS       uvicorn workers of the peer (default 2)
#   BENCH_STRICT       1 = exit non-zero when a bar is missed
#   BENCH_OUT          JSON output (default build/bench/serving.json)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

KILN_BIN=${KILN_BIN:-build/kiln}
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-"1 16 64"}
ROWS=${BENCH_ROWS:-"1 32"}
MODELS=${BENCH_MODELS:-"xgb rf"}
ENDPOINTS=${BENCH_ENDPOINTS:-"predict v2"}
WARMUP=${BENCH_WARMUP:-2s}
PROBE_CALLS=${BENCH_PROBE_CALLS:-5000}
RAW_CALLS=${BENCH_RAW_CALLS:-100000}
LOAD_BODY=${BENCH_LOAD_BODY:-"{}"}
RF_LOAD_BODY=${BENCH_RF_LOAD_BODY:-'{"instances": 2}'}
PEER_WORKERS=${PEER_WORKERS:-2}
STRICT=${BENCH_STRICT:-0}
OUT_JSON=${BENCH_OUT:-build/bench/serving.json}
START_TIMEOUT_S=${BENCH_START_TIMEOUT:-30}
PY=/usr/bin/python3
MODEL_DIR=build/bench/serving
RAW_DIR=build/bench/serving-wrk
RAW_BIN=build/bench/serve_raw
PROBE_BIN=build/bench/stclient

die() {
  echo "bench/serving: $*" >&2
  exit 1
}

for tool in wrk curl cc awk make "$PY"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (scripts/bootstrap installs what the bench needs)"
done
[ -x "$KILN_BIN" ] || die "kiln binary '$KILN_BIN' not found or not executable (run 'make' first, or set KILN_BIN)"
"$PY" -c 'import fastapi, uvicorn, uvloop, httptools, sklearn, xgboost, joblib' 2>/dev/null ||
  die "the peer needs python3-fastapi, python3-uvicorn, python3-uvloop, python3-httptools, python3-sklearn, python3-xgboost (scripts/bootstrap)"
for n in "$PROBE_CALLS" "$RAW_CALLS" "$PEER_WORKERS"; do
  case $n in '' | *[!0-9]* | 0) die "counts must be positive integers (got '$n')" ;; esac
done
for d in "$DURATION" "$WARMUP"; do
  case $d in 0 | [0-9]*[smh] | [0-9]*) ;; *) die "bad duration '$d' (wrk takes whole units: 10s, 1m)" ;; esac
done
for m in $MODELS; do case $m in xgb | rf) ;; *) die "BENCH_MODELS: unknown model '$m' (xgb, rf)" ;; esac; done
for ep in $ENDPOINTS; do case $ep in predict | v2) ;; *) die "BENCH_ENDPOINTS: unknown '$ep' (predict, v2)" ;; esac; done
for r in $ROWS; do case $r in 1 | 32) ;; *) die "BENCH_ROWS: 1 and/or 32 (the bodies train.py writes)" ;; esac; done

mkdir -p build/bench "$RAW_DIR" "$(dirname "$OUT_JSON")"
rm -f "$RAW_DIR"/*.txt
cc -O2 -Wall -Wextra -o "$PROBE_BIN" bench/serving/stclient.c -lm || die "building $PROBE_BIN failed"
# The limit links kiln's own objects, so it is built by the Makefile.
KILN_NO_UI=${KILN_NO_UI:-1} make --no-print-directory -s "$RAW_BIN" >/dev/null || die "building $RAW_BIN failed"
"$PY" bench/serving/train.py "$MODEL_DIR" >&2 || die "training the models failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-serving.XXXXXX")
KILN_PID=""
PEER_PID=""
# The pids of a process and its descendants.
tree_pids() {
  local p=$1 c
  echo "$p"
  # shellcheck disable=SC2013  # the file is a list of pids separated by spaces
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
# Stops a server and every process under it (uvicorn's workers and its
# multiprocessing helper): SIGTERM to the top one, which stops its own
# children; whatever is left after 10 s is killed by pid.
# shellcheck disable=SC2317  # called from the EXIT trap
stop_pid() {
  local pid=$1 pids p
  [ -n "$pid" ] || return 0
  pids=$(tree_pids "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
}
# shellcheck disable=SC2317
cleanup() {
  stop_pid "$KILN_PID"
  stop_pid "$PEER_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPU time (user + system, all threads) of a process and its descendants, in
# clock ticks. Throughput on a shared machine swings with whatever else runs;
# CPU time per request served barely does (bench/README.md).
cpu_ticks() {
  local p stat total=0 t
  for p in $(tree_pids "$1"); do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    t=$(echo "${stat##*) }" | awk '{ print $12 + $13 }')
    total=$((total + t))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# A server keeps working on requests that wrk left in flight when it stopped
# (Python cannot abandon a running predict); waits, up to 5 s, until the
# server uses at most a tick of CPU per 100 ms, so that its backlog does not
# run during the other server's measurement.
settle() {
  local a b
  for _ in $(seq 1 50); do
    a=$(cpu_ticks "$1")
    sleep 0.1
    b=$(cpu_ticks "$1")
    [ $((b - a)) -gt 1 ] || return 0
  done
}

# parse_wrk FILE -> "req_per_s p50_us p99_us errors requests" (latencies in µs)
parse_wrk() {
  awk '
    function to_us(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n
      if (u == "ms") return n * 1e3
      if (u == "s")  return n * 1e6
      if (u == "m")  return n * 6e7
      if (u == "h")  return n * 3.6e9
      return -1
    }
    /^[ \t]*50%/ { p50 = to_us($2) }
    /^[ \t]*99%/ { p99 = to_us($2) }
    /^[ \t]*[0-9]+ requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p50 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
      printf "%.2f %.1f %.1f %d %d\n", rps, p50, p99, err + 0, reqs
    }' "$1"
}

wait_http() { # URL DEADLINE_SECONDS
  until curl -sf -o /dev/null "$1"; do
    [ "$SECONDS" -le "$2" ] || return 1
    sleep 0.1
  done
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench/serving: wrk $(wrk --version 2>&1 | head -n1 | awk '{print $2}'), $(nproc) CPUs shared by the" \
  "servers and wrk (nothing pinned); $DURATION per case; load average at start: $LOAD_START" >&2

# ---- kiln: a fresh data directory, an admin, the two models, a predict key ----
PW="Bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')-Zq9"
KILN_ADMIN_PASSWORD="$PW" "$KILN_BIN" server --data "$TMP/data" --listen 127.0.0.1:0 \
  >"$TMP/kiln.out" 2>"$TMP/kiln.err" &
KILN_PID=$!
KPORT=""
deadline=$((SECONDS + START_TIMEOUT_S))
while [ "$SECONDS" -le "$deadline" ]; do
  line=$(grep -m1 -oE 'http://127\.0\.0\.1:[0-9]+' "$TMP/kiln.out" || true)
  if [ -n "$line" ]; then
    KPORT=${line##*:}
    break
  fi
  kill -0 "$KILN_PID" 2>/dev/null || { tail -n 20 "$TMP/kiln.err" >&2; die "kiln exited before listening"; }
  sleep 0.05
done
[ -n "$KPORT" ] || die "kiln printed no http://127.0.0.1:PORT within ${START_TIMEOUT_S}s"
KURL="http://127.0.0.1:$KPORT"
wait_http "$KURL/healthz" "$deadline" || die "kiln does not answer /healthz"

jget() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
TOKEN=$(curl -sf -X POST "$KURL/api/v1/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PW\"}" | jget access_token) || die "admin sign-in failed"
# Requests carry a key that may only predict, in the one project the models
# are uploaded to (the admin's default), as a deployed client's would.
PROJECT=$(curl -sf "$KURL/api/v1/projects" -H "Authorization: Bearer $TOKEN" | "$PY" -c '
import json, sys
ps = json.load(sys.stdin)["projects"]
print(([p for p in ps if p["name"] == "default"] or ps)[0]["id"])') || die "listing the admin's projects failed"
KEY=$(curl -sf -X POST "$KURL/api/v1/api-keys" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\":\"bench-serving\",\"scopes\":[\"predict\"],\"project_id\":\"$PROJECT\"}" | jget key) ||
  die "creating an API key failed"
AUTH="Bearer $KEY"

declare -A MODEL_FILE=([xgb]=xgb.json [rf]=rf.joblib)
declare -A MODEL_LOAD=([xgb]=$LOAD_BODY [rf]=$RF_LOAD_BODY)
for m in $MODELS; do
  curl -sS -X POST "$KURL/api/v1/models/upload?name=$m" -H "Authorization: Bearer $TOKEN" -H "X-Kiln-Project: $PROJECT" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$MODEL_DIR/${MODEL_FILE[$m]}" >"$TMP/upload-$m.json" ||
    die "uploading $m failed"
  "$PY" - "$TMP/upload-$m.json" "$m" <<'EOF' || die "uploading $m: $(head -c 400 "$TMP/upload-$m.json")"
import json, sys
v = json.load(open(sys.argv[1])).get("model_version") or {}
if v.get("status") != "READY":
    sys.exit("bench/serving: %s is %s (%s), not READY" % (sys.argv[2], v.get("status"), v.get("status_message")))
print("bench/serving: uploaded %s as version %s, format %s" % (sys.argv[2], v.get("version"), v.get("format")),
      file=sys.stderr)
EOF
  code=$(curl -sS -o "$TMP/load-$m.json" -w '%{http_code}' -X POST "$KURL/api/v1/models/$m/versions/latest/load" \
    -H "Authorization: Bearer $TOKEN" -H "X-Kiln-Project: $PROJECT" -H 'Content-Type: application/json' \
    -d "${MODEL_LOAD[$m]}") || code=000
  [ "$code" = 200 ] || die "loading $m answered $code: $(head -c 400 "$TMP/load-$m.json")"
done

# ---- the peer: uvicorn in its best configuration ------------------------------
PPORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PEER_MODELS=""
for m in $MODELS; do PEER_MODELS+="${PEER_MODELS:+,}$m=$MODEL_DIR/${MODEL_FILE[$m]}"; done
PEER_MODELS="$PEER_MODELS" "$PY" -m uvicorn fastapi_serving:app --app-dir bench/peers --host 127.0.0.1 \
  --port "$PPORT" --workers "$PEER_WORKERS" --loop uvloop --http httptools --no-access-log \
  >"$TMP/peer.out" 2>"$TMP/peer.err" &
PEER_PID=$!
PURL="http://127.0.0.1:$PPORT"
deadline=$((SECONDS + START_TIMEOUT_S))
# Every worker must be up, or the first measurement would see one.
until [ "$(grep -c 'Application startup complete' "$TMP/peer.err" 2>/dev/null)" -ge "$PEER_WORKERS" ]; do
  kill -0 "$PEER_PID" 2>/dev/null || { tail -n 20 "$TMP/peer.err" >&2; die "the peer exited"; }
  [ "$SECONDS" -le "$deadline" ] || { tail -n 20 "$TMP/peer.err" >&2; die "the peer's workers did not start"; }
  sleep 0.1
done
wait_http "$PURL/healthz" "$deadline" || die "the peer does not answer /healthz"

path_of() { # ENDPOINT MODEL
  if [ "$1" = predict ]; then echo "/api/v1/models/$2/versions/latest/predict"; else echo "/v2/models/$2/infer"; fi
}
body_of() { # ENDPOINT ROWS
  if [ "$1" = predict ]; then echo "$MODEL_DIR/predict-$2.json"; else echo "$MODEL_DIR/v2-$2.json"; fi
}

# Both servers must answer what the framework computes, on every case
# measured, before anything is timed (this also warms kiln's models).
for server in kiln peer; do
  url=$KURL
  hdr=(-H "Authorization: $AUTH")
  [ "$server" = peer ] && url=$PURL && hdr=()
  for m in $MODELS; do
    for ep in $ENDPOINTS; do
      for r in $ROWS; do
        out="$TMP/check-$server-$m-$ep-$r.json"
        code=$(curl -sS -o "$out" -D "$out.h" -w '%{http_code}' -X POST "$url$(path_of "$ep" "$m")" "${hdr[@]}" \
          -H 'Content-Type: application/json' --data-binary "@$(body_of "$ep" "$r")") || code=000
        [ "$code" = 200 ] || die "$server $m $ep ($r rows) answered $code: $(head -c 400 "$out")"
        "$PY" bench/serving/check.py "$MODEL_DIR/expected.json" "$m-$r" "$out" ||
          die "$server $m $ep ($r rows) does not answer the framework's predictions"
        if [ "$server" = kiln ] && ! grep -qi '^server-timing:.*total;dur=' "$out.h"; then
          echo "bench/serving: warning: kiln's answer to $m $ep carries no Server-Timing header" >&2
        fi
      done
    done
  done
done
echo "bench/serving: both servers answer the framework's predictions on every case" >&2

R="$TMP/results"
: >"$R"
rec() { echo "$*" >>"$R"; }

# "rows_sum batches" of kiln's batch-size histogram for model M (from /metrics)
batch_counts() {
  { curl -sf "$KURL/metrics" || true; } | awk -v m="$1" '
    index($0, "kiln_serve_batch_size_sum{") == 1 && index($0, "model=\"" m "\"") { s += $NF }
    index($0, "kiln_serve_batch_size_count{") == 1 && index($0, "model=\"" m "\"") { n += $NF }
    END { printf "%d %d\n", s, n }'
}

# measure SERVER MODEL ENDPOINT ROWS C
measure() {
  local server=$1 m=$2 ep=$3 r=$4 c=$5 url pid threads raw parsed t0 t1 cpu auth="" b0="0 0" b1="0 0" bpr
  threads=$((c < 2 ? c : 2))
  if [ "$server" = kiln ]; then url=$KURL pid=$KILN_PID auth=$AUTH; else url=$PURL pid=$PEER_PID; fi
  url+=$(path_of "$ep" "$m")
  export BENCH_BODY_FILE BENCH_AUTH_HEADER
  BENCH_BODY_FILE=$(body_of "$ep" "$r")
  BENCH_AUTH_HEADER=$auth
  if [ "$WARMUP" != 0 ]; then
    wrk -t"$threads" -c"$c" -d"$WARMUP" -s bench/serving/post.lua "$url" >/dev/null 2>&1 &
    wait $! || true
  fi
  raw="$RAW_DIR/$server-$m-$ep-r$r-c$c.txt"
  echo "  $server  $m  $ep  rows=$r  c=$c t=$threads d=$DURATION" >&2
  [ "$server" = kiln ] && b0=$(batch_counts "$m")
  t0=$(cpu_ticks "$pid")
  wrk -t"$threads" -c"$c" -d"$DURATION" --latency -s bench/serving/post.lua "$url" >"$raw" 2>&1 &
  wait $! || die "wrk failed against $server ($m $ep rows=$r c=$c): $(tail -n3 "$raw")"
  t1=$(cpu_ticks "$pid")
  settle "$pid"
  [ "$server" = kiln ] && b1=$(batch_counts "$m")
  # rows per backend call while measured (0: not known)
  bpr=$(echo "$b0 $b1" | awk '{ printf "%.2f", ($4 > $2 ? ($3 - $1) / ($4 - $2) : 0) }')
  parsed=$(parse_wrk "$raw") || die "cannot parse wrk output $raw"
  # shellcheck disable=SC2086  # "rps p50 p99 errors requests" -> $1..$5
  set -- $parsed
  cpu=$(awk -v a="$t0" -v b="$t1" -v n="$5" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.2f", (n > 0 && b >= a ? (b - a) * 1e6 / hz / n : 0) }')
  rec case "$server" "$m" "$ep" "$r" "$c" "$1" "$2" "$3" "$4" "$5" "$cpu" "$bpr"
  [ "$4" -eq 0 ] || echo "bench/serving: warning: $server $m $ep rows=$r c=$c had $4 errors; see $raw" >&2
}

# Both servers stay up, one measured while the other idles; each case is a
# back-to-back pair (seconds apart, so both see the same machine) and the
# order within a pair alternates.
case_no=0
for m in $MODELS; do
  for ep in $ENDPOINTS; do
    for r in $ROWS; do
      for c in $CONNS; do
        case_no=$((case_no + 1))
        if [ $((case_no % 2)) -eq 0 ]; then
          measure kiln "$m" "$ep" "$r" "$c"
          measure peer "$m" "$ep" "$r" "$c"
        else
          measure peer "$m" "$ep" "$r" "$c"
          measure kiln "$m" "$ep" "$r" "$c"
        fi
      done
    done
  done
done

# ---- Server-Timing probe: one connection, PROBE_CALLS requests (xgb) ------------
if [[ " $MODELS " == *" xgb "* ]]; then
  for ep in $ENDPOINTS; do
    for r in $ROWS; do
      for server in kiln peer; do
        port=$KPORT
        auth=$AUTH
        [ "$server" = peer ] && port=$PPORT && auth=""
        BENCH_AUTH_HEADER=$auth "$PROBE_BIN" "$port" "$(path_of "$ep" xgb)" "$(body_of "$ep" "$r")" "$PROBE_CALLS" 200 \
          >"$TMP/probe" || die "the probe failed against $server"
        awk -v s="$server" -v ep="$ep" -v r="$r" '{ print "probe", s, "xgb", ep, r, $1, $2 }' "$TMP/probe" >>"$R"
      done
    done
  done
fi

stop_pid "$KILN_PID"
KILN_PID=""
stop_pid "$PEER_PID"
PEER_PID=""

# ---- the limit: the backend in-process, with the servers stopped -------------
if [[ " $MODELS " == *" xgb "* ]]; then
  "$RAW_BIN" "$MODEL_DIR/xgb.json" xgboost-json "$MODEL_DIR/predict-32.json" "$RAW_CALLS" >"$TMP/raw" ||
    die "the raw backend limit failed"
  "$PY" - "$TMP/raw" "$MODEL_DIR/expected.json" <<'EOF' || die "the raw backend call does not answer XGBoost's predictions"
import json, sys
raw = dict(l.split(None, 1) for l in open(sys.argv[1]) if l.strip())
exp = json.load(open(sys.argv[2]))
for key, want in (("pred_1_first", exp["xgb-1"][0]), ("pred_32_first", exp["xgb-32"][0]),
                  ("pred_32_last", exp["xgb-32"][-1])):
    got = float(raw[key])
    if abs(got - want) > 1e-5 * max(1.0, abs(want)):
        sys.exit("bench/serving: raw %s = %r, XGBoost says %r" % (key, got, want))
EOF
  awk '{ print "raw", $1, $2 }' "$TMP/raw" >>"$R"
fi

PEER_DESC=$("$PY" -c 'import fastapi, uvicorn, xgboost, sklearn, sys
print("FastAPI %s + uvicorn %s (bench/peers/fastapi_serving.py; %s workers, uvloop, httptools, no access log;"
      " xgboost %s, scikit-learn %s)" % (fastapi.__version__, uvicorn.__version__, sys.argv[1], xgboost.__version__,
      sklearn.__version__))' "$PEER_WORKERS")
STATUS=0
"$PY" bench/serving/report.py "$R" "$OUT_JSON" \
  "{\"duration\": \"$DURATION\", \"warmup\": \"$WARMUP\", \"probe_calls\": $PROBE_CALLS, \"raw_calls\": $RAW_CALLS,
    \"peer_workers\": $PEER_WORKERS, \"peer\": \"$PEER_DESC\", \"cpus\": $(nproc), \"load_start\": \"$LOAD_START\",
    \"load_end\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"wrk\": \"$(wrk --version 2>&1 | head -n1 | awk '{print $2}')\",
    \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\", \"kiln_bin\": \"$KILN_BIN\",
    \"load_body\": {\"xgb\": $LOAD_BODY, \"rf\": $RF_LOAD_BODY}}" || STATUS=$?
# the collected lines, so that report.py can be rerun on them
cp "$R" "$RAW_DIR/results.txt"
echo "bench/serving: raw wrk output and the collected figures (results.txt) in $RAW_DIR/" >&2
if [ "$STATUS" = 3 ] && [ "$STRICT" != 1 ]; then STATUS=0; fi
exit "$STATUS"

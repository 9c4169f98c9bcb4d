#!/usr/bin/env bash
# Intake over both APIs in the same run: unary `levqor.v1.JobsService/Submit` (gRPC) and
# `POST /v1/jobs` (REST), the same job, with one load generator (h2load) against one release
# `levqor serve` (API only, workers 0) on a fresh SQLite file (the default store) or
# DATABASE_URL. ROUNDS rounds alternate the order (REST, gRPC, then gRPC, REST, …), so that
# neither side always runs on a warmer or fuller database.
#
#   benches/api_intake.sh                       # 64 concurrent calls, 15 s each, 2 rounds
#   CONCURRENCY=64 DURATION=15 ROUNDS=2 benches/api_intake.sh
#   DATABASE_URL=postgres://… benches/api_intake.sh
#   LAYOUTS="rest grpc_one_channel" LEVQOR_BIN=path/to/levqor benches/api_intake.sh   # two layouts, one build
#
# gRPC runs as 64 streams on one connection (what one client channel does), on a pool of POOL
# connections (4: CONCURRENCY/POOL streams each) and as 64 connections of one stream each; REST as 64 HTTP/1.1 keep-alive connections and as 64
# streams on one HTTP/2 connection (the same client work per call as gRPC's). Each run's
# p50/p99 come from h2load's per-request log; its admitted jobs are counted in the database,
# so a call that answered HTTP 200 with a gRPC error is seen (`answered_not_admitted`). The
# server's and the load generator's CPU time per call are printed too: on a small machine both
# share the cores, so a protocol that costs the client more leaves the server less.
# Prints "<system> <metric>=<number>" lines. Needs h2load (apt-get install nghttp2-client),
# curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
POOL=${POOL:-4}
# Which layouts run, in this order in odd rounds and reversed in even ones.
LAYOUTS=${LAYOUTS:-rest grpc_one_channel grpc_pool grpc_many_channels rest_h2}
PORT=${PORT:-18080}
GRPC_PORT=${GRPC_PORT:-18051}
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
DB=${DATABASE_URL:-sqlite:$tmp/bench.db}

if [ -z "${LEVQOR_BIN:-}" ]; then
  cargo build --release -q -p levqor-http --bin levqor
  LEVQOR_BIN=target/release/levqor
fi
cargo build --release -q -p levqor-benches --bin levqor-grpc-body
target/release/levqor-grpc-body > "$tmp/submit.grpc"
printf '%s' '{"workflow":{"name":"bench","steps":[{"id":"a","type":"log","message":"hi {{input.n}}"}]},"input":{"n":1}}' > "$tmp/submit.json"

LEVQOR_LOG=warn "$LEVQOR_BIN" serve --listen 127.0.0.1:$PORT --grpc-listen 127.0.0.1:$GRPC_PORT \
  --database-url "$DB" --admin-key bench-admin --workers 0 --signup-credits 1000000000 \
  --default-tier enterprise > "$tmp/out" 2> "$tmp/err" &
echo $! > "$tmp/pid"
for _ in $(seq 1 100); do grep -q "grpc listening" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$PORT
user=$(curl -sf -X POST $base/v1/users -H 'authorization: Bearer bench-admin' -H 'content-type: application/json' \
  -d "{\"email\":\"bench-$RANDOM@example.com\"}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$(curl -sf -X POST "$base/v1/users/$user/keys" -H 'authorization: Bearer bench-admin' | sed -E 's/.*"key":"([^"]+)".*/\1/')

# CPU time (user + system, in clock ticks) the server has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$tmp/pid")/stat"; }

jobs_in_db() {
  case $DB in
    sqlite:*) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from jobs').fetchone()[0])" "${DB#sqlite:}" ;;
    *) psql -Atq "$DB" -c 'select count(*) from jobs' ;;
  esac
}

# One measurement: h2load with the given flags; prints calls/s (admitted jobs / seconds), p50, p99.
measure() {
  local system=$1; shift
  local before after
  before=$(jobs_in_db)
  rm -f "$tmp/log"
  local server_before server_after
  server_before=$(cpu_ticks)
  TIMEFORMAT='%U %S'
  { time h2load -D "$DURATION" --log-file="$tmp/log" -H "authorization: Bearer $KEY" "$@" > "$tmp/h2load.out"; } 2> "$tmp/client_cpu"
  server_after=$(cpu_ticks)
  after=$(jobs_in_db)
  if [ ! -s "$tmp/log" ]; then echo "# $system: h2load logged nothing:" >&2; tail -5 "$tmp/h2load.out" >&2; return 1; fi
  python3 - "$system" "$tmp/log" "$((after - before))" "$((server_after - server_before))" "$(cat "$tmp/client_cpu")" "$(getconf CLK_TCK)" <<'PY'
import sys
system, log, admitted = sys.argv[1], sys.argv[2], int(sys.argv[3])
server_ticks, client_cpu, hz = int(sys.argv[4]), sys.argv[5].split(), int(sys.argv[6])
rows = [r for r in (line.split("\t") for line in open(log)) if len(r) >= 3]
ok = sorted(int(r[2]) for r in rows if r[1].startswith("2"))
starts = [int(r[0]) for r in rows]
ends = [int(r[0]) + int(r[2]) for r in rows]
secs = (max(ends) - min(starts)) / 1e6
pct = lambda p: ok[min(len(ok) - 1, int(len(ok) * p))] / 1000
print(f"{system} calls_per_s={len(ok) / secs:.0f}")
print(f"{system} p50_ms={pct(0.50):.2f}")
print(f"{system} p99_ms={pct(0.99):.2f}")
print(f"{system} non_2xx={len(rows) - len(ok)}")
from collections import Counter
bad = Counter(r[1] for r in rows if not r[1].startswith("2"))
if bad:
    print(f"# {system} non-2xx statuses: {dict(bad)}")
print(f"{system} server_cpu_us_per_call={server_ticks / hz * 1e6 / max(admitted, 1):.0f}")
print(f"{system} client_cpu_us_per_call={sum(map(float, client_cpu)) * 1e6 / max(len(rows), 1):.0f}")
# Calls still in flight when h2load stops are admitted but not logged (a negative figure).
print(f"{system} answered_not_admitted={max(0, len(ok) - admitted)}")
PY
}

rest() {
  measure levqor-rest --h1 -c "$CONCURRENCY" -m 1 -d "$tmp/submit.json" \
    -H 'content-type: application/json' "$base/v1/jobs"
}
rest_h2() {
  measure levqor-rest-h2-1conn -c 1 -m "$CONCURRENCY" -d "$tmp/submit.json" \
    -H 'content-type: application/json' "$base/v1/jobs"
}
grpc_one_channel() {
  measure levqor-grpc-1conn -c 1 -m "$CONCURRENCY" -d "$tmp/submit.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$GRPC_PORT/levqor.v1.JobsService/Submit"
}
grpc_pool() {
  measure levqor-grpc-${POOL}conn -c "$POOL" -m "$((CONCURRENCY / POOL))" -d "$tmp/submit.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$GRPC_PORT/levqor.v1.JobsService/Submit"
}
grpc_many_channels() {
  measure levqor-grpc-${CONCURRENCY}conn -c "$CONCURRENCY" -m 1 -d "$tmp/submit.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$GRPC_PORT/levqor.v1.JobsService/Submit"
}

# Warm both paths up (not measured).
DURATION=2 rest > /dev/null; DURATION=2 grpc_one_channel > /dev/null

read -r -a layouts <<< "$LAYOUTS"
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round"
  if [ $((round % 2)) -eq 1 ]; then
    for layout in "${layouts[@]}"; do "$layout"; done
  else
    for ((i = ${#layouts[@]} - 1; i >= 0; i--)); do "${layouts[i]}"; done
  fi
done

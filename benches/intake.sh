#!/usr/bin/env bash
# REST intake benchmark: `POST /v1/jobs` with wrk at CONNS concurrent connections against a
# release `levqor serve` on a fresh SQLite file (the default store) or DATABASE_URL.
#
#   benches/intake.sh                      # SQLite, 64 connections, 20 s, API-only node (workers 0)
#   WORKERS=64 benches/intake.sh           # the same node also running the jobs it admits
#   DATABASE_URL=postgres://… benches/intake.sh
#   LEVQOR_BIN=/path/to/levqor benches/intake.sh   # a given build, for side-by-side runs
#
# Prints "<system> <metric>=<number>" lines. Needs wrk (apt-get install wrk) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20s}
WORKERS=${WORKERS:-0}
PORT=${PORT:-18080}
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
DB=${DATABASE_URL:-sqlite:$tmp/bench.db}
case $DB in sqlite:*) system=levqor-rest-sqlite ;; *) system=levqor-rest-postgres ;; esac

if [ -z "${LEVQOR_BIN:-}" ]; then
  cargo build --release -q -p levqor-http --bin levqor
  LEVQOR_BIN=target/release/levqor
fi
LEVQOR_LOG=warn "$LEVQOR_BIN" serve --listen 127.0.0.1:$PORT --grpc-listen 127.0.0.1:0 --database-url "$DB" \
  --admin-key bench-admin --workers "$WORKERS" --signup-credits 1000000000 --default-tier enterprise > "$tmp/out" 2> "$tmp/err" &
echo $! > "$tmp/pid"
for _ in $(seq 1 100); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:$PORT
user=$(curl -sf -X POST $base/v1/users -H 'authorization: Bearer bench-admin' -H 'content-type: application/json' \
  -d "{\"email\":\"bench-$RANDOM@example.com\"}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$(curl -sf -X POST "$base/v1/users/$user/keys" -H 'authorization: Bearer bench-admin' | sed -E 's/.*"key":"([^"]+)".*/\1/')
export KEY SYSTEM=$system
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.body = '{"workflow":{"name":"bench","steps":[{"id":"a","type":"log","message":"hi {{input.n}}"}]},"input":{"n":1}}'
done = function(summary, latency, requests)
  local sys = os.getenv("SYSTEM")
  local secs = summary.duration / 1e6
  io.write(string.format("%s intake_req_per_s=%.0f\n", sys, summary.requests / secs))
  io.write(string.format("%s intake_p50_ms=%.2f\n", sys, latency:percentile(50) / 1000))
  io.write(string.format("%s intake_p99_ms=%.2f\n", sys, latency:percentile(99) / 1000))
  io.write(string.format("%s intake_errors=%d\n", sys, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/post.lua" $base/v1/jobs | grep -E "^$system |Requests/sec|Latency|99%"

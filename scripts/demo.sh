#!/usr/bin/env bash
# Runs sse-logs against a local MongoDB-compatible server (SecantusDB, installed and cached on
# first use) with a demo producer writing a deployment log, and prints where to look.
# Ctrl-C stops everything. Set SSE_LOGS__MONGODB__URI to use your own MongoDB replica set instead.
#
# `scripts/demo.sh --check` (run by scripts/test.sh) does the same on a free port with the debug
# build, checks that the demo log streams, and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/test-mongodb.sh

CHECK=""
[ "${1:-}" = "--check" ] && CHECK=1
if [ -n "$CHECK" ]; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    PROFILE=debug
else
    PORT="${PORT:-8080}"
    PROFILE=release
fi
cleanup() {
    if [ -n "${PRODUCER_PID:-}" ]; then
        kill "$PRODUCER_PID" 2>/dev/null || true
        # The producer's `push` would otherwise retry against the stopped service.
        pkill -f -- "push --type deploy --id [0-9]* --server http://127.0.0.1:$PORT\$" 2>/dev/null || true
    fi
    [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null || true
    stop_test_mongodb
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [ "$PROFILE" = release ]; then cargo build --release --locked; else cargo build --locked; fi
BIN="./target/$PROFILE/sse-logs"
if [ -z "${SSE_LOGS__MONGODB__URI:-}" ]; then
    start_test_mongodb
    export SSE_LOGS__MONGODB__URI="$SSE_LOGS_TEST_MONGODB_URI"
fi
export SSE_LOGS__HTTP__BIND="127.0.0.1:$PORT"
"$BIN" serve &
SERVICE_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null

# The demo producer: a fake deployment that logs a line every half second into `sse-logs push`.
produce() {
    local id=$1 step
    {
        echo "deploy #$id: rolling out web:1.$id to cluster demo"
        echo "  image pulled in 1.8s"
        for step in $(seq 1 60); do
            printf 'pod web-%s-%02d: step %d/60 ok\n' "$id" "$((step % 7))" "$step"
            sleep 0.5
        done
        echo "deploy #$id: rollout complete"
    } | "$BIN" push --type deploy --id "$id" --server "http://127.0.0.1:$PORT"
}
( id=1; while true; do produce "$id"; id=$((id + 1)); done ) &
PRODUCER_PID=$!

cat <<INFO

sse-logs is running on http://127.0.0.1:$PORT with a live demo log (a new deployment every ~30 s).

  index:         http://127.0.0.1:$PORT/  (every log, live)
  viewer:        http://127.0.0.1:$PORT/logs/deploy/1
  curl:          curl -N 'http://127.0.0.1:$PORT/api/v1/sse/logs/?type=deploy&id=1&num=0'
  snapshot:      curl 'http://127.0.0.1:$PORT/api/v1/logs/deploy/1'

Ctrl-C stops the service, the producer and the database.
INFO
if [ -n "$CHECK" ]; then
    # The first lines of the demo log must stream (curl stops at --max-time; that is expected).
    out="$(curl -sN --max-time 5 "http://127.0.0.1:$PORT/api/v1/sse/logs/?type=deploy&id=1&num=0" || true)"
    printf '%s\n' "$out" | grep -q '^data: deploy #1: rolling out' || { echo "demo check: no demo log streamed" >&2; exit 1; }
    printf '%s\n' "$out" | grep -q '^data: pod web-1-01: step 1/60 ok' || { echo "demo check: the demo log did not stream live" >&2; exit 1; }
    # The index lists the demo log.
    curl -sf "http://127.0.0.1:$PORT/api/v1/logs?type=deploy" | grep -q '"id":"1"' || { echo "demo check: the index does not list the demo log" >&2; exit 1; }
    echo "demo check: ok"
    exit 0
fi
wait "$SERVICE_PID"

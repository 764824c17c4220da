#!/usr/bin/env bash
# Runs sse-logs against a local MongoDB-compatible server (SecantusDB, installed and cached on
# first use) with a demo producer writing a deployment log, and prints where to look.
# Ctrl-C stops everything. Set SSE_LOGS__MONGODB__URI to use your own MongoDB replica set instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/test-mongodb.sh

PORT="${PORT:-8080}"
cleanup() {
    [ -n "${PRODUCER_PID:-}" ] && kill "$PRODUCER_PID" 2>/dev/null || true
    [ -n "${SERVICE_PID:-}" ] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null || true
    stop_test_mongodb
}
trap cleanup EXIT
trap 'exit 0' INT TERM

cargo build --release --locked
if [ -z "${SSE_LOGS__MONGODB__URI:-}" ]; then
    start_test_mongodb
    export SSE_LOGS__MONGODB__URI="$SSE_LOGS_TEST_MONGODB_URI"
fi
export SSE_LOGS__HTTP__BIND="127.0.0.1:$PORT"
./target/release/sse-logs serve &
SERVICE_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null

# The demo producer: a fake deployment that logs a line every half second, then ends.
produce() {
    local id=$1 url="http://127.0.0.1:$PORT/api/v1/logs/deploy/$1" step
    curl -fsS -X POST -H 'content-type: text/plain' --data-binary @- "$url" >/dev/null <<LOG
deploy #$id: rolling out web:1.$id to cluster demo
  image pulled in 1.8s
LOG
    for step in $(seq 1 60); do
        printf 'pod web-%s-%02d: step %d/60 ok\n' "$id" "$((step % 7))" "$step" |
            curl -fsS -X POST -H 'content-type: text/plain' --data-binary @- "$url" >/dev/null
        sleep 0.5
    done
    curl -fsS -X POST -H 'content-type: application/json' \
        -d "{\"lines\":[\"deploy #$id: rollout complete\"],\"done\":true}" "$url" >/dev/null
}
( id=1; while true; do produce "$id"; id=$((id + 1)); done ) &
PRODUCER_PID=$!

cat <<INFO

sse-logs is running on http://127.0.0.1:$PORT with a live demo log (a new deployment every ~30 s).

  viewer:        http://127.0.0.1:$PORT/logs/deploy/1
  curl:          curl -N 'http://127.0.0.1:$PORT/api/v1/sse/logs/?type=deploy&id=1&num=0'
  snapshot:      curl 'http://127.0.0.1:$PORT/api/v1/logs/deploy/1'

Ctrl-C stops the service, the producer and the database.
INFO
wait "$SERVICE_PID"

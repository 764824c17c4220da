#!/usr/bin/env bash
# The built-in viewer's tests (tests/browser) in real headless Chromium, with Node's test runner.
#
# Run by scripts/test.sh after the cargo tests, with SSE_LOGS_TEST_MONGODB_URI set; run alone, it
# starts its own test MongoDB the way scripts/test.sh does. Installs Debian's chromium when it is
# missing (browsers are never downloaded by npm: the tests use playwright-core with /usr/bin/chromium).
# Arguments go to `node --test` (e.g. a single file: scripts/browser-test.sh viewer.test.js).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '%s\n' "$*" >&2; }

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "chromium is missing: apt-get install chromium"
        exit 1
    fi
    log "installing chromium (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
for tool in node npm; do
    command -v "$tool" >/dev/null || { log "$tool is missing (Node.js 20 or later is needed)"; exit 1; }
done

if [ -z "${SSE_LOGS_TEST_MONGODB_URI:-}" ]; then
    . scripts/lib/test-mongodb.sh
    trap stop_test_mongodb EXIT
    start_test_mongodb
fi

cargo build --locked --bin sse-logs
target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
export SSE_LOGS_BIN="$target_dir/debug/sse-logs"

cd tests/browser
npm ci --no-audit --no-fund --loglevel=error >&2
if [ $# -eq 0 ]; then set -- ./*.test.js; fi
status=0
node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "$@" || status=$?
exit "$status"

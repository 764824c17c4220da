#!/usr/bin/env bash
# Runs every check of the project: formatting, lints and all tests against a real
# MongoDB wire-protocol server over TCP.
#
# Which MongoDB: SSE_LOGS_TEST_MONGODB_URI when set (any replica set); otherwise a mongo:7
# container where a Docker engine runs; otherwise SecantusDB, installed (cached) and started here.
# The fault tests that restart a server always start SecantusDB instances of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/test-mongodb.sh

# Real peers the tests use: nginx (a stock proxy_pass), docker-compose (to validate the file) and
# promtool (Debian's prometheus package, to check the alert rules).
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"
docker-compose -f docker-compose.yml config -q
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

trap stop_test_mongodb EXIT
SSE_LOGS_TEST_MONGODB_BIN="$(find_test_mongodb)"
export SSE_LOGS_TEST_MONGODB_BIN
if [ -z "${SSE_LOGS_TEST_MONGODB_URI:-}" ]; then
    if docker info >/dev/null 2>&1; then
        start_docker_mongodb
    else
        start_test_mongodb
    fi
fi
bash -n scripts/*.sh scripts/lib/*.sh

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# The bench tool (workspace member sse-logs-bench) too: built together with the root package its
# dependencies get the root's features, so this re-checks only the tool (a few seconds), where
# `cargo check -p sse-logs-bench` alone would re-check some 50 dependencies.
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
# The library alone, as an embedding app builds it (`default-features = false`: no command line).
cargo clippy --lib --no-default-features --locked -- -D warnings
# The first README command, end to end: service, its own test MongoDB and the demo producer.
scripts/demo.sh --check
cargo test --locked "$@"
# The live service fuzzed against its own OpenAPI document (schemathesis), in none and token modes.
scripts/fuzz-api.sh
# The viewer in real headless Chromium (installs Debian's chromium on first use).
scripts/browser-test.sh

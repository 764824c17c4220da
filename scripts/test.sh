#!/usr/bin/env bash
# Runs every check of the project: formatting, lints and all tests against a real
# MongoDB wire-protocol server over TCP.
#
# With SSE_LOGS_TEST_MONGODB_URI set (e.g. the docker-compose replica set), tests use that
# server; otherwise this script installs (cached) and starts SecantusDB and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/test-mongodb.sh

if [ -z "${SSE_LOGS_TEST_MONGODB_URI:-}" ]; then
    trap stop_test_mongodb EXIT
    start_test_mongodb
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked "$@"

#!/usr/bin/env bash
# The benchmark suite in one command (see BENCHMARKS.md): builds the release binary and the load
# tool (bench/, the workspace member sse-logs-bench), installs the peers once (cached), starts a
# fresh MongoDB server (SecantusDB, as the tests do) for the run, and prints the result table.
#
#   scripts/bench.sh              full run: each figure the median of 3 runs (about 13 minutes)
#   scripts/bench.sh --quick      one run of each, smaller (about 2.5 minutes on 2 cores)
#   options: --no-peers           sse-logs alone (skip the seed's Sanic view and Nchan)
#            --out FILE           also write the table there (default target/bench/results-MODE.md)
#            --only GROUPS        some of many,h2mem,fanout,burst,replay,redact,idle,push,growth,index,
#                                 storm,storm100,idle100k (reconnect storms and idle streams at scale)
#                                 (comma-separated; index: start-up time of the index of logs at
#                                 100k to 1M lines, about 1.5 minutes; --quick: 50k and 100k)
#            --fanout-viewers N,...  only these fan-out sizes (1, 100, 1000, 10000)
# The table ends with the targets checked on the run's own figures. Builds go to
# $CARGO_TARGET_DIR (default target/).
#
# Peers: the seed's design (bench/peers/seed_sanic.py: sanic + motor from PyPI in a virtualenv
# under ${SSE_LOGS_CACHE:-~/.cache/sse-logs}/bench-venv) and Nchan (Debian's nginx and
# libnginx-mod-nchan, installed with apt-get when running as root). A peer that cannot be
# installed or started is reported as such in the table's notes; the rest still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/test-mongodb.sh

quick=""
mode=full
peers=1
out=""
only=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=--quick; mode=quick ;;
        --no-peers) peers=0 ;;
        --out) out="$2"; shift ;;
        --out=*) out="${1#--out=}" ;;
        --only) only+=(--only "$2"); shift ;;
        --fanout-viewers) only+=(--fanout-viewers "$2"); shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) log "unknown option $1"; exit 2 ;;
    esac
    shift
done
mkdir -p target/bench
out="${out:-target/bench/results-$mode.md}"

# Ten thousand connections on each side of loopback.
hard="$(ulimit -Hn)"
[ "$hard" = unlimited ] && hard=200000
ulimit -n "$hard" 2>/dev/null || true

log "building sse-logs and the load tool (release)"
cargo build --release --locked --bin sse-logs >&2
cargo build --release --locked -p sse-logs-bench >&2
target_dir="${CARGO_TARGET_DIR:-target}"
tool="$target_dir/release/bench"
args=(--sse-logs-bin "$target_dir/release/sse-logs" --out "$out")

if [ "$peers" = 1 ]; then
    # The seed's Sanic view.
    venv="$SSE_LOGS_CACHE/bench-venv"
    seed_why=""
    if ! "$venv/bin/python" -c 'import sanic, motor' >/dev/null 2>&1; then
        log "installing sanic and motor into $venv (first run only)"
        if ! command -v python3 >/dev/null 2>&1; then
            seed_why="python3 is not installed"
        elif ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'sanic==25.12.1' 'motor==3.7.1'; } >&2; then
            seed_why="pip could not install sanic 25.12.1 and motor 3.7.1 into $venv"
        fi
    fi
    if [ -z "$seed_why" ]; then
        args+=(--seed-python "$venv/bin/python" --seed-script bench/peers/seed_sanic.py)
    else
        args+=(--seed-unavailable "$seed_why")
    fi

    # Nchan.
    module=/usr/lib/nginx/modules/ngx_nchan_module.so
    nchan_why=""
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || [ ! -f "$module" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "installing nginx and libnginx-mod-nchan (first run only)"
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx libnginx-mod-nchan; } \
                >/dev/null 2>&1 || nchan_why="apt-get install nginx libnginx-mod-nchan failed"
        else
            nchan_why="nginx with libnginx-mod-nchan is not installed and this is not a root Debian machine"
        fi
    fi
    nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
    if [ -z "$nchan_why" ] && { [ ! -x "$nginx_bin" ] || [ ! -f "$module" ]; }; then
        nchan_why="nginx or $module missing after installation"
    fi
    if [ -z "$nchan_why" ]; then
        args+=(--nginx "$nginx_bin" --nchan-module "$module" --nchan-conf bench/peers/nchan.conf)
    else
        args+=(--nchan-unavailable "$nchan_why")
    fi
else
    args+=(--seed-unavailable "skipped (--no-peers)" --nchan-unavailable "skipped (--no-peers)")
fi

# A server of its own: the suite counts every command MongoDB runs.
unset SSE_LOGS_TEST_MONGODB_URI
work="$(mktemp -d -t sse-logs-bench.XXXXXX)"
cleanup() {
    local status=$?
    stop_test_mongodb
    if [ "$status" = 0 ]; then rm -rf "$work"; else log "logs kept in $work"; fi
}
trap cleanup EXIT
start_test_mongodb

log "running the $mode suite; logs in $work"
# In the background so that an interrupt reaches the tool, which stops what it started.
"$tool" $quick --mongodb-uri "$SSE_LOGS_TEST_MONGODB_URI" --mongodb-pid "$TEST_MONGODB_PID" \
    --mongodb-about "$(describe_test_mongodb "$SSE_LOGS_TEST_MONGODB_BIN"), --cache-size 256M" \
    --work-dir "$work" "${args[@]}" "${only[@]}" &
tool_pid=$!
trap 'kill -TERM "$tool_pid" 2>/dev/null; wait "$tool_pid"; exit 130' INT TERM
wait "$tool_pid"

# Sourced by scripts/test.sh and scripts/demo.sh: installs (once, cached) and starts SecantusDB,
# the MongoDB-compatible test server of DESIGN.md, as a separate process.
#
#   start_test_mongodb        sets SSE_LOGS_TEST_MONGODB_URI and TEST_MONGODB_PID
#   stop_test_mongodb         stops what start_test_mongodb started
#
# The server binary is cached under ${SSE_LOGS_CACHE:-~/.cache/sse-logs}; the first install
# builds the pinned version from crates.io (about 4.5 minutes on 2 cores). If that fails it is an
# error, unless SSE_LOGS_TEST_MONGODB_FALLBACK=pypi asks for the PyPI build (about 5x slower).

SECANTUS_VERSION="0.5.3-beta.196"
SECANTUS_PY_VERSION="0.7.0b3"
SSE_LOGS_CACHE="${SSE_LOGS_CACHE:-$HOME/.cache/sse-logs}"

log() { printf '%s\n' "$*" >&2; }

# Prints the path of a working server command, installing it if needed.
find_test_mongodb() {
    local bin="$SSE_LOGS_CACHE/secantus-$SECANTUS_VERSION/bin/secantusd-rs"
    if [ -x "$bin" ]; then echo "$bin"; return 0; fi
    log "installing secantus-mdb $SECANTUS_VERSION (first run only; cached in $SSE_LOGS_CACHE)"
    if ! command -v cmake >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
        else
            log "cmake is missing; install it (apt-get install cmake) to build secantus-mdb"
        fi
    fi
    if cargo install secantus-mdb --version "=$SECANTUS_VERSION" --locked --ignore-rust-version \
        --root "$SSE_LOGS_CACHE/secantus-$SECANTUS_VERSION" >&2; then
        echo "$bin"; return 0
    fi
    if [ "${SSE_LOGS_TEST_MONGODB_FALLBACK:-}" != pypi ]; then
        log "building secantus-mdb $SECANTUS_VERSION failed; set SSE_LOGS_TEST_MONGODB_FALLBACK=pypi to use the PyPI build instead"
        return 1
    fi
    log "building secantus-mdb failed; using the PyPI build (SSE_LOGS_TEST_MONGODB_FALLBACK=pypi)"
    local venv="$SSE_LOGS_CACHE/secantus-py-$SECANTUS_PY_VERSION"
    if [ ! -x "$venv/bin/secantusd-py" ]; then
        python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q "SecantusDB==$SECANTUS_PY_VERSION" >&2 || return 1
    fi
    echo "$venv/bin/secantusd-py"
}

# Which server and version a binary is, for the test log.
describe_test_mongodb() {
    case "$1" in
        *secantusd-py) echo "SecantusDB $SECANTUS_PY_VERSION (PyPI build, $1)" ;;
        *) echo "SecantusDB $SECANTUS_VERSION (crates.io secantus-mdb, $1)" ;;
    esac
}

start_test_mongodb() {
    local bin
    bin="$(find_test_mongodb)" || { log "no MongoDB-compatible test server could be installed"; return 1; }
    TEST_MONGODB_DIR="$(mktemp -d -t sse-logs-mongodb.XXXXXX)"
    local extra=(--log-file-max 16MB --log-level WARNING)
    # The PyPI build has no --log-file-max and prints its port only at INFO.
    case "$bin" in *secantusd-py) extra=(--log-level INFO) ;; esac
    "$bin" --host 127.0.0.1 --port 0 --storage-path "$TEST_MONGODB_DIR/data" --cache-size 256M \
        "${extra[@]}" >"$TEST_MONGODB_DIR/server.log" 2>&1 &
    TEST_MONGODB_PID=$!
    local port="" i
    for i in $(seq 1 200); do
        port="$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$TEST_MONGODB_DIR/server.log" | head -n1)"
        [ -n "$port" ] && break
        kill -0 "$TEST_MONGODB_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        log "the test MongoDB server did not start:"; cat "$TEST_MONGODB_DIR/server.log" >&2
        return 1
    fi
    export SSE_LOGS_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
    # Tests that restart the server (MongoDB outage cases) start their own from this command.
    export SSE_LOGS_TEST_MONGODB_BIN="$bin"
    log "test MongoDB: $(describe_test_mongodb "$bin"), listening at $SSE_LOGS_TEST_MONGODB_URI"
}

# With a Docker engine: a real mongo:7 single-node replica set in a container.
# (No engine runs on the project's build machines; there this path is skipped.)
start_docker_mongodb() {
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    TEST_MONGODB_CONTAINER="$(docker run -d --rm -p "127.0.0.1:$port:27017" mongo:7 --replSet rs0 --bind_ip_all)" || return 1
    local i
    for i in $(seq 1 120); do
        docker exec "$TEST_MONGODB_CONTAINER" mongosh --quiet --eval \
            "try { rs.status().ok } catch (e) { rs.initiate({_id: 'rs0', members: [{_id: 0, host: '127.0.0.1:27017'}]}).ok }" \
            2>/dev/null | grep -q 1 && break
        sleep 0.5
    done
    export SSE_LOGS_TEST_MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
    log "test MongoDB (mongo:7 in container ${TEST_MONGODB_CONTAINER:0:12}) at $SSE_LOGS_TEST_MONGODB_URI"
}

stop_test_mongodb() {
    if [ -n "${TEST_MONGODB_CONTAINER:-}" ]; then
        docker rm -f "$TEST_MONGODB_CONTAINER" >/dev/null 2>&1 || true
        TEST_MONGODB_CONTAINER=""
    fi
    if [ -n "${TEST_MONGODB_PID:-}" ]; then
        kill "$TEST_MONGODB_PID" 2>/dev/null || true
        wait "$TEST_MONGODB_PID" 2>/dev/null || true
        rm -rf "$TEST_MONGODB_DIR"
        TEST_MONGODB_PID=""
    fi
}

#!/usr/bin/env python3
# The index's figures (issue 16): list latency with 10,000 logs and 1,000,000 lines, the delay
# from a log's first line to its event on an open index stream, and the MongoDB commands per
# second with 100 idle index streams against none.
#
#   python3 bench/index-figures.py SSE_LOGS_BIN MONGODB_URI     (needs pymongo; an empty server)
#
# It fills database `idxbench` straight through MongoDB (as other processes would), starts the
# service on a free port, and prints the figures.
import http.client, json, os, socket, statistics, subprocess, sys, threading, time
import urllib.request
from bson import ObjectId
from pymongo import MongoClient

BIN, URI = sys.argv[1], sys.argv[2]
LOGS, LINES = 10_000, 1_000_000
db = MongoClient(URI)["idxbench"]
logs = db["sse_logs"]
logs.drop()
t = time.time()
batch = []
for n in range(LINES):
    batch.append({"_id": ObjectId(), "type": ("build", "deploy", "ci")[n % 3 if False else (n // 100) % 3],
                  "id": (n // 100) % LOGS, "log": f"line {n} " + "x" * 40})
    if len(batch) == 10_000:
        logs.insert_many(batch, ordered=False); batch = []
print(f"filled {LINES:,} lines in {LOGS:,} logs in {time.time() - t:.1f} s", flush=True)

s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, SSE_LOGS__HTTP__BIND=f"127.0.0.1:{port}", SSE_LOGS__MONGODB__URI=URI,
           SSE_LOGS__MONGODB__DATABASE="idxbench", RUST_LOG="warn", SSE_LOGS__LIMITS__MAX_STREAMS="1000")
service = subprocess.Popen([BIN, "serve"], env=env)
base = f"http://127.0.0.1:{port}"
t = time.time()
while True:
    try:
        with urllib.request.urlopen(base + "/api/v1/logs?limit=1") as r:
            if r.status == 200: break
    except Exception:
        time.sleep(0.1)
print(f"service answering the list {time.time() - t:.1f} s after start (the start-up read)", flush=True)

samples = []
for _ in range(200):
    t = time.perf_counter()
    with urllib.request.urlopen(base + "/api/v1/logs?limit=50") as r:
        body = json.load(r)
    samples.append((time.perf_counter() - t) * 1000)
assert len(body["logs"]) == 50
samples.sort()
print(f"list of 50 (10,000 logs, 1,000,000 lines): p50 {statistics.median(samples):.2f} ms, p99 {samples[197]:.2f} ms")

def commands():
    return db.command("serverStatus")["opcounters"]["command"]

def rate(seconds=10):
    a = commands(); time.sleep(seconds); return (commands() - a - 1) / seconds

idle = rate()
streams = []
for _ in range(100):
    c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/api/v1/logs/events?limit=1")
    r = c.getresponse(); assert r.status == 200; streams.append((c, r))
with_pages = rate()
print(f"MongoDB commands/s: {idle:.1f} with no index page, {with_pages:.1f} with 100 idle index streams")

# A log's start reaching an open index stream.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/api/v1/logs/events?type=probe&limit=1")
r = c.getresponse()
delays = []
try:
    for k in range(50):
        name = f"probe-{k}"
        t = time.perf_counter()
        logs.insert_one({"type": "probe", "id": name, "log": "first line"})
        while True:
            line = r.readline().decode()
            if line.startswith("data: ") and f'"id":"{name}"' in line:
                break
        delays.append((time.perf_counter() - t) * 1000)
    delays.sort()
    print(f"a log's start to its event on an open index stream: p50 {statistics.median(delays):.1f} ms, p99 {delays[-1]:.1f} ms (50 logs)")
except socket.timeout:
    print(f"a log's start to its event: not measured (no event within 10 s after {len(delays)} logs)")
service.terminate(); service.wait()
logs.drop()

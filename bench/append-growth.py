#!/usr/bin/env python3
# Append cost as a log grows: 100 appends of 1,000 lines to one log, on a type that already holds
# 100,000 other lines; prints the mean time of the first and the last ten requests.
#   python3 bench/append-growth.py http://127.0.0.1:8080   (a service on an empty test database)
import json, sys, time, urllib.request
base = sys.argv[1]
def post(log, body):
    req = urllib.request.Request(f"{base}/api/v1/logs/{log}", data=body.encode(), headers={"content-type": "text/plain"}, method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        nxt = json.load(r)["next"]
    return time.perf_counter() - t, nxt
batch = "".join(f"line {i} " + "x" * 60 + "\n" for i in range(1000))
for _ in range(100):
    post("growth/other", batch)
times = []
for _ in range(100):
    dt, nxt = post("growth/1", batch)
    times.append(dt)
first, last = sum(times[:10]) / 10, sum(times[-10:]) / 10
print(f"100 x 1000-line appends (log reaches {nxt} lines, type holds 100,000 more): first 10 {first*1000:.1f} ms, last 10 {last*1000:.1f} ms, ratio {last/first:.2f}")

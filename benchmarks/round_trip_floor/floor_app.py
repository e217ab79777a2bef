"""Petiole's side of the floor benchmark: one ``echo`` task on Redis (broker and
results), and its producer: ``python floor_app.py N`` times ``N`` round trips
(``echo.delay(i).get()``) after a warm-up and prints them, with its CPU, as JSON."""

from __future__ import annotations

import json
import os
import sys
import time

from petiole import Petiole

URL = os.environ["BENCH_REDIS_URL"]
WARMUP = 200

app = Petiole("floor", broker=URL, backend=URL, config_file=os.devnull)


@app.task(name="floor.echo")
def echo(x: int) -> int:
    return x


def produce(n: int) -> None:
    latencies = []
    cpu = 0.0
    for i in range(-WARMUP, n):
        if i == 0:
            cpu = time.process_time()
        started = time.perf_counter()
        got = echo.delay(i).get(timeout=60)
        if got != i:
            raise SystemExit(f"wrong result: expected {i!r}, got {got!r}")
        if i >= 0:
            latencies.append(time.perf_counter() - started)
    print(json.dumps({"latencies_s": latencies, "cpu_s": time.process_time() - cpu}))


if __name__ == "__main__":
    produce(int(sys.argv[1]))

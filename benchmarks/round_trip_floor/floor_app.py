"""Petiole's side of the floor benchmark: one ``echo`` task on Redis (broker and
results), and its producer: ``python floor_app.py N`` times ``N`` round trips
(``echo.delay(i).get()``) after a warm-up, as ``raw.py``'s producer does."""

from __future__ import annotations

import os
import sys

from raw import time_round_trips

from petiole import Petiole

URL = os.environ["BENCH_REDIS_URL"]

app = Petiole("floor", broker=URL, backend=URL, config_file=os.devnull)


@app.task(name="floor.echo")
def echo(x: int) -> int:
    return x


if __name__ == "__main__":
    time_round_trips(lambda i: echo.delay(i).get(timeout=60), int(sys.argv[1]))

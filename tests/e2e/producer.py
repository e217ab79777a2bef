"""Producer process for the end-to-end tests.

Usage: python producer.py COUNT DELAY_S TIMEOUT_S. Sends COUNT tasks with
distinct arguments, waits for every result, and prints one JSON line:
{"sent": N, "correct": N, "wrong": [...], "missing": [...], "seconds": S}.
"""

from __future__ import annotations

import json
import sys
import time

from e2e_app import app, slow_square, square


def main() -> None:
    count, delay_s, timeout_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    started = time.monotonic()
    if delay_s > 0:
        results = [slow_square.delay(i, delay_s) for i in range(count)]
    else:
        results = [square.delay(i) for i in range(count)]
    print(json.dumps({"event": "sent", "count": count}), flush=True)
    found = app.backend.wait([r.id for r in results], timeout_s=timeout_s)
    wrong, missing = [], []
    by_worker: dict[str, int] = {}
    for i, result in enumerate(results):
        record = found.get(result.id)
        if record is None:
            missing.append(i)
        elif result.get() != i * i:
            wrong.append(i)
        if record is not None:
            worker = str(record.meta.get("worker"))
            by_worker[worker] = by_worker.get(worker, 0) + 1
    print(
        json.dumps(
            {
                "event": "done",
                "sent": count,
                "correct": count - len(wrong) - len(missing),
                "wrong": wrong[:20],
                "missing": missing[:20],
                "by_worker": by_worker,
                "seconds": time.monotonic() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

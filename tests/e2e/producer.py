"""Producer process for the end-to-end tests.

Usage: python producer.py COUNT DELAY_S TIMEOUT_S [options]. Sends COUNT tasks
with distinct arguments, prints {"event": "sent", ...} once all are sent, waits
for every result, and prints one JSON line:
{"sent": N, "correct": N, "wrong": [...], "missing": [...], "by_worker": {...}, "seconds": S}.

Options:
  --log PATH           send ``e2e.logged_square`` (each execution appends a line to PATH)
  --send-over-s S      spread the sends evenly over S seconds instead of sending at once
  --countdowns LO HI   send ``e2e.started_at`` with countdowns spread evenly over
                       [LO, HI] seconds, in an order shuffled by --seed; the summary
                       adds "timings": one entry per task, see ``countdown_timings``
  --seed N             the shuffle's seed (default 0)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from e2e_app import app, logged_square, slow_square, square

from petiole.result import AsyncResult


def main() -> None:
    args = parse_args()
    # Connect before the first send: a countdown is counted from the send's start,
    # so loading plugins and connecting inside it would make the first task late.
    app.transport  # noqa: B018
    app.backend  # noqa: B018
    started = time.monotonic()
    results: list[AsyncResult] = []
    expected: list[Any] = []
    sent_at: list[tuple[float, float, float]] = []  # (countdown, before, after) per task
    countdowns = spread_countdowns(args)
    for i in range(args.count):
        if args.send_over_s > 0:
            pause_s = started + i * args.send_over_s / args.count - time.monotonic()
            if pause_s > 0:
                time.sleep(pause_s)  # the sending schedule itself, not a synchronization
        if countdowns:
            before = time.time()
            results.append(app.tasks["e2e.started_at"].apply_async(countdown=countdowns[i]))
            sent_at.append((countdowns[i], before, time.time()))
            expected.append(None)
        elif args.log:
            results.append(logged_square.delay(i, args.log, args.delay_s))
            expected.append(i * i)
        elif args.delay_s > 0:
            results.append(slow_square.delay(i, args.delay_s))
            expected.append(i * i)
        else:
            results.append(square.delay(i))
            expected.append(i * i)
    print(json.dumps({"event": "sent", "count": args.count}), flush=True)
    found = app.backend.wait([r.id for r in results], timeout_s=args.timeout_s)
    wrong, missing = [], []
    by_worker: dict[str, int] = {}
    values: list[Any] = []
    for i, result in enumerate(results):
        record = found.get(result.id)
        value = None
        if record is None:
            missing.append(i)
        else:
            value = result.get()
            if expected[i] is not None and value != expected[i]:
                wrong.append(i)
            worker = str(record.meta.get("worker"))
            by_worker[worker] = by_worker.get(worker, 0) + 1
        values.append(value)
    summary: dict[str, Any] = {
        "event": "done",
        "sent": args.count,
        "correct": args.count - len(wrong) - len(missing),
        "wrong": wrong[:20],
        "missing": missing[:20],
        "by_worker": by_worker,
        "seconds": time.monotonic() - started,
    }
    if countdowns:
        summary["timings"] = countdown_timings(results, found, sent_at, values)
    print(json.dumps(summary), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int)
    parser.add_argument("delay_s", type=float)
    parser.add_argument("timeout_s", type=float)
    parser.add_argument("--log", default="")
    parser.add_argument("--send-over-s", type=float, default=0.0)
    parser.add_argument("--countdowns", type=float, nargs=2, metavar=("LO", "HI"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def spread_countdowns(args: argparse.Namespace) -> list[float]:
    if not args.countdowns:
        return []
    low, high = args.countdowns
    step = (high - low) / max(args.count - 1, 1)
    countdowns = [low + i * step for i in range(args.count)]
    random.Random(args.seed).shuffle(countdowns)
    return countdowns


def countdown_timings(
    results: list[AsyncResult],
    found: dict[str, Any],
    sent_at: list[tuple[float, float, float]],
    values: list[Any],
) -> list[dict[str, Any]]:
    """Per task: its countdown, the clock just before and after sending it, the
    ETA its message carried, when its body started, and which worker ran it."""
    timings = []
    for result, (countdown, before, after), value in zip(results, sent_at, values, strict=True):
        record = found.get(result.id)
        timings.append(
            {
                "id": result.id,
                "countdown": countdown,
                "sent_before": before,
                "sent_after": after,
                "eta": value["eta"] if value else None,
                "started_at": value["started_at"] if value else None,
                "worker": None if record is None else record.meta.get("worker"),
            }
        )
    return timings


if __name__ == "__main__":
    main()

"""Best-of-N timing within a time budget: the least disturbed round is the
closest to what the code costs on free cores (the machine is shared)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

ROUNDS = 5
# A call slower than a round's share of the budget still gets this many rounds.
MIN_ROUNDS = 3


def best_us(call: Callable[[], object], budget_s: float) -> float:
    """Microseconds per ``call()``: the best of up to :data:`ROUNDS` rounds that
    together take about ``budget_s`` (at least :data:`MIN_ROUNDS` calls, however
    slow one is). The garbage collector is off while timing, as in :mod:`timeit`."""
    call()  # warm: first-call allocations, lazy imports
    start = time.perf_counter()
    call()
    one_s = max(time.perf_counter() - start, 1e-9)
    per_round = max(1, int(budget_s / ROUNDS / one_s))
    rounds = ROUNDS if per_round > 1 else max(MIN_ROUNDS, min(ROUNDS, int(budget_s / one_s)))
    best = float("inf")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            best = min(best, (time.perf_counter() - start) / per_round)
    finally:
        if was_enabled:
            gc.enable()
    return best * 1e6

"""Token buckets for per-task rate limits (``@app.task(rate_limit="100/m")``)."""

from __future__ import annotations

import time


def refill(
    tokens: float, elapsed_s: float, rate_per_s: float, *, capacity: float
) -> tuple[float, float]:
    """A bucket's tokens after ``elapsed_s`` more seconds, and one taken if there:
    ``(tokens left, 0.0)`` when one was, ``(tokens, seconds until one is)`` when not."""
    tokens = min(capacity, tokens + elapsed_s * rate_per_s)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate_per_s


class TokenBucket:
    """Allows ``rate_per_s`` starts a second on average, with bursts up to ``capacity``.

    A capacity of 1 (the default) spaces starts evenly: ``"60/m"`` is one a second.
    The bucket of one process; a supervisor's worker processes share theirs
    (:mod:`petiole.worker.shared_rates`).
    """

    def __init__(self, rate_per_s: float, capacity: float = 1.0) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._tokens = capacity
        self._updated = time.monotonic()

    def take(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        now = time.monotonic()
        self._tokens, wait_s = refill(
            self._tokens, now - self._updated, self.rate_per_s, capacity=self.capacity
        )
        self._updated = now
        return wait_s

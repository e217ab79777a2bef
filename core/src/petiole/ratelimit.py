"""Token buckets for per-task rate limits (``@app.task(rate_limit="100/m")``)."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows ``rate_per_s`` starts a second on average, with bursts up to ``capacity``.

    A capacity of 1 (the default) spaces starts evenly: ``"60/m"`` is one a second.
    """

    def __init__(self, rate_per_s: float, capacity: float = 1.0) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._tokens = capacity
        self._updated = time.monotonic()

    def take(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s

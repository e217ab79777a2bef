"""Autoscaling: how many executors a worker's pool should have right now.

``--autoscale MAX,MIN`` lets the pool grow and shrink between the bounds. The
*demand* is the work the worker holds: jobs running plus jobs prefetched and
waiting for a free executor (the broker's queue depth is not asked: no
transport says it can tell cheaply, and SQS charges for each question; the
prefetch window, which follows the pool's size, brings waiting work into view
instead). The pool

* **grows** at once to the demand (at most MAX), and
* **shrinks** to the highest demand of the last ``idle_s`` seconds (at least
  MIN): an executor idle that long is retired. 30 s by default, as Celery's.

:class:`ScalePolicy` decides; the worker's autoscaler thread samples the
demand every :data:`TICK_S` and resizes the pool (:class:`petiole.pools.Resizable`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from petiole.errors import ConfigError

DEFAULT_IDLE_S = 30.0
# How often the demand is sampled (and so how soon a burst of work is answered).
TICK_S = 1.0


@dataclass(frozen=True)
class Bounds:
    """The sizes autoscaling keeps a pool between."""

    maximum: int
    minimum: int

    def __post_init__(self) -> None:
        if self.minimum < 1 or self.maximum < self.minimum:
            raise ConfigError(
                f"autoscale bounds {self.maximum},{self.minimum} are not MAX,MIN "
                "with MAX >= MIN >= 1"
            )

    @classmethod
    def parse(cls, text: str) -> Bounds:
        """``"MAX,MIN"`` or ``"MAX"`` (MIN 1), in either order, as Celery reads it.
        A MIN of 0 is taken as 1: a pool keeps one executor to notice work with."""
        parts = [part.strip() for part in text.split(",")]
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or any(n < 0 for n in numbers):
            raise ConfigError(
                f"--autoscale {text!r}: expected MAX,MIN (two whole numbers, such as 10,2) "
                "or MAX alone"
            )
        low = min(numbers) if len(numbers) == 2 else 1
        return cls(maximum=max(max(numbers), 1), minimum=max(low, 1))


class ScalePolicy:
    """Decides the pool's size from samples of the demand (not thread-safe: one
    autoscaler thread calls it)."""

    def __init__(self, bounds: Bounds, *, idle_s: float, now: float) -> None:
        """``idle_s`` (above 0): how long an executor stays idle before it is retired;
        ``now``: the monotonic time sampling starts."""
        self.bounds = bounds
        self.idle_s = idle_s
        self._since = now  # samples cover the time since then
        self._recent: collections.deque[tuple[float, int]] = collections.deque()

    def size_for(self, demand: int, current: int, now: float) -> int:
        """The size the pool should have now, given its ``current`` size and the
        ``demand`` (jobs running + jobs waiting for an executor)."""
        wanted = min(max(demand, self.bounds.minimum), self.bounds.maximum)
        recent = self._recent
        recent.append((now, wanted))
        while recent and recent[0][0] <= now - self.idle_s:
            recent.popleft()
        if wanted > current:
            return wanted
        if now - self._since < self.idle_s:
            return current  # not watched long enough to call anyone idle
        peak = max(size for _, size in recent)
        return peak if peak < current else current

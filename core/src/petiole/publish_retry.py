"""Retrying a publish the broker did not take: ``apply_async(retry=..., retry_policy=...)``.

A transport already rides out a short outage itself (each plugin retries with
backoff for its own reconnect window, e.g. ``reconnect_timeout_s``) and raises
:class:`~petiole.errors.TransportError` only when that ran out or the broker
refused the call. The policy here is the caller's: how many more attempts the
producer makes after such an error, and how long it waits between them
(Celery's ``retry_policy`` keys, with its defaults). A message the broker can
never take (:class:`~petiole.errors.MessageTooLarge`) is not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from petiole.errors import ConfigError, MessageTooLarge, TransportError

logger = logging.getLogger("petiole.producer")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_retries`` more attempts; the first after ``interval_start``
    seconds, each later one ``interval_step`` longer, never more than
    ``interval_max``."""

    max_retries: int = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"retry_policy max_retries must be >= 0, got {self.max_retries}")
        for name in ("interval_start", "interval_step", "interval_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"retry_policy {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RetryPolicy:
        """A policy from Celery-style keys; an unknown key is an error naming the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"unknown retry_policy key(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(known))}"
            )
        try:
            return cls(**{k: type(getattr(cls, k))(v) for k, v in values.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"retry_policy {dict(values)!r}: {exc}") from None

    def intervals(self) -> Iterator[float]:
        """The wait before each retry, in order."""
        for attempt in range(self.max_retries):
            yield min(self.interval_max, self.interval_start + attempt * self.interval_step)


NO_RETRY = RetryPolicy(max_retries=0)


def retry_failed(
    attempt: Callable[[], T], policy: RetryPolicy, what: str, error: TransportError
) -> T:
    """``attempt()`` again after each wait of ``policy``, its first try having failed
    with ``error``; the last error propagates, saying how often it was tried. The
    first try is the caller's own call: a send that goes through makes no closure
    and no description of itself."""
    if isinstance(error, MessageTooLarge):
        raise error
    tries = 1
    for wait in policy.intervals():
        logger.warning("%s failed (%s); retrying in %.2f s", what, error, wait)
        time.sleep(wait)
        tries += 1
        try:
            return attempt()
        except MessageTooLarge:
            raise
        except TransportError as exc:
            error = exc
    if tries == 1:
        raise error
    raise type(error)(f"{what}: gave up after {tries} attempts (retry_policy): {error}") from error

"""The backend's connection to the cluster, and its retry and error policy.

Every request goes through :meth:`Session.call`, which

* translates cassandra-driver's exceptions into
  :class:`~petiole.errors.ResultBackendError` (or :class:`ResultTooLarge`),
  naming the URL with its password masked;
* rides out an outage (a node restarting, too few replicas up, a timeout):
  the driver reconnects in the background by itself, and the call is retried
  with jittered backoff for up to ``reconnect_timeout_s`` from the start of the
  outage. The outage is logged as **one** warning line however many threads and
  calls run into it, and the recovery as one INFO line. A node that is shutting
  down answers some requests and refuses others for a moment; failures within
  ``FLAP_WINDOW_S`` of a recovery continue the same outage rather than start a
  new one, so a flapping node is still one line. Every request is safe
  to retry: plain writes are idempotent, and each lightweight transaction's
  caller checks whether an earlier attempt was applied (see results.py).

A cluster that cannot be reached when the backend is created is most likely a
configuration problem: :meth:`Session.connect` tries for ``startup_timeout_s``
and fails with an error naming the hosts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from petiole import errors
from petiole.errors import ResultBackendError
from petiole_cassandra._driver import Driver, describe, is_driver_error, is_outage, is_too_large
from petiole_cassandra._options import CassandraTarget

logger = logging.getLogger("petiole_cassandra")

T = TypeVar("T")

_BACKOFF_FIRST_S = 0.05
_BACKOFF_CAP_S = 2.0
FLAP_WINDOW_S = 5.0


class ResultTooLarge(errors.ResultTooLarge):
    """A result bigger than the cluster accepts in one write. Storing it again will
    not help: the worker records the task as failed with this error."""

    def __init__(self, message: str) -> None:
        # The server reports sizes in its own words; keep its message whole.
        ResultBackendError.__init__(self, message)


class Closed(Exception):
    """The backend was closed while a call waited (internal; waiters return quietly)."""


class Session:
    """One driver (cluster + session) and the retry policy of one backend."""

    def __init__(self, target: CassandraTarget, *, component: str) -> None:
        self.target = target
        self.component = component
        self.reconnect_timeout_s = target.options.reconnect_timeout_s
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._outage_since: float | None = None  # monotonic
        # The last outage's start and end, so a failure soon after continues it.
        self._last_outage: tuple[float, float] | None = None
        try:
            self.driver = Driver(target)
        except (ValueError, TypeError, OSError) as exc:
            raise ResultBackendError(
                f"{component} URL {target.masked_url!r} is invalid: {exc}"
            ) from exc

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def describe(self) -> str:
        return f"{self.component} {self.target.masked_url}"

    def connect(self) -> None:
        """Open the session, trying for up to ``startup_timeout_s``; then fail with an
        error naming every host (password masked). Bad credentials fail at once."""
        deadline = time.monotonic() + self.target.options.startup_timeout_s
        attempt = 0
        while True:
            try:
                self.driver.connect()
                return
            except Exception as exc:
                if not is_driver_error(exc):
                    raise
                delay = backoff_s(attempt)
                attempt += 1
                if _retry_at_startup(exc) and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    continue
                self.driver.close()
                raise ResultBackendError(
                    f"cannot connect to the {self.describe()} (hosts: {self.target.hosts_text}): "
                    f"{_mask(describe(exc), self.target.password)}"
                ) from exc

    def call(self, what: str, work: Callable[[Driver], T], *, too_large: str = "") -> T:
        """Run ``work(driver)``, retrying through an outage.

        ``what`` names the operation in errors; ``too_large`` is the message of the
        :class:`ResultTooLarge` raised if the server refuses the write for its size.
        Raises :class:`ResultBackendError` when the outage has lasted
        ``reconnect_timeout_s``, or at once for any other error;
        :class:`Closed` when the backend was closed meanwhile.
        """
        attempt = 0
        while True:
            if self._closed.is_set():
                raise Closed
            try:
                result = work(self.driver)
            except Exception as exc:
                if self._closed.is_set():
                    raise Closed from exc
                if not is_driver_error(exc) and not isinstance(exc, ConnectionError):
                    raise
                reason = _mask(describe(exc), self.target.password)
                if too_large and is_too_large(exc):
                    raise ResultTooLarge(f"{too_large} ({reason})") from exc
                if not is_outage(exc):
                    raise ResultBackendError(f"{self.describe()}: {what}: {reason}") from exc
                down_for = self.note_outage(reason)
                if down_for >= self.reconnect_timeout_s:
                    raise ResultBackendError(
                        f"{self.describe()}: {what}: unreachable for {down_for:.0f} s "
                        f"(reconnect_timeout_s={self.reconnect_timeout_s:g}; hosts: "
                        f"{self.target.hosts_text}): {reason}"
                    ) from exc
                delay = backoff_s(attempt)
                attempt += 1
                self._closed.wait(delay)
                continue
            if self._outage_since is not None:
                self.note_recovery()
            return result

    def note_outage(self, reason: str) -> float:
        """Record a failed attempt; log the outage's one warning line. Returns its length."""
        now = time.monotonic()
        with self._lock:
            if self._outage_since is None and self._last_outage is not None:
                started, ended = self._last_outage
                if now - ended < FLAP_WINDOW_S:
                    self._outage_since = started
                    logger.debug("%s: the cluster flapped (%s)", self.describe(), reason)
            if self._outage_since is None:
                self._outage_since = now
                logger.warning(
                    "%s: cluster unreachable (%s); retrying with backoff for up to %g s",
                    self.describe(),
                    reason,
                    self.reconnect_timeout_s,
                )
            return now - self._outage_since

    def note_recovery(self) -> None:
        with self._lock:
            if self._outage_since is None:
                return
            now = time.monotonic()
            down_for = now - self._outage_since
            self._last_outage = (self._outage_since, now)
            self._outage_since = None
        logger.info("%s: reconnected after %.1f s", self.describe(), down_for)

    def wait_closed(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once if the backend is closed meanwhile."""
        return self._closed.wait(seconds)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.driver.close()


def _retry_at_startup(exc: BaseException) -> bool:
    """At start-up only connection failures are retried; a wrong password is not."""
    text = str(exc)
    return is_outage(exc) and "AuthenticationFailed" not in text and "Bad credentials" not in text


def _mask(text: str, password: str | None) -> str:
    """Driver messages never carry the password, but keep it out if one ever does."""
    return text.replace(password, "***") if password else text


def backoff_s(attempt: int) -> float:
    """Jittered exponential backoff: about 50 ms, 100 ms, ... up to 2 s."""
    return float(min(_BACKOFF_CAP_S, _BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.5, 1.0))

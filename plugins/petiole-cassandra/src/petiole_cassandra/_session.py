"""The backend's connection to the cluster, and its retry and error policy.

Every request goes through :meth:`Session.call`, which

* translates cassandra-driver's exceptions into
  :class:`~petiole.errors.ResultBackendError` (or :class:`~petiole.errors.ResultTooLarge`),
  naming the URL with its password masked;
* rides out an outage (a node restarting, too few replicas up, a timeout):
  the driver reconnects in the background by itself, and the call is retried
  with jittered backoff for up to ``reconnect_timeout_s`` from the start of the
  outage. The outage is logged as **one** warning line however many threads and
  calls run into it, and the recovery as one INFO line. A node that is shutting
  down answers some requests and refuses others for a moment; failures within
  five seconds of a recovery continue the same outage rather than start a new
  one, so a flapping node is still one line (see :mod:`petiole.outages`).
  Every request is safe to retry: plain writes are idempotent, and each
  lightweight transaction's caller checks whether an earlier attempt was
  applied (see results.py).

A cluster that cannot be reached when the backend is created is most likely a
configuration problem: :meth:`Session.connect` tries for ``startup_timeout_s``
and fails with an error naming the hosts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from petiole import errors
from petiole.errors import ResultBackendError
from petiole.outages import (
    Closable,
    DownTooLong,
    OutageTracker,
    backoff_s,
    call_through_outage,
)
from petiole.outages import Closed as Closed  # re-exported for the backend
from petiole_cassandra._driver import Driver, describe, is_driver_error, is_outage, is_too_large
from petiole_cassandra._options import CassandraTarget

logger = logging.getLogger("petiole_cassandra")

T = TypeVar("T")


class Session(Closable):
    """One driver (cluster + session) and the retry policy of one backend."""

    def __init__(self, target: CassandraTarget, *, component: str) -> None:
        Closable.__init__(self)
        self.target = target
        self.component = component
        self.reconnect_timeout_s = target.options.reconnect_timeout_s
        self.outages = OutageTracker(
            logger,
            self.describe(),
            lost="cluster unreachable",
            meanwhile=f"retrying with backoff for up to {self.reconnect_timeout_s:g} s",
        )
        try:
            self.driver = Driver(target)
        except (ValueError, TypeError, OSError) as exc:
            raise ResultBackendError(
                f"{component} URL {target.masked_url!r} is invalid: {exc}"
            ) from exc

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
                    f"{self._reason(exc)}"
                ) from exc

    def call(self, what: str, work: Callable[[Driver], T], *, writes_bytes: int | None = None) -> T:
        """Run ``work(driver)``, retrying through an outage.

        ``what`` names the operation in errors; ``writes_bytes``, for a write of a
        result, is its size: a write the server refuses for its size then raises
        :class:`~petiole.errors.ResultTooLarge` with the server's reason.
        Raises :class:`ResultBackendError` when the outage has lasted
        ``reconnect_timeout_s``, or at once for any other error;
        :class:`Closed` when the backend was closed meanwhile.
        """
        driver = self.driver
        try:
            return call_through_outage(
                lambda: work(driver),
                outages=self.outages,
                is_outage=is_outage,
                reason=self._reason,
                closed=self._closed,
                limit_s=self.reconnect_timeout_s,
            )
        except DownTooLong as gave_up:
            raise ResultBackendError(
                f"{self.describe()}: {what}: unreachable for {gave_up.down_for_s:.0f} s "
                f"(reconnect_timeout_s={self.reconnect_timeout_s:g}; hosts: "
                f"{self.target.hosts_text}): {gave_up.reason}"
            ) from gave_up.__cause__
        except Exception as exc:
            if not is_driver_error(exc) and not isinstance(exc, ConnectionError):
                raise
            if writes_bytes is not None and is_too_large(exc):
                refused = f"the server refused the write: {self._reason(exc)}"
                raise errors.ResultTooLarge(writes_bytes, None, self.describe(), refused) from exc
            raise ResultBackendError(f"{self.describe()}: {what}: {self._reason(exc)}") from exc

    def _reason(self, exc: BaseException) -> str:
        return _mask(describe(exc), self.target.password)

    def close(self) -> None:
        if self._mark_closed():
            self.driver.close()


def _retry_at_startup(exc: BaseException) -> bool:
    """At start-up only connection failures are retried; a wrong password is not."""
    text = str(exc)
    return is_outage(exc) and "AuthenticationFailed" not in text and "Bad credentials" not in text


def _mask(text: str, password: str | None) -> str:
    """Driver messages never carry the password, but keep it out if one ever does."""
    return text.replace(password, "***") if password else text

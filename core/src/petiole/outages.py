"""Outages of a server a plugin talks to: one line when one starts, one when it ends.

A plugin keeps one :class:`OutageTracker` per connection to its server (a Redis
connection pool, a Cassandra session, a MongoDB change stream) and reports
every attempt to it. However many threads and calls run into the same outage,
the plugin's log gets

* one WARNING line when it starts: the target (URL masked), what was lost,
  the first error (secrets masked) and what happens meanwhile —
  ``redis broker redis://:***@h:6379/0: connection lost (ConnectionError: ...);
  retrying with backoff for up to 30 s``;
* one INFO line when it ends, with how long it lasted —
  ``redis broker redis://:***@h:6379/0: reconnected after 4.2 s``.

The states::

    up --failed--> down (WARNING) --failed--> down (quiet) --succeeded--> up (INFO)
     ^                                                                     |
     +-- failed within flap_window_s of the recovery: down again, the same |
         outage (DEBUG), its length still counted from its first failure --+

A node that is shutting down answers some requests and refuses others for a
moment; one thread's success in between must not turn that into two outages
(two warnings, and a retry limit that starts again). A flap does log a second
recovery line, with the whole outage's length.

:func:`call_through_outage` is the retry loop built on a tracker: jittered
exponential backoff (:func:`backoff_s`) for up to a limit counted from the
start of the outage, cut short when the component closes or the caller's own
deadline passes. Its signals (:class:`Closed`, :class:`StillDown`,
:class:`DownTooLong`) are internal to a plugin, which turns them into its own
answers and errors; none of them reaches a user. :class:`Closable` is the
closed flag those waits end on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from petiole.urls import mask_text

T = TypeVar("T")

#: A failure this soon after a recovery continues the outage that ended.
FLAP_WINDOW_S = 5.0


class OutageTracker:
    """Whether one target is reachable, and the log lines that say when that changes.

    ``target`` names it in every line (``"redis broker redis://h:6379/0"``);
    ``lost`` says what a failure means (``"connection lost"``), ``meanwhile``
    what happens during the outage (``"retrying with backoff for up to 30 s"``)
    and ``back`` what a recovery means (``"reconnected"``). Lines go to
    ``logger`` (the plugin's own). ``clock`` is monotonic seconds.

    Thread-safe: every method may be called from any thread. :meth:`succeeded`
    takes no lock while the target is up, so it costs next to nothing on a hot
    path.
    """

    def __init__(
        self,
        logger: logging.Logger,
        target: str,
        *,
        lost: str = "connection lost",
        meanwhile: str = "retrying",
        back: str = "reconnected",
        flap_window_s: float = FLAP_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self.target = mask_text(target)
        self._lost = lost
        self._meanwhile = meanwhile
        self._back = back
        self._flap_window_s = flap_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the current outage started; None while up
        self._last: tuple[float, float] | None = None  # the last outage's (start, end)

    def failed(self, reason: str) -> float:
        """Record a failed attempt (``reason``: the error in one line); return how
        long the outage has lasted, in seconds.

        The first failure of an outage logs the WARNING line and returns 0.0; a
        failure within ``flap_window_s`` of a recovery resumes the outage that
        ended (a DEBUG line) and returns its whole length so far.
        """
        with self._lock:
            now = self._clock()
            if self._since is None:
                if self._last is not None and now - self._last[1] < self._flap_window_s:
                    self._since = self._last[0]
                    self._logger.debug(
                        "%s: failed again %.1f s after it came back (%s); the same outage goes on",
                        self.target,
                        now - self._last[1],
                        mask_text(reason),
                    )
                else:
                    self._since = now
                    self._logger.warning(
                        "%s: %s (%s); %s",
                        self.target,
                        self._lost,
                        mask_text(reason),
                        self._meanwhile,
                    )
            return now - self._since

    def succeeded(self) -> None:
        """Record a successful attempt: the end of the outage if one is on (the INFO line)."""
        if self._since is not None:  # up is the usual case, and takes no lock
            self._recovered()

    def _recovered(self) -> None:
        with self._lock:
            if self._since is None:  # another thread's success ended it first
                return
            now = self._clock()
            lasted_s = now - self._since
            self._last = (self._since, now)
            self._since = None
            self._logger.info("%s: %s after %.1f s", self.target, self._back, lasted_s)

    def down_for_s(self) -> float | None:
        """How long the current outage has lasted; None while the target is up."""
        with self._lock:
            since = self._since
            return None if since is None else self._clock() - since


class Closable:
    """The closed flag of a component whose calls wait (out an outage, for a reply).

    A plugin's connection class inherits it and calls ``Closable.__init__``.
    ``_closed`` is the flag itself (a :class:`threading.Event`): pass it to
    :func:`call_through_outage`, and wait on it instead of sleeping, so that
    closing ends every wait at once.
    """

    def __init__(self) -> None:
        self._closed = threading.Event()
        self._closing_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once if the component is closed meanwhile."""
        return self._closed.wait(seconds)

    def _mark_closed(self) -> bool:
        """Set the flag; True for the one call (of any number, from any threads)
        that should then release the component's connections."""
        with self._closing_lock:
            if self._closed.is_set():
                return False
            self._closed.set()
            return True


class Closed(Exception):
    """The component was closed while the call waited (internal; callers return quietly)."""


class _GaveUp(Exception):
    """:func:`call_through_outage` stopped retrying; raised from the last error.
    ``down_for_s`` is how long the outage had lasted, ``reason`` its last error."""

    def __init__(self, down_for_s: float, reason: str) -> None:
        super().__init__(f"down for {down_for_s:.1f} s: {reason}")
        self.down_for_s = down_for_s
        self.reason = reason


class StillDown(_GaveUp):
    """The outage outlasted the caller's own deadline (``until``)."""


class DownTooLong(_GaveUp):
    """The outage has lasted the retry limit (``limit_s``). The plugin raises its
    own error in its place, naming the operation and the limit."""


def call_through_outage(
    attempt: Callable[[], T],
    *,
    outages: OutageTracker,
    is_outage: Callable[[Exception], bool],
    reason: Callable[[Exception], str],
    closed: threading.Event,
    limit_s: float,
    until: float | None = None,
) -> T:
    """Return ``attempt()``, calling it again for as long as it fails with an outage.

    Every attempt must be safe to repeat. Failures are reported to ``outages``
    (``reason(exc)`` is the error in its log line), a success ends the outage.
    Between attempts it waits :func:`backoff_s` on ``closed``. Raises

    * :class:`Closed` when ``closed`` is set before an attempt, or when an
      attempt fails while or after it is set (closing a client under a
      blocked call makes that call fail in odd ways: not an error);
    * whatever ``attempt`` raised that ``is_outage`` refuses, as it is (the
      caller translates it into its own error);
    * :class:`DownTooLong` once the outage (counted from its first failure,
      by any thread) has lasted ``limit_s``;
    * :class:`StillDown` when the next attempt would come after ``until``
      (monotonic): the last attempt is made at ``until``, not before.
    """
    tries = 0
    while True:
        if closed.is_set():
            raise Closed
        try:
            result = attempt()
        except Exception as exc:
            if closed.is_set():
                raise Closed from exc
            if not is_outage(exc):
                raise
            why = reason(exc)
            down_for_s = outages.failed(why)
            if down_for_s >= limit_s:
                raise DownTooLong(down_for_s, why) from exc
            delay_s = backoff_s(tries)
            tries += 1
            if until is not None:
                delay_s = min(delay_s, until - time.monotonic())
                if delay_s <= 0:
                    raise StillDown(down_for_s, why) from exc
            closed.wait(delay_s)
            continue
        outages.succeeded()
        return result


def backoff_s(attempt: int, *, first_s: float = 0.05, cap_s: float = 2.0) -> float:
    """The pause before retry number ``attempt`` (0, 1, ...): ``first_s`` doubling
    up to ``cap_s``, each jittered down by up to half so that clients that lost
    the same server do not come back in step."""
    return float(min(cap_s, first_s * 2**attempt) * random.uniform(0.5, 1.0))

"""A worker's view of revocations (see petiole.revocation for the mechanism)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from petiole import revocation
from petiole.coordination import CoordinationUnavailable
from petiole.errors import PetioleError
from petiole.ports import ResultsApp

logger = logging.getLogger("petiole.worker")


class RevocationWatch:
    """Tracks the revocation marker; answers "is this task revoked?"."""

    def __init__(self, app: ResultsApp) -> None:
        self.app = app
        self.active = False  # revocations exist: check each task before it starts
        self._last: float | None = None
        self._unavailable_logged = False
        self._read_failing = False  # the store failed the last read: said once per outage

    def poll(self) -> bool:
        """Read the marker; True when a revocation happened since the last poll."""
        try:
            latest = revocation.marker(self.app)
        except CoordinationUnavailable as exc:
            # Nobody can revoke through this app either (revoke raises the same
            # error), so there is nothing to obey; say so once.
            if not self._unavailable_logged:
                logger.warning("revocations are not watched: %s", exc)
                self._unavailable_logged = True
            self.active = False
            return False
        except PetioleError as exc:
            if not self._read_failing:  # polled every second: one line per outage
                logger.error(
                    "could not read revocations (%s); checking every task until they can be "
                    "read again",
                    exc,
                )
                self._read_failing = True
            self.active = True
            return False
        if self._read_failing:
            logger.info("reading revocations again")
            self._read_failing = False
        self.active = latest is not None
        changed = latest is not None and latest != self._last
        self._last = latest
        return changed

    def is_revoked(self, task_id: str) -> bool:
        try:
            return task_id in revocation.revoked(self.app, [task_id])
        except PetioleError as exc:
            logger.error(
                "could not check whether task %s is revoked (%s); running it", task_id, exc
            )
            return False

    def to_terminate(self, task_ids: Iterable[str]) -> list[str]:
        """Those of ``task_ids`` revoked with ``terminate=True``."""
        try:
            found = revocation.revoked(self.app, list(task_ids))
        except PetioleError as exc:
            logger.error("could not check running tasks for revocation (%s)", exc)
            return []
        return [task_id for task_id, terminate in found.items() if terminate]

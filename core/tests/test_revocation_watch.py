"""The worker's revocation watch through a result store outage: one line when reads
start failing, one when they work again (it polls every second)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from petiole.errors import TransportError
from petiole.worker.revocations import RevocationWatch


class _FlakyMarks:
    """A coordination store that fails ``failures`` reads, then has no marks."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def get_marks(self, keys: list[str]) -> dict[str, str]:
        if self.failures:
            self.failures -= 1
            raise TransportError("redis://127.0.0.1:6379/0: unreachable for 3 s")
        return {}


class _App:
    def __init__(self, coordination: _FlakyMarks) -> None:
        self.coordination = coordination


def test_an_outage_of_the_store_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="petiole.worker")
    app: Any = _App(_FlakyMarks(failures=5))
    watch = RevocationWatch(app)
    for _ in range(5):
        assert watch.poll() is False
        assert watch.active  # meanwhile every task is checked before it starts
    assert watch.poll() is False
    assert not watch.active
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("could not read revocations (redis://")
    assert lines[1] == "reading revocations again"

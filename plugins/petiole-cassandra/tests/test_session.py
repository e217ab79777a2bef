"""The outage log: one warning line per outage, even when the node flaps."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from petiole_cassandra import _session
from petiole_cassandra._options import parse_url
from petiole_cassandra._session import Session

from petiole.testing.servers import free_port


@pytest.fixture
def session() -> Iterator[Session]:
    # Never connected: only the outage bookkeeping is exercised.
    target = parse_url(f"cassandra://127.0.0.1:{free_port()}/ks", {}, component="backend")
    opened = Session(target, component="backend")
    yield opened
    opened.close()


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cluster unreachable" in r.getMessage()]


def test_a_failure_soon_after_a_recovery_continues_the_same_outage(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="petiole_cassandra")
    # A node shutting down: one thread fails, another's request still succeeds,
    # then the first fails again.
    session.note_outage("Server is shutting down")
    session.note_recovery()
    down_for = session.note_outage("connection refused")

    assert len(outage_lines(caplog)) == 1
    assert down_for >= 0


def test_an_outage_after_the_flap_window_is_logged_again(
    session: Session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_cassandra")
    monkeypatch.setattr(_session, "FLAP_WINDOW_S", 0.0)
    session.note_outage("connection refused")
    session.note_recovery()
    session.note_outage("connection refused")

    assert len(outage_lines(caplog)) == 2
    assert sum("reconnected after" in r.getMessage() for r in caplog.records) == 1

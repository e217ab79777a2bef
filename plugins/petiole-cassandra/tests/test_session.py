"""The outage log: one warning line per outage, even when the node flaps.

The state machine itself is tested in the core (core/tests/test_outages.py);
these tests check the session's lines and that its tracker forgives a flap."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from petiole_cassandra._options import parse_url
from petiole_cassandra._session import Session

from petiole.testing.servers import free_port


@pytest.fixture
def session() -> Iterator[Session]:
    # Never connected: only the outage bookkeeping is exercised.
    target = parse_url(f"cassandra://u:secret@127.0.0.1:{free_port()}/ks", {}, component="backend")
    opened = Session(target, component="backend")
    yield opened
    opened.close()


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "cluster unreachable" in r.getMessage()]


def test_an_outage_is_one_warning_naming_the_masked_url_and_one_recovery_line(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_cassandra")
    session.outages.failed("NoHostAvailable: connection refused")
    session.outages.failed("NoHostAvailable: connection refused")
    session.outages.succeeded()

    [warning] = outage_lines(caplog)
    assert warning.levelno == logging.WARNING
    assert warning.name == "petiole_cassandra"
    assert warning.getMessage().startswith("backend cassandra://u:***@127.0.0.1:")
    assert "secret" not in warning.getMessage()
    assert "retrying with backoff for up to 60 s" in warning.getMessage()
    [recovery] = [r for r in caplog.records if "reconnected after" in r.getMessage()]
    assert recovery.levelno == logging.INFO


def test_a_failure_soon_after_a_recovery_continues_the_same_outage(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="petiole_cassandra")
    # A node shutting down: one thread fails, another's request still succeeds,
    # then the first fails again.
    session.outages.failed("Server is shutting down")
    session.outages.succeeded()
    down_for_s = session.outages.failed("connection refused")

    assert len(outage_lines(caplog)) == 1
    assert down_for_s >= 0
    assert session.outages.down_for_s() is not None

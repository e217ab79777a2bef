"""The core's built-in transports (memory, sqlite) against the transport,
broadcast and consume conformance suites, and what their broadcast does beyond the suite."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole._builtins import memory, sqlite_transport
from petiole.errors import TransportError
from petiole.testing import BroadcastSuite, ConsumeSuite, TransportSuite
from petiole.testing._helpers import call_with_timeout
from petiole.testing.broadcast_suite import Inbox
from petiole.transport import Transport


class MemoryConnections:
    """Two transports on one in-process broker: the suite's own and a peer."""

    @pytest.fixture
    def transport(self) -> Iterator[Transport]:
        transport = memory.create_transport("memory://", {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self) -> Iterator[Transport]:
        transport = memory.create_transport("memory://", {})
        yield transport
        transport.close()


class SqliteConnections:
    """Two transports on one SQLite file: each has its own connections, as another
    worker process would (only the in-process wake-up is shared)."""

    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[Transport]:
        transport = sqlite_transport.create_transport(f"sqlite:///{tmp_path / 'broker.db'}", {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, tmp_path: Path) -> Iterator[Transport]:
        transport = sqlite_transport.create_transport(f"sqlite:///{tmp_path / 'broker.db'}", {})
        yield transport
        transport.close()


class TestMemoryTransport(MemoryConnections, TransportSuite):
    pass


class TestSqliteTransport(SqliteConnections, TransportSuite):
    pass


class TestMemoryBroadcast(MemoryConnections, BroadcastSuite):
    pass


class TestMemoryConsume(MemoryConnections, ConsumeSuite):
    pass


class TestSqliteConsume(SqliteConnections, ConsumeSuite):
    """SQLite does not push: every test skips, naming the protocol."""


class TestSqliteBroadcast(SqliteConnections, BroadcastSuite):
    pass


# -- beyond the suite ---------------------------------------------------------------

DELIVERY_WAIT_S = 10.0


def test_memory_slow_subscriber_neither_blocks_broadcasts_nor_grows_past_its_inbox(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = memory.MemoryTransport(broadcast_inbox_limit=5)
    busy, release = threading.Event(), threading.Event()
    inbox = Inbox()

    def stuck(channel: str, payload: bytes) -> None:
        busy.set()
        release.wait(DELIVERY_WAIT_S)
        inbox(channel, payload)

    subscription = transport.subscribe(["events"], stuck)
    try:
        assert transport.broadcast("events", b"first") == 1
        assert busy.wait(DELIVERY_WAIT_S)  # its thread holds "first": the inbox is empty
        with caplog.at_level(logging.WARNING, logger="petiole._builtins.memory"):
            reached = call_with_timeout(
                lambda: [transport.broadcast("events", b"%d" % i) for i in range(8)],
                timeout_s=DELIVERY_WAIT_S,
                what="broadcast to a stuck subscriber",
            )
            release.set()
            got = inbox.wait_for(6, timeout_s=DELIVERY_WAIT_S)
            subscription.close()
    finally:
        release.set()
        transport.close()

    assert reached == [1] * 5 + [0] * 3
    assert [p for _, p in got] == [b"first", b"0", b"1", b"2", b"3", b"4"]
    assert inbox.payloads() == [p for _, p in got]
    assert "dropping new messages" in caplog.text
    assert "missed 3 messages" in caplog.text


def test_memory_broadcast_counts_subscriptions_of_every_transport_on_the_broker() -> None:
    broker = memory.MemoryBroker()
    one, two = memory.MemoryTransport(broker), memory.MemoryTransport(broker)
    other = memory.MemoryTransport()  # a broker of its own
    subscriptions = [t.subscribe(["c"], Inbox()) for t in (one, two, two, other)]
    try:
        assert one.broadcast("c", b"x") == 3
        subscriptions[1].close()
        assert one.broadcast("c", b"x") == 2
        two.close()  # closes its own subscriptions
        assert one.broadcast("c", b"x") == 1
    finally:
        for transport in (one, two, other):
            transport.close()


def test_sqlite_broadcast_from_another_process_reaches_a_subscriber(tmp_path: Path) -> None:
    """Another process shares no in-process wake-up: the subscriber's polling finds it."""
    url = f"sqlite:///{tmp_path / 'broker.db'}?poll_interval_ms=20"
    transport = sqlite_transport.create_transport(url, {})
    inbox = Inbox()
    subscription = transport.subscribe(["control"], inbox)
    script = (
        "import sys\n"
        "from petiole._builtins import sqlite_transport\n"
        "t = sqlite_transport.create_transport(sys.argv[1], {})\n"
        "for i in range(3):\n"
        "    t.broadcast('control', b'from the child %d' % i)\n"
        "t.close()\n"
    )
    try:
        subprocess.run([sys.executable, "-c", script, url], check=True, timeout=60)
        got = inbox.wait_for(3, timeout_s=DELIVERY_WAIT_S)
    finally:
        subscription.close()
        transport.close()

    assert got == [("control", b"from the child %d" % i) for i in range(3)]


def test_sqlite_broadcasts_older_than_the_retention_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    transport = sqlite_transport.SqliteTransport(path, broadcast_retention_s=0.0)
    try:
        for i in range(10):
            assert transport.broadcast("events", b"%d" % i) == -1
    finally:
        transport.close()

    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT channel, payload FROM petiole_broadcasts").fetchall()
    assert rows == [("events", b"9")]


def test_sqlite_subscriber_starts_after_the_last_broadcast_even_once_all_were_pruned(
    tmp_path: Path,
) -> None:
    path = tmp_path / "broker.db"
    transport = sqlite_transport.SqliteTransport(path, broadcast_retention_s=0.0)
    try:
        transport.broadcast("events", b"old")
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("DELETE FROM petiole_broadcasts")  # as a prune by another process
        inbox = Inbox()
        subscription = transport.subscribe(["events"], inbox)
        transport.broadcast("events", b"new")
        got = inbox.wait_for(1, timeout_s=DELIVERY_WAIT_S)
        subscription.close()
    finally:
        transport.close()

    assert got == [("events", b"new")]


def test_subscription_whose_reads_fail_logs_once_and_receives_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ThreadedSubscription's error path, through the SQLite subscription."""
    transport = sqlite_transport.SqliteTransport(tmp_path / "broker.db")
    read = sqlite_transport._SqliteSubscription._read_batch
    failures = [TransportError("disk on fire"), TransportError("still on fire")]

    def flaky(self: sqlite_transport._SqliteSubscription) -> list[tuple[str, bytes]]:
        if failures:
            raise failures.pop(0)
        return read(self)

    monkeypatch.setattr(sqlite_transport._SqliteSubscription, "_read_batch", flaky)
    monkeypatch.setattr(sqlite_transport._SqliteSubscription, "retry_s", 0.01)
    inbox = Inbox()
    with caplog.at_level(logging.INFO, logger="petiole.transport"):
        subscription = transport.subscribe(["events"], inbox)
        try:
            transport.broadcast("events", b"kept")
            got = inbox.wait_for(1, timeout_s=DELIVERY_WAIT_S)
        finally:
            subscription.close()
            transport.close()

    assert got == [("events", b"kept")]
    lines = [r.getMessage() for r in caplog.records if r.name == "petiole.transport"]
    assert len([line for line in lines if "cannot receive" in line]) == 1, lines
    assert "disk on fire" in lines[0]
    assert any("receives again" in line for line in lines)

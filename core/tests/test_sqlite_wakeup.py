"""Waiters in other processes woken by doorbells, and batched publishing, on SQLite.

Each cross-process test sets ``poll_interval_ms`` to 5 s, so a waiter that
returns well before that was woken by the writer's doorbell, not by a poll.
The waiters run in child processes that print one line when their wait ends;
a test knows a child is waiting once its doorbell is armed (its socket is
visible in ``petiole.db-wake``).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import run_python, waiting_in_thread

from petiole._builtins import _wakeup
from petiole._builtins._sqlite import SqliteOptions, parse_url
from petiole._builtins.sqlite_backend import SqliteBackend
from petiole._builtins.sqlite_transport import SqliteTransport
from petiole.backend import ResultRecord
from petiole.errors import ConfigError, TransportError
from petiole.testing import wait_until

POLL_MS = 5000
# Far below POLL_MS, yet generous for a loaded machine.
WOKEN_WITHIN_S = 2.0

_WAITER = """
    import sys
    from pathlib import Path
    from petiole._builtins._sqlite import SqliteOptions
    from petiole._builtins.sqlite_backend import SqliteBackend
    from petiole._builtins.sqlite_transport import SqliteTransport

    path, what, notify, poll_ms = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    options = SqliteOptions(poll_interval_ms=poll_ms, notify=notify)
    if what == "reserve":
        got = SqliteTransport(path, options).reserve(["q"], max_messages=1, wait_s=60, lease_s=60)
        print(got[0].payload.decode() if got else "nothing", flush=True)
    elif what == "wait":
        got = SqliteBackend(path, options).wait(["t1"], timeout_s=60)
        print(got["t1"].state if got else "nothing", flush=True)
    else:
        import threading
        heard = threading.Event()
        SqliteTransport(path, options).subscribe(["c"], lambda channel, body: heard.set())
        print("subscribed", flush=True)
        print("heard" if heard.wait(60) else "nothing", flush=True)
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "petiole.db"


@pytest.fixture
def options() -> SqliteOptions:
    return SqliteOptions(poll_interval_ms=POLL_MS)


@pytest.fixture
def transport(db_path: Path, options: SqliteOptions) -> Iterator[SqliteTransport]:
    t = SqliteTransport(db_path, options)
    yield t
    t.close()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)


def _start_waiter(
    children: list[subprocess.Popen[str]],
    db_path: Path,
    what: str,
    *,
    notify: str = "auto",
    poll_ms: int = POLL_MS,
) -> subprocess.Popen[str]:
    child = run_python(_WAITER, str(db_path), what, notify, str(poll_ms))
    children.append(child)
    return child


def _sockets(db_path: Path, *, visible: bool = True, hidden: bool = True) -> list[str]:
    folder = db_path.with_name(db_path.name + _wakeup.WAKE_SUFFIX)
    if not folder.is_dir():
        return []
    return sorted(
        name
        for name in os.listdir(folder)
        if (hidden if name.startswith(".") else visible) and not name.startswith("..")
    )


def _armed(db_path: Path, channel: str, count: int = 1) -> bool:
    names = _sockets(db_path, hidden=False)
    return sum(name.startswith(f"{channel}.") for name in names) >= count


def _answer(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    return child.stdout.readline().strip()


def _record(task_id: str) -> ResultRecord:
    return ResultRecord(
        task_id=task_id,
        state="SUCCESS",
        payload=b"42",
        content_type="application/json",
        traceback=None,
        date_done=time.time(),
        meta={},
    )


# -- waking other processes ----------------------------------------------------------


def test_publish_wakes_a_reserve_waiting_in_another_process(
    db_path: Path, transport: SqliteTransport, children: list[subprocess.Popen[str]]
) -> None:
    child = _start_waiter(children, db_path, "reserve")
    assert wait_until(lambda: _armed(db_path, "messages"), timeout_s=30)

    published_at = time.monotonic()
    transport.publish("q", b"ring")
    assert _answer(child) == "ring"
    assert time.monotonic() - published_at < WOKEN_WITHIN_S


def test_store_wakes_a_result_wait_in_another_process(
    db_path: Path, options: SqliteOptions, children: list[subprocess.Popen[str]]
) -> None:
    backend = SqliteBackend(db_path, options)
    try:
        child = _start_waiter(children, db_path, "wait")
        assert wait_until(lambda: _armed(db_path, "results"), timeout_s=30)

        stored_at = time.monotonic()
        backend.store(_record("t1"), ttl_s=60)
        assert _answer(child) == "SUCCESS"
        assert time.monotonic() - stored_at < WOKEN_WITHIN_S
    finally:
        backend.close()


def test_broadcast_wakes_a_subscriber_in_another_process(
    db_path: Path, transport: SqliteTransport, children: list[subprocess.Popen[str]]
) -> None:
    child = _start_waiter(children, db_path, "subscribe")
    assert _answer(child) == "subscribed"
    assert wait_until(lambda: _armed(db_path, "broadcasts"), timeout_s=30)

    sent_at = time.monotonic()
    transport.broadcast("c", b"hello")
    assert _answer(child) == "heard"
    assert time.monotonic() - sent_at < WOKEN_WITHIN_S


def test_a_busy_process_is_not_rung(db_path: Path, transport: SqliteTransport) -> None:
    """Only waiting processes have a visible socket: a reserve that finds work at
    once arms nothing, so writers do not wake processes that are busy."""
    transport.publish("q", b"work")
    other = SqliteTransport(db_path, SqliteOptions(poll_interval_ms=POLL_MS))
    try:
        assert other.reserve(["q"], max_messages=1, wait_s=5, lease_s=60)
        assert not _armed(db_path, "messages")
    finally:
        other.close()


def test_waiter_disarms_when_its_wait_ends(db_path: Path, transport: SqliteTransport) -> None:
    waiting = waiting_in_thread(
        transport, lambda: transport.reserve(["q"], max_messages=1, wait_s=60, lease_s=60)
    )
    assert _armed(db_path, "messages")
    transport.publish("q", b"x")
    assert [d.payload for d in waiting.result()] == [b"x"]
    assert not _armed(db_path, "messages")


def test_close_removes_this_process_sockets(db_path: Path, options: SqliteOptions) -> None:
    transport = SqliteTransport(db_path, options)
    waiting = waiting_in_thread(
        transport, lambda: transport.reserve(["q"], max_messages=1, wait_s=60, lease_s=60)
    )
    assert _sockets(db_path)
    transport.close()
    assert waiting.result() == []
    assert _sockets(db_path) == []


# -- crash safety -----------------------------------------------------------------------


def test_sigkilled_waiter_leaves_nothing_that_breaks_later_notifies(
    db_path: Path, transport: SqliteTransport, children: list[subprocess.Popen[str]]
) -> None:
    killed = _start_waiter(children, db_path, "reserve")
    assert wait_until(lambda: _armed(db_path, "messages"), timeout_s=30)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    stale = _sockets(db_path)
    assert len(stale) == 2  # its hidden socket and the armed link to it

    # The next publish is refused by the dead socket, succeeds, and removes it.
    transport.publish("q", b"first")
    assert not _armed(db_path, "messages")
    assert transport.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)

    # A new waiter removes the dead hidden socket and is woken as usual.
    child = _start_waiter(children, db_path, "reserve")
    assert wait_until(lambda: _armed(db_path, "messages"), timeout_s=30)
    assert not set(stale) & set(_sockets(db_path))
    published_at = time.monotonic()
    transport.publish("q", b"second")
    assert _answer(child) == "second"
    assert time.monotonic() - published_at < WOKEN_WITHIN_S


def test_a_waiter_that_never_reads_does_not_block_the_writer(
    db_path: Path, transport: SqliteTransport
) -> None:
    """A live socket whose buffer is full already has a wake-up waiting: the
    writer skips it, neither blocking nor deleting it."""
    transport.size("q")  # the wake directory exists once the file is opened
    folder = db_path.with_name(db_path.name + _wakeup.WAKE_SUFFIX)
    folder.mkdir(exist_ok=True)
    name = f"messages.{_wakeup.kernel_id()}.1.deadbeef"
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("binds through /proc/self/fd: the temporary path is too long for a socket")
    dir_fd = os.open(folder, os.O_RDONLY)
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        deaf.bind(f"/proc/self/fd/{dir_fd}/{name}")
        for _ in range(2000):  # far more rings than a socket buffer holds
            transport.publish("q", b"x")
        assert transport.size("q") == 2000
        assert name in os.listdir(folder)
        assert deaf.recv(16, socket.MSG_DONTWAIT)
    finally:
        deaf.close()
        os.close(dir_fd)


# -- falling back to polling ---------------------------------------------------------


def test_notify_off_falls_back_to_polling(
    db_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    publisher = SqliteTransport(db_path, SqliteOptions(notify="off"))
    try:
        child = _start_waiter(children, db_path, "reserve", notify="off", poll_ms=50)
        publisher.publish("q", b"polled")
        assert _answer(child) == "polled"
        assert _sockets(db_path) == []
    finally:
        publisher.close()


def test_network_file_system_keeps_short_polls(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers on other machines cannot ring: waiters poll from 5 ms as with notify=off."""
    monkeypatch.setattr(_wakeup, "file_system_type", lambda path: "nfs4")
    wake = _wakeup.WakeDirectory(db_path, lambda channel: None)
    try:
        assert wake.available
        assert not wake.complete
    finally:
        wake.close()


def test_mount_table_names_the_file_system_of_a_path(tmp_path: Path) -> None:
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc/self/mountinfo on this platform")
    assert _wakeup.file_system_type(tmp_path)


def test_long_paths_are_reached_through_a_directory_descriptor(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    wake = _wakeup.WakeDirectory(deep / "petiole.db", lambda channel: None)
    try:
        if not Path("/proc/self/fd").is_dir():
            assert not wake.available  # then waiters poll
            return
        doorbell = wake.doorbell("messages")
        assert doorbell is not None
        assert len(os.listdir(wake.path)) == 1
    finally:
        wake.close()
    assert os.listdir(wake.path) == []


def test_notify_option_is_validated(tmp_path: Path) -> None:
    assert parse_url(f"sqlite:///{tmp_path}/a.db?notify=OFF", {}, component="t").options.notify == (
        "off"
    )
    with pytest.raises(ConfigError, match="notify"):
        parse_url(f"sqlite:///{tmp_path}/a.db?notify=sometimes", {}, component="t")


# -- batch() ----------------------------------------------------------------------------


def test_batch_publishes_nothing_until_the_block_ends(
    db_path: Path, transport: SqliteTransport
) -> None:
    observer = SqliteTransport(db_path)
    try:
        with transport.batch():
            for i in range(5):
                transport.publish("q", f"m{i}".encode())
            assert observer.size("q") == 0
        assert observer.size("q") == 5
    finally:
        observer.close()


def test_batch_left_by_an_exception_stores_what_it_queued(
    transport: SqliteTransport,
) -> None:
    # PublishesInBatches: delay() already returned for "one", so the
    # exception that ends the block must not take the task with it.
    def change_of_mind() -> None:
        with transport.batch():
            transport.publish("q", b"one")
            raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError):
        change_of_mind()
    assert transport.size("q") == 1
    transport.publish("q", b"after")  # the thread is out of the batch
    assert transport.size("q") == 2


def test_batch_whose_write_fails_publishes_nothing(
    db_path: Path, transport: SqliteTransport
) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON petiole_messages "
            "WHEN NEW.message_id = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )

    def publish_three() -> None:
        with transport.batch():
            transport.publish("q", b"a")
            transport.publish("q", b"b", message_id="poison")
            transport.publish("q", b"c")

    with pytest.raises(TransportError, match="batch of 3"):
        publish_three()
    assert transport.size("q") == 0


def test_nested_batch_joins_the_outer_one(db_path: Path, transport: SqliteTransport) -> None:
    observer = SqliteTransport(db_path)
    try:
        with transport.batch():
            transport.publish("q", b"outer")
            with transport.batch():
                transport.publish("q", b"inner")
            assert observer.size("q") == 0
        assert observer.size("q") == 2
    finally:
        observer.close()


def test_batch_wakes_a_waiter_in_another_process(
    db_path: Path, transport: SqliteTransport, children: list[subprocess.Popen[str]]
) -> None:
    child = _start_waiter(children, db_path, "reserve")
    assert wait_until(lambda: _armed(db_path, "messages"), timeout_s=30)
    published_at = time.monotonic()
    with transport.batch():
        transport.publish("q", b"batched")
    assert _answer(child) == "batched"
    assert time.monotonic() - published_at < WOKEN_WITHIN_S

"""Helpers shared by the core's tests (on ``sys.path`` through ``conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from petiole import Petiole
from petiole._builtins._sqlite import SqliteComponent
from petiole._builtins.memory import MemoryBackend
from petiole.backend import BackendCapabilities, ResultRecord
from petiole.loading import load_app
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread
from petiole.transport import Transport

T = TypeVar("T")


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` (dedented) in a fresh interpreter with ``args``; text pipes
    to its stdin and from its stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@contextmanager
def importable_app(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, prefix: str
) -> Iterator[Petiole]:
    """The app ``source`` (dedented) defines, as a module of a fresh name importable
    by path (pool children load it), on a SQLite file of ``tmp_path``; closed and
    forgotten afterwards."""
    module = f"{prefix}_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    monkeypatch.setenv("PETIOLE_BROKER_URL", url)
    monkeypatch.setenv("PETIOLE_BACKEND_URL", url)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_app(module)
    try:
        yield app
    finally:
        app.close()
        sys.modules.pop(module, None)


def waiting_in_thread(component: SqliteComponent, call: Callable[[], T]) -> InThread[T]:
    """Run ``call`` (a waiting ``reserve`` or ``wait`` of ``component``) in a thread,
    and return once it is blocked waiting for a notification."""
    waiting = InThread(call)
    assert wait_until(lambda: component._db.notifier.waiting == 1, timeout_s=10)
    return waiting


def drain_in_threads(transport: Transport, *, threads: int, wait_s: float) -> Counter[bytes]:
    """How often each payload of queue ``q`` was received by ``threads`` threads that
    start together and reserve two at a time (acking each) until a reserve of
    ``wait_s`` finds nothing."""
    start = threading.Barrier(threads)

    def drain() -> list[bytes]:
        start.wait()
        got: list[bytes] = []
        while batch := transport.reserve(["q"], max_messages=2, wait_s=wait_s, lease_s=60):
            for delivery in batch:
                got.append(delivery.payload)
                transport.ack(delivery)
        return got

    workers = [InThread(drain) for _ in range(threads)]
    return Counter(payload for w in workers for payload in w.result(timeout_s=60))


class ResultsInMemory:
    """A result backend that only stores and reads results, in memory (no
    coordination, no optional part): tests give it the behaviour they need."""

    capabilities = BackendCapabilities(push_wait=True)

    def __init__(self) -> None:
        self._inner = MemoryBackend()

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        self._inner.store(record, ttl_s=ttl_s)

    def get(self, task_id: str) -> ResultRecord | None:
        return self._inner.get(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        return self._inner.get_many(task_ids)

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        return self._inner.wait(task_ids, timeout_s=timeout_s)

    def forget(self, task_ids: Sequence[str]) -> None:
        self._inner.forget(task_ids)

    def close(self) -> None:
        self._inner.close()

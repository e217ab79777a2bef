"""Chords with their results on memcached: set_add and claim through the real
workflow, run by a worker in threads of this process."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from petiole_memcached.results import MemcachedBackend
from petiole_memcached.testing import MemcachedServer

from petiole import Petiole, chord
from petiole.testing.in_thread import start_worker

MEMBERS = 50


@pytest.fixture
def app(memcached_server: MemcachedServer) -> Iterator[Petiole]:
    app = Petiole(
        "chord",
        broker=f"memory://{uuid.uuid4().hex}",
        backend=memcached_server.url,
        config_file="/dev/null",
    )
    yield app
    app.close()


@pytest.fixture
def tasks(app: Petiole) -> dict[str, Any]:
    fired: list[int] = []
    lock = threading.Lock()

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tsum")
    def tsum(values: list[int]) -> int:
        with lock:
            fired.append(len(values))
        return sum(values)

    return {"add": add, "tsum": tsum, "fired": fired}


class Spy:
    """Counts the backend's set_add and claim calls; ``duplicate`` makes every
    set_add happen twice, as if each chord member were delivered twice."""

    def __init__(self, backend: MemcachedBackend, *, duplicate: bool = False) -> None:
        self.backend = backend
        self.duplicate = duplicate
        self.sizes: list[int] = []
        self.claims: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.set_add = backend.set_add
        self.claim = backend.claim

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(self.backend, "set_add", self.spy_set_add)
        monkeypatch.setattr(self.backend, "claim", self.spy_claim)

    def spy_set_add(self, key: str, member: str, *, ttl_s: float | None) -> int:
        size = self.set_add(key, member, ttl_s=ttl_s)
        with self.lock:
            self.sizes.append(size)
        if self.duplicate:
            again = self.set_add(key, member, ttl_s=ttl_s)
            assert again >= size  # the set's size now, with this member counted once
            return again
        return size

    def spy_claim(self, key: str, owner: str, *, ttl_s: float | None) -> str:
        winner = self.claim(key, owner, ttl_s=ttl_s)
        with self.lock:
            self.claims.append((owner, winner))
        return winner


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "each-member-twice"])
def test_chord_of_fifty_fires_its_callback_once_with_every_result(
    app: Petiole, tasks: dict[str, Any], monkeypatch: pytest.MonkeyPatch, duplicate: bool
) -> None:
    backend = app.backend
    assert isinstance(backend, MemcachedBackend)
    spy = Spy(backend, duplicate=duplicate)
    spy.install(monkeypatch)

    with start_worker(app, concurrency=8):
        header = [tasks["add"].s(i, i) for i in range(MEMBERS)]
        result = chord(header, tasks["tsum"].s()).apply_async()
        assert result.get(timeout=30) == sum(2 * i for i in range(MEMBERS))

    assert tasks["fired"] == [MEMBERS]
    # Every member was counted once: the first adds handed out exactly 1..50.
    assert sorted(spy.sizes) == list(range(1, MEMBERS + 1))
    # Members that saw the set complete claimed the callback; exactly one won.
    assert spy.claims
    assert len({winner for _, winner in spy.claims}) == 1
    assert sum(owner == winner for owner, winner in spy.claims) == 1
    if not duplicate:
        assert len(spy.claims) == 1

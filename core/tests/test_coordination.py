"""An app whose result backend cannot coordinate: chords and revoke say so,
and work once ``coordination_url`` names a store that can."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from core_helpers import ResultsInMemory

from petiole import Petiole, chord, group, hookimpl, revocation
from petiole._builtins.memory import MemoryBackend
from petiole.backend import Coordination, ResultBackend
from petiole.coordination import CoordinationUnavailable
from petiole.errors import ConfigError
from petiole.testing.in_thread import start_worker


class StoreOnlyBackend(ResultsInMemory):
    """Stores and reads results and nothing more, as a backend that only
    delivers them (``rpc://``) offers no coordination."""


class _StoreOnlyPlugin:
    @hookimpl
    def petiole_result_backends(self) -> dict[str, Any]:
        return {"storeonly": lambda url, options: StoreOnlyBackend()}


@pytest.fixture
def store_only_app() -> Iterator[Petiole]:
    broker = f"memory://{uuid.uuid4().hex}"
    app = Petiole("test", broker=broker, backend="storeonly://", config_file="/dev/null")
    app.register_plugin(_StoreOnlyPlugin(), "storeonly")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    yield app
    app.close()


def test_a_store_only_backend_is_a_result_backend_but_not_a_coordination_store() -> None:
    backend = StoreOnlyBackend()
    assert isinstance(backend, ResultBackend)
    assert not isinstance(backend, Coordination)


def test_coordination_without_a_store_raises_naming_backend_and_setting(
    store_only_app: Petiole,
) -> None:
    with pytest.raises(CoordinationUnavailable) as info:
        store_only_app.coordination  # noqa: B018
    message = str(info.value)
    assert "storeonly://" in message
    assert "StoreOnlyBackend" in message
    assert "coordination_url" in message
    assert isinstance(info.value, ConfigError)


def test_revoke_without_a_coordination_store_raises_before_storing(
    store_only_app: Petiole,
) -> None:
    with pytest.raises(CoordinationUnavailable, match=r"revoke .*coordination_url"):
        store_only_app.revoke("some-task")
    assert store_only_app.backend.get("some-task") is None


def test_chord_without_a_coordination_store_is_refused_when_applied(
    store_only_app: Petiole,
) -> None:
    add, tsum = store_only_app.tasks["add"], store_only_app.tasks["tsum"]
    with pytest.raises(CoordinationUnavailable, match=r"a chord .*coordination_url"):
        chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()


def test_chord_members_reaching_a_worker_without_a_coordination_store_fail_its_result(
    store_only_app: Petiole,
) -> None:
    """Sent by a producer that could coordinate, run by a worker that cannot."""
    add, tsum = store_only_app.tasks["add"], store_only_app.tasks["tsum"]
    header, body = group(add.s(1, 1), add.s(2, 2), app=store_only_app), tsum.s()
    result = body.freeze()
    chord_info = {"id": header.freeze().id, "size": 2, "body": dict(body)}
    with start_worker(store_only_app):
        header.apply_async(chord=chord_info)
        with pytest.raises(Exception, match=r"a chord .*coordination_url") as info:
            result.get(timeout=10)
    assert "CoordinationUnavailable" in f"{type(info.value).__name__} {info.value!r}"


def test_chord_and_revoke_work_with_coordination_url_naming_a_memory_store(
    store_only_app: Petiole,
) -> None:
    store_only_app.configure(coordination_url=f"memory://{uuid.uuid4().hex}")
    add, tsum = store_only_app.tasks["add"], store_only_app.tasks["tsum"]

    assert isinstance(store_only_app.coordination, MemoryBackend)
    with start_worker(store_only_app):
        result = chord([add.s(i, i) for i in range(5)], tsum.s()).apply_async()
        assert result.get(timeout=10) == 20

        late = add.apply_async((1, 2), countdown=30)
        store_only_app.revoke(late.id, terminate=True)
        assert late.state == "REVOKED"
        assert revocation.revoked(store_only_app, [late.id, result.id]) == {late.id: True}
        assert revocation.marker(store_only_app) is not None


def test_coordination_url_naming_a_store_only_backend_is_refused(
    store_only_app: Petiole,
) -> None:
    store_only_app.configure(coordination_url="storeonly://")
    with pytest.raises(ConfigError, match=r"coordination_url storeonly:// .*cannot coordinate"):
        store_only_app.coordination  # noqa: B018


def test_the_result_backend_coordinates_when_it_can(app: Petiole) -> None:
    assert app.coordination is app.backend

"""A worker that does not list msgpack in accept_content refuses its messages
before reading them: dead-lettered with a reason naming the content type."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from petiole_msgpack.serializer import MsgpackSerializer

from petiole import Petiole
from petiole.plugin_api import wait_until


@pytest.fixture
def petiole_config() -> dict[str, Any]:
    """Tasks are sent as msgpack, but the worker accepts JSON only."""
    store = f"memory://{uuid.uuid4().hex}"
    return {
        "broker_url": store,
        "backend_url": store,
        "task_serializer": "msgpack",
        "result_serializer": "json",
        "accept_content": ["json"],
    }


def test_a_worker_accepting_only_json_dead_letters_msgpack_without_reading_it(
    petiole_app: Petiole, petiole_worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bytes] = []
    loads = MsgpackSerializer.loads

    def spy(self: MsgpackSerializer, data: bytes) -> Any:
        read.append(data)
        return loads(self, data)

    monkeypatch.setattr(MsgpackSerializer, "loads", spy)
    ran: list[object] = []
    task = petiole_app.task(lambda *args: ran.append(args), name="msgpack.refused")

    task.delay(b"\x00", uuid.uuid4())

    assert wait_until(lambda: len(petiole_app.transport.dead_letters("default")) == 1, timeout_s=10)
    [letter] = petiole_app.transport.dead_letters("default")
    assert "content type 'application/x-msgpack' is not accepted" in letter.reason
    assert "accept_content=['json']" in letter.reason
    assert (ran, read) == ([], [])

"""A worker that does not list yaml in accept_content refuses its messages
before reading them: dead-lettered with a reason naming the content type."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from petiole_yaml.serializer import YamlSerializer

from petiole import Petiole
from petiole.plugin_api import wait_until


@pytest.fixture
def petiole_config() -> dict[str, Any]:
    """Tasks are sent as YAML, but the worker accepts JSON only."""
    store = f"memory://{uuid.uuid4().hex}"
    return {
        "broker_url": store,
        "backend_url": store,
        "task_serializer": "yaml",
        "result_serializer": "json",
        "accept_content": ["json"],
    }


def test_a_worker_accepting_only_json_dead_letters_yaml_without_reading_it(
    petiole_app: Petiole, petiole_worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bytes] = []
    loads = YamlSerializer.loads

    def spy(self: YamlSerializer, data: bytes) -> Any:
        read.append(data)
        return loads(self, data)

    monkeypatch.setattr(YamlSerializer, "loads", spy)
    ran: list[object] = []
    task = petiole_app.task(lambda *args: ran.append(args), name="yaml.refused")

    task.delay(b"\x00", uuid.uuid4())

    assert wait_until(lambda: len(petiole_app.transport.dead_letters("default")) == 1, timeout_s=10)
    [letter] = petiole_app.transport.dead_letters("default")
    assert "content type 'application/x-yaml' is not accepted" in letter.reason
    assert "accept_content=['json']" in letter.reason
    assert (ran, read) == ([], [])

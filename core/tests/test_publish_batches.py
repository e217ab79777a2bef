"""A group's members go out in one publish batch when the transport offers batches."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from petiole import Petiole, group
from petiole.transport import PublishesInBatches, publishing_in_batches


@pytest.fixture
def app() -> Iterator[Petiole]:
    url = f"memory://{uuid.uuid4().hex}"
    app = Petiole("batches", broker=url, backend=url, config_file="/dev/null")

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    yield app
    app.close()


def test_a_transport_without_batches_gets_a_block_that_changes_nothing(app: Petiole) -> None:
    assert not isinstance(app.transport, PublishesInBatches)
    with publishing_in_batches(app.transport):
        app.tasks["add"].delay(1, 1)
    assert app.transport.size("default") == 1


def test_a_groups_members_are_published_inside_one_batch(app: Petiole) -> None:
    transport: Any = app.transport
    inner_publish = transport.publish
    log: list[str] = []

    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        log.append("open")
        yield
        log.append("close")

    def publish(queue: str, payload: bytes, **options: Any) -> None:
        log.append("publish")
        inner_publish(queue, payload, **options)

    transport.batch, transport.publish = batch, publish
    assert isinstance(transport, PublishesInBatches)

    result = group(app.tasks["add"].s(i, i) for i in range(5)).apply_async()

    assert log == ["open", *["publish"] * 5, "close"]
    assert len(result.results) == 5
    assert transport.size("default") == 5

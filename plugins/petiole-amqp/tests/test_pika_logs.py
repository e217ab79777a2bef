"""A worker logs at INFO by default: pika's connection chatter and the 404s of the
plugin's own passive declares must not reach that log as noise or false warnings."""

from __future__ import annotations

import logging
import uuid

import pytest
from petiole_amqp.testing import RabbitServer

from petiole import Petiole


def test_connecting_and_asking_for_a_missing_queue_logs_nothing_from_pika_at_info(
    rabbit_server: RabbitServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = Petiole(
        "quiet-pika",
        broker=rabbit_server.url,
        backend=f"memory://{uuid.uuid4().hex}",
        config_file="/dev/null",
    )
    try:
        # A passive declare of a queue that does not exist: the broker closes the channel
        # with a 404, which size() answers as 0.
        assert app.transport.size(f"never-declared-{uuid.uuid4().hex[:8]}") == 0
    finally:
        app.close()
    from_pika = [r.getMessage() for r in caplog.records if r.name.startswith("pika")]
    assert from_pika == []

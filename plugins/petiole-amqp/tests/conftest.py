"""One RabbitMQ node for the whole test session (tests use unique queue names, so they
share it); the tests that restart or kill a node start their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_amqp.testing import RabbitServer
from pika.adapters.blocking_connection import BlockingChannel


@pytest.fixture(scope="session")
def rabbit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    server = RabbitServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server
    server.close()


@pytest.fixture
def channel(rabbit_server: RabbitServer) -> Iterator[BlockingChannel]:
    """A channel in confirm mode: every publish returns once the broker confirmed it."""
    connection = rabbit_server.connection()
    channel = connection.channel()
    channel.confirm_delivery()
    yield channel
    connection.close()

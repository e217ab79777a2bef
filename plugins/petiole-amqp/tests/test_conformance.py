"""The transport and consumption conformance suites against a real RabbitMQ node,
for each queue type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from petiole_amqp.testing import RabbitServer
from petiole_amqp.transport import create_transport

from petiole.testing import ConsumeSuite, TransportSuite
from petiole.transport import Transport

# Small enough that the suite's test at the limit stays quick.
_MAX_MESSAGE_BYTES = 1024 * 1024


class _OnRabbit:
    queue_type: ClassVar[str]
    # A level's TTL ends within milliseconds, but a delayed message then passes through
    # a dead-lettering hop (a Raft commit on quorum queues) and a polling reserve: on a
    # loaded two-core machine that took up to 0.6 s. And a queue's first delayed
    # message waits for its 22 levels to be declared (0.35-0.42 s on an idle node,
    # quorum), which the whole-second levels round: a 1 s delay on a node just
    # started arrived after more than 2 s once (a CI run).
    delay_precision_s = 1.5

    def make(self, server: RabbitServer) -> Transport:
        return create_transport(
            server.url,
            {
                "queue_type": self.queue_type,
                "max_message_bytes": _MAX_MESSAGE_BYTES,
                # Every test makes fresh queues, and none crashes the node: no need to
                # wait out RabbitMQ's window after creating a queue.
                "new_queue_settle_s": 0,
            },
        )

    @pytest.fixture
    def transport(self, rabbit_server: RabbitServer) -> Iterator[Transport]:
        transport = self.make(rabbit_server)
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, rabbit_server: RabbitServer) -> Iterator[Transport]:
        transport = self.make(rabbit_server)
        yield transport
        transport.close()


class TestQuorumTransport(_OnRabbit, TransportSuite):
    queue_type = "quorum"


class TestClassicTransport(_OnRabbit, TransportSuite):
    queue_type = "classic"


class TestQuorumConsume(_OnRabbit, ConsumeSuite):
    queue_type = "quorum"


class TestClassicConsume(_OnRabbit, ConsumeSuite):
    queue_type = "classic"

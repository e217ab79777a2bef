"""The transport conformance suite against moto's standalone SQS server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from petiole_sqs.testing import broker_url
from petiole_sqs.transport import create_transport

from petiole.testing import TransportSuite
from petiole.transport import Transport


class TestSqsTransport(TransportSuite):
    # SQS timers count whole seconds, and moto's long poll notices a message whose
    # delay or visibility timeout ran out only at its next one-second check.
    lease_s = 1.0
    delay_s = 1.0
    delay_precision_s = 1.0
    concurrency_messages = 100
    close_cannot_interrupt_reserve = (
        "an SQS long poll in flight (up to 20 s) cannot be cut short; reserve returns at its end"
    )

    @pytest.fixture
    def transport(self, sqs_endpoint: str) -> Iterator[Transport]:
        transport = create_transport(broker_url(sqs_endpoint), {})
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, sqs_endpoint: str) -> Iterator[Transport]:
        transport = create_transport(broker_url(sqs_endpoint), {})
        yield transport
        transport.close()

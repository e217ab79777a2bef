"""The example transport. Each method's contract is in petiole/transport.py;
the conformance suite (tests/test_conformance.py) checks them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from petiole.errors import ConfigError
from petiole.transport import DeadLetter, Delivery, Transport, TransportCapabilities

# import example_client  -- at module top, so a missing install fails loudly here


class ExampleTransport:
    # Declare honestly: the conformance suite runs what each capability implies.
    capabilities = TransportCapabilities(priorities=False, max_delay_s=None, ordered=True)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"connect_timeout_s"}
        if unknown:
            raise ConfigError(f"unknown example transport option(s): {', '.join(sorted(unknown))}")
        self.url = url

    # Translate the client library's exceptions at this edge:
    #     except example_client.Error as exc:
    #         raise TransportError(f"example broker {mask_url(self.url)}: {exc}") from exc

    def publish(
        self,
        queue: str,
        payload: bytes,
        *,
        message_id: str = "",
        delay_s: float = 0.0,
        priority: int = 0,
    ) -> None:
        raise NotImplementedError

    def reserve(
        self, queues: Sequence[str], *, max_messages: int, wait_s: float, lease_s: float
    ) -> list[Delivery]:
        raise NotImplementedError

    def ack(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def nack(self, delivery: Delivery, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        raise NotImplementedError

    def extend(self, delivery: Delivery, *, lease_s: float) -> bool:
        raise NotImplementedError

    def dead_letter(self, delivery: Delivery, *, reason: str) -> None:
        raise NotImplementedError

    def purge(self, queue: str) -> int:
        raise NotImplementedError

    def size(self, queue: str) -> int:
        raise NotImplementedError

    def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        raise NotImplementedError

    def requeue_dead_letters(self, queue: str, dead_letter_ids: Sequence[str] | None = None) -> int:
        raise NotImplementedError

    def purge_dead_letters(self, queue: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def create_transport(url: str, options: Mapping[str, Any]) -> Transport:
    return ExampleTransport(url, options)

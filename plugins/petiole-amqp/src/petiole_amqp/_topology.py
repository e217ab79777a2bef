"""What the transport declares in RabbitMQ, and how a delayed message finds its way.

For a Petiole queue ``Q``:

* ``Q``: the queue itself, durable, of the configured type. A quorum queue gets
  a delivery limit whose dead letters go to ``Q.petiole-dead``.
* ``Q.petiole-dead``: its dead letters, each with the reason in headers (a
  classic queue: see :func:`dead_queue_arguments`).
* ``Q.petiole-delay-NN``, NN = 00 .. levels-1: delay level queues, declared the
  first time ``Q`` gets a delayed message. Level ``k`` holds every message for
  exactly 2**k seconds (a queue TTL, so its messages expire in the order they
  came: no message waits behind a longer one), then RabbitMQ dead-letters it to
  the next hop. They are per destination so that ``size`` and ``purge`` of ``Q``
  see its delayed messages.

**Delays without the delayed-message plugin** (binary decomposition): a delay
of ``d`` whole seconds is written in binary, most significant bit first, as the
words of the routing key, followed by ``Q``: 11 s with 4 levels is
``1.0.1.1.Q``. There is one topic exchange per level, ``petiole.delay.L.k``
(L: the number of levels):

* a message whose bit ``k`` is 1 is routed to ``Q.petiole-delay-k`` (a binding
  per destination and level); that queue's dead letters go to exchange
  ``petiole.delay.L.(k-1)`` with the routing key unchanged;
* a message whose bit ``k`` is 0 passes straight to exchange
  ``petiole.delay.L.(k-1)`` (one exchange-to-exchange binding per level);
* at level 0 a message whose bit is 0 goes to ``Q`` (a binding per
  destination), and ``Q.petiole-delay-00`` dead-letters straight into ``Q``.

The publisher sends the message to the exchange of its highest set bit, so it
spends 2**k seconds in each level whose bit is set — ``d`` in all, at most
``levels`` hops, whatever ``d`` is.
"""

from __future__ import annotations

import math
from typing import Any

from petiole.errors import ConfigError

DEAD_SUFFIX = ".petiole-dead"
# The level count is in the name: the skip bindings' patterns depend on it, so
# transports with different delay_levels must not share exchanges.
DELAY_EXCHANGE = "petiole.delay.{levels}.{level}"
_DELAY_QUEUE = "{queue}.petiole-delay-{level:02d}"
# A routing key is at most 255 bytes; the delay bits take two bytes per level.
_MAX_ROUTING_KEY = 255

# Headers the transport reads and writes (RabbitMQ's own start with "x-" too).
RETURNS = "x-petiole-returns"  # deliveries before this copy was published
REASON = "x-petiole-reason"
DEAD_AT = "x-petiole-dead-at"
DEAD_ID = "x-petiole-dead-id"
DEAD_COUNT = "x-petiole-delivery-count"
# Broker headers a republished copy must not carry over.
BROKER_HEADERS = (
    "x-delivery-count",
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
)


def dead_queue(queue: str) -> str:
    return queue + DEAD_SUFFIX


def delay_queue(queue: str, level: int) -> str:
    return _DELAY_QUEUE.format(queue=queue, level=level)


def delay_exchange(level: int, levels: int) -> str:
    return DELAY_EXCHANGE.format(levels=levels, level=level)


def delay_seconds(delay_s: float) -> int:
    """Delays are whole seconds, rounded up (a delay at most 1 ms over a whole second
    is rounded down: float arithmetic on ETAs leaves such crumbs)."""
    if not delay_s > 0:  # NaN too
        return 0
    return max(1, math.ceil(delay_s - 1e-3))


def delay_route(queue: str, seconds: int, levels: int) -> tuple[str, str]:
    """The exchange and routing key that hold a message for ``queue`` ``seconds``
    (1 .. 2**levels - 1) before it enters ``queue``."""
    if not 0 < seconds < 2**levels:
        raise ValueError(f"a delay of {seconds} s does not fit in {levels} levels")
    bits = format(seconds, f"0{levels}b")
    key = ".".join(bits) + "." + queue
    return delay_exchange(seconds.bit_length() - 1, levels), key


def check_delay_destination(queue: str, levels: int) -> None:
    """A queue name delays can route to: topic routing treats the words ``*`` and
    ``#`` as wildcards, and a routing key is at most 255 bytes."""
    words = queue.split(".")
    if "*" in words or "#" in words:
        raise ConfigError(
            f"queue {queue!r} cannot take delayed messages on RabbitMQ: a word of its "
            "name is '*' or '#', which topic routing reads as a wildcard"
        )
    if len(queue.encode()) + 2 * levels > _MAX_ROUTING_KEY:
        raise ConfigError(
            f"queue name {queue!r} is too long for delayed messages on RabbitMQ: "
            f"at most {_MAX_ROUTING_KEY - 2 * levels} bytes with {levels} delay levels"
        )


def level_binding(queue: str, level: int, levels: int, bit: str) -> str:
    """The topic pattern matching messages for ``queue`` whose bit ``level`` is ``bit``."""
    return "*." * (levels - 1 - level) + bit + "." + "*." * level + queue


def skip_binding(level: int, levels: int) -> str:
    """The pattern matching every message whose bit ``level`` is 0 (any destination)."""
    return "*." * (levels - 1 - level) + "0.#"


def queue_arguments(queue: str, *, queue_type: str, delivery_limit: int) -> dict[str, Any]:
    """The arguments ``queue`` is declared with (a redeclaration must repeat them)."""
    if queue_type == "classic":
        return {"x-queue-type": "classic", "x-max-priority": 9}
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if delivery_limit:
        arguments.update(
            {
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_queue(queue),
            }
        )
    return arguments


def dead_queue_arguments() -> dict[str, Any]:
    """Dead letters live in a classic queue whatever the type of ``Q``: AMQP cannot
    peek, so listing them reads each and gives it back. A classic queue takes it
    back in its place, at once; a quorum queue would move it to its back when it
    gets to it (a listing right after would miss it) and count it as a delivery."""
    return {"x-queue-type": "classic"}


def delay_queue_arguments(
    queue: str, level: int, *, levels: int, queue_type: str
) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": queue_type,
        "x-message-ttl": 1000 * 2**level,
    }
    if level == 0:
        arguments.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue})
    else:
        arguments["x-dead-letter-exchange"] = delay_exchange(level - 1, levels)
    if queue_type == "quorum":
        # A quorum queue's own dead-lettering is at most once unless asked
        # otherwise; a delayed task must not vanish between two levels.
        arguments.update(
            {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        )
    return arguments

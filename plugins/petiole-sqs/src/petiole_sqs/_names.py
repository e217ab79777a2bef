"""Every SQS queue name the transport uses is built here, from a Petiole queue name.

``<queue_prefix><queue>`` holds the messages and ``<queue_prefix><queue><dead_letter_suffix>``
the dead letters; FIFO queues end in ``.fifo`` (SQS requires it). SQS allows 1-80
characters from letters, digits, ``-`` and ``_`` (plus the ``.fifo`` ending), so
other Petiole queue names are refused rather than silently mapped onto a name
another queue might also map to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from petiole.errors import TransportError
from petiole_sqs.options import SqsOptions

_VALID = re.compile(r"[A-Za-z0-9_-]+")
_MAX_NAME = 80
_FIFO = ".fifo"


@dataclass(frozen=True, slots=True)
class QueueNames:
    """The SQS names behind one Petiole queue."""

    queue: str  # the Petiole name
    live: str
    dead: str


def queue_names(queue: str, options: SqsOptions) -> QueueNames:
    """The SQS names for ``queue``; raises TransportError for a name SQS cannot hold."""
    base = f"{options.queue_prefix}{queue}"
    ending = _FIFO if options.fifo else ""
    longest = len(base) + len(options.dead_letter_suffix) + len(ending)
    dead = base + options.dead_letter_suffix
    if not queue or not _VALID.fullmatch(dead):
        raise TransportError(
            f"queue {queue!r} (SQS names {base!r} and {dead!r}) cannot be an SQS queue: "
            "SQS names use only letters, digits, '-' and '_'"
        )
    if longest > _MAX_NAME:
        raise TransportError(
            f"queue {queue!r} is too long for SQS: {dead + ending!r}"
            f" has {longest} characters, SQS allows {_MAX_NAME}"
        )
    return QueueNames(queue, base + ending, dead + ending)

"""pika's own log lines, kept to those a person running a worker can act on.

pika logs every connection step at INFO (a dozen lines per connection, each
worker process opening several), and logs at WARNING every channel the broker
closes — including the 404 of each passive declare this plugin makes to ask
whether a queue exists, which is an answer, not a problem. A worker logs at
INFO by default, so both would read as trouble on every start. What goes wrong
for real is reported by this plugin itself (``petiole_amqp`` logger, and the
errors it raises). A level set on the ``pika`` logger before this module is
imported is kept: ``logging.getLogger("pika").setLevel(logging.DEBUG)`` shows
everything again.
"""

from __future__ import annotations

import logging

_EXPECTED_CLOSE = "Received remote Channel.Close (404)"


class _ExpectedCloses(logging.Filter):
    """Drops pika's warning for a channel closed by a 404, which this plugin
    handles where it asked (a passive declare), or raises as its own error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and _EXPECTED_CLOSE in record.getMessage())


def quiet_pika() -> None:
    """pika's loggers at WARNING unless someone chose a level; expected closes dropped.
    Idempotent."""
    pika_logger = logging.getLogger("pika")
    if pika_logger.level == logging.NOTSET:
        pika_logger.setLevel(logging.WARNING)
    channel_logger = logging.getLogger("pika.channel")
    if not any(isinstance(f, _ExpectedCloses) for f in channel_logger.filters):
        channel_logger.addFilter(_ExpectedCloses())

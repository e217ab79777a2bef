"""moto's SQS server, with ReceiveMessage made atomic: one message, one receiver at a time.

Run as ``python -m petiole_sqs._moto_launcher -H 127.0.0.1 -p PORT`` (the arguments
are ``moto_server``'s); :func:`petiole_sqs.testing.moto_server` starts it that way.

Why: moto 5's ``SQSBackend.receive_message`` checks that a message is visible and
then marks it received (which hides it and adds one to its ApproximateReceiveCount)
with nothing holding the two steps together, and its server answers each request
on a thread of its own. Two concurrent receives can both find one message visible
and both hand it out, each counting a receive. SQS does not give a message in flight
to a second receiver, and a test server that does makes strict tests flaky: the
conformance suite then sees a payload delivered twice, or a first delivery whose
count says 2 (the second receive's copy was the one dropped).

The fix: each scan of a queue (moto's own receive with no wait) runs under one
lock, and a long poll waits between scans outside the lock, as moto's own loop
does (scan; if nothing, wait up to 1 s for a visible message; until the wait ends).
moto is otherwise unchanged. If moto's ``receive_message`` no longer has the
parameters this relies on, the server refuses to start rather than run unfixed.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time

from moto.server import main as moto_main
from moto.sqs.models import Message, SQSBackend

# moto's receive_message, as this module was written against (moto 5.x).
_EXPECTED_PARAMETERS = (
    "self",
    "queue_name",
    "count",
    "wait_seconds_timeout",
    "visibility_timeout",
    "message_attribute_names",
)
# How long moto's long poll waits for a visible message between two scans.
_SCAN_INTERVAL_S = 1

_moto_receive = SQSBackend.receive_message
_scan_lock = threading.Lock()


def receive_atomically(
    self: SQSBackend,  # installed as a method of SQSBackend
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Message]:
    """moto's receive, with no two scans (visible check + mark received) overlapping."""
    deadline = time.monotonic() + wait_seconds_timeout
    while True:
        with _scan_lock:
            found = _moto_receive(
                self, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
        if found or time.monotonic() >= deadline:
            return found
        self.get_queue(queue_name).wait_for_messages(_SCAN_INTERVAL_S)


def install() -> None:
    """Replace moto's ``SQSBackend.receive_message`` in this process.

    Raises RuntimeError when moto's method has other parameters than expected."""
    found = tuple(inspect.signature(_moto_receive).parameters)
    if found != _EXPECTED_PARAMETERS:
        raise RuntimeError(
            f"moto's SQSBackend.receive_message takes {found}, not {_EXPECTED_PARAMETERS}: "
            "petiole_sqs._moto_launcher must be updated for this moto version"
        )
    SQSBackend.receive_message = receive_atomically  # type: ignore[method-assign]


def main() -> None:
    install()
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()

"""The test server's fix: moto's ReceiveMessage made atomic (petiole_sqs._moto_launcher).

Plain moto can hand one message to two concurrent receives (each also counts a
receive), which made the conformance suite's concurrency tests flaky. The race is
a few microseconds wide, so these tests run moto's real SQS backend in-process
and hold the first receive inside it, right before it marks the message received,
while a second receive runs: the overlap that otherwise happens only by chance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, Queue, SQSBackend
from petiole_sqs import _moto_launcher

_QUEUE = "race"
_LEASE_S = 60
# Only bounds a hang if a receive never returns; nothing waits this long when all is well.
_HANG_S = 30.0


class _WatchedLock:
    """A lock that reports when a thread finds it held and has to wait."""

    def __init__(self, on_wait: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._on_wait = on_wait

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self._on_wait()
            self._lock.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._lock.release()


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> SQSBackend:
    """A fresh in-process moto SQS backend with the launcher's fix installed."""
    # Recorded first, so the fixture's teardown puts moto's own method back.
    monkeypatch.setattr(SQSBackend, "receive_message", SQSBackend.receive_message)
    _moto_launcher.install()
    sqs = SQSBackend("us-east-1", DEFAULT_ACCOUNT_ID)
    sqs.create_queue(_QUEUE)
    return sqs


def _receive(sqs: SQSBackend, found: list[Message]) -> None:
    found.extend(sqs.receive_message(_QUEUE, 10, 0, _LEASE_S))


def test_overlapping_receives_hand_a_message_to_one_of_them(
    backend: SQSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.send_message(_QUEUE, "only-once")
    first_inside = threading.Event()  # the first receive found the message visible
    second_ran_or_waits = threading.Event()
    release_first = threading.Event()
    moto_mark_received = Message.mark_received

    def mark_received(message: Message, visibility_timeout: int | None = None) -> None:
        if not first_inside.is_set():
            first_inside.set()
            release_first.wait(_HANG_S)
        moto_mark_received(message, visibility_timeout)

    monkeypatch.setattr(Message, "mark_received", mark_received)
    monkeypatch.setattr(_moto_launcher, "_scan_lock", _WatchedLock(second_ran_or_waits.set))
    first: list[Message] = []
    second: list[Message] = []

    def receive_second() -> None:
        try:
            _receive(backend, second)
        finally:
            second_ran_or_waits.set()

    first_thread = threading.Thread(target=_receive, args=(backend, first))
    first_thread.start()
    assert first_inside.wait(_HANG_S)
    second_thread = threading.Thread(target=receive_second)
    second_thread.start()
    # Without the fix the second receive runs to its end here, finding the message
    # still visible; with it, the second receive waits for the first's scan.
    assert second_ran_or_waits.wait(_HANG_S)
    release_first.set()
    first_thread.join(_HANG_S)
    second_thread.join(_HANG_S)

    handed_out = first + second
    assert [m.body for m in handed_out] == ["only-once"]
    assert [m.approximate_receive_count for m in handed_out] == [1]


def test_a_long_poll_waits_outside_the_lock_and_wakes_for_a_new_message(
    backend: SQSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiting = threading.Event()
    lock_held_while_waiting: list[bool] = []
    moto_wait = Queue.wait_for_messages

    def wait_for_messages(queue: Queue, timeout: int) -> None:
        lock_held_while_waiting.append(_moto_launcher._scan_lock.locked())
        waiting.set()
        moto_wait(queue, timeout)

    monkeypatch.setattr(Queue, "wait_for_messages", wait_for_messages)
    found: list[Message] = []
    poll = threading.Thread(target=lambda: found.extend(backend.receive_message(_QUEUE, 1, 20, 5)))
    poll.start()
    assert waiting.wait(_HANG_S)
    backend.send_message(_QUEUE, "late")
    poll.join(_HANG_S)

    assert [m.body for m in found] == ["late"]
    assert lock_held_while_waiting == [False] * len(lock_held_while_waiting)


def test_install_refuses_a_moto_whose_receive_message_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def receive_message(self: SQSBackend, queue_name: str, count: int) -> list[Message]:
        return []

    monkeypatch.setattr(_moto_launcher, "_moto_receive", receive_message)
    monkeypatch.setattr(SQSBackend, "receive_message", SQSBackend.receive_message)

    with pytest.raises(RuntimeError, match="must be updated for this moto version"):
        _moto_launcher.install()

"""What a supervised worker process tells its supervisor it holds (petiole.worker.held):
across a real fork, as the supervisor uses it."""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterator

import pytest

from petiole.transport import Delivery
from petiole.worker.held import REMEMBERED, HeldChannel, HeldReporter


@pytest.fixture
def channel() -> Iterator[HeldChannel]:
    made = HeldChannel()
    yield made
    made.close()


def in_child(channel: HeldChannel, act: Callable[[HeldReporter], None]) -> None:
    """Fork; the child takes its end of ``channel``, runs ``act`` and exits; wait for it."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            act(channel.reporter())
            code = 0
        finally:
            os._exit(code)
    channel.forked()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def deliveries(count: int, queue: str = "q", receipt_size: int = 8) -> list[Delivery]:
    return [
        Delivery(b"payload", queue, f"r{i}".ljust(receipt_size, "x"), i + 1, f"m{i}")
        for i in range(count)
    ]


def test_what_a_dead_process_reserved_and_was_not_running_is_unfinished(
    channel: HeldChannel,
) -> None:
    reserved = deliveries(5)

    def act(reporter: HeldReporter) -> None:
        reporter.reserved(reserved[:3])
        reporter.reserved(reserved[3:])
        reporter.running([reserved[1].receipt])

    in_child(channel, act)
    unfinished = channel.unfinished()
    expected = [d for d in reserved if d is not reserved[1]]
    assert [(d.queue, d.receipt, d.delivery_count, d.message_id) for d in unfinished] == [
        (d.queue, d.receipt, d.delivery_count, d.message_id) for d in expected
    ]
    assert all(d.payload == b"" for d in unfinished)  # payloads never cross


def test_a_reserve_larger_than_one_pipe_write_arrives_whole(channel: HeldChannel) -> None:
    reserved = deliveries(200, receipt_size=60)  # ~20 KB: many frames of <= PIPE_BUF

    in_child(channel, lambda reporter: reporter.reserved(reserved))
    assert [d.receipt for d in channel.unfinished()] == [d.receipt for d in reserved]


def test_the_supervisor_remembers_the_most_recent_deliveries(channel: HeldChannel) -> None:
    reserved = deliveries(REMEMBERED + 10)

    def act(reporter: HeldReporter) -> None:
        for start in range(0, len(reserved), 16):
            reporter.reserved(reserved[start : start + 16])

    pid = os.fork()
    if pid == 0:
        os._exit(0 if _quietly(lambda: act(channel.reporter())) else 1)
    channel.forked()
    while True:  # read as it arrives, as the supervisor's loop does, until the child ends
        select.select([channel.fd], [], [], 0.05)
        channel.read()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            break
    got = channel.unfinished()
    assert len(got) == REMEMBERED
    assert got[-1].receipt == reserved[-1].receipt


def _quietly(act: Callable[[], None]) -> bool:
    try:
        act()
    except Exception:
        return False
    return True


def test_a_full_pipe_drops_the_report_instead_of_blocking_the_worker(
    channel: HeldChannel,
) -> None:
    def act(reporter: HeldReporter) -> None:
        # Nobody reads: the pipe fills; every later report is dropped, none blocks.
        for _ in range(2000):
            reporter.reserved(deliveries(16, receipt_size=40))

    in_child(channel, act)
    unfinished = channel.unfinished()
    assert 0 < len(unfinished) <= REMEMBERED  # what fitted in the pipe


def test_a_process_running_more_than_its_page_holds_returns_nothing(
    channel: HeldChannel,
) -> None:
    reserved = deliveries(300, receipt_size=40)

    def act(reporter: HeldReporter) -> None:
        reporter.reserved(reserved)
        reporter.running(d.receipt for d in reserved)  # 12 KB of receipts: > one page

    in_child(channel, act)
    assert channel.unfinished() == []

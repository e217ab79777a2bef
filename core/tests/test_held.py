"""What a supervised worker process tells its supervisor it holds (petiole.worker.held):
written in a forked child, read by the parent after the child ended, as the
supervisor uses it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from petiole.transport import Delivery
from petiole.worker.held import HeldChannel, HeldReporter


@pytest.fixture
def channel() -> Iterator[HeldChannel]:
    made = HeldChannel()
    yield made
    made.close()


def in_child(channel: HeldChannel, act: Callable[[HeldReporter], None]) -> None:
    """Fork; the child runs ``act`` on its reporter and exits; wait for it."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            act(channel.reporter())
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def deliveries(count: int, receipt_size: int = 8) -> list[Delivery]:
    return [
        Delivery(b"payload", "q", f"r{i}".ljust(receipt_size, "x"), i + 1, f"m{i}")
        for i in range(count)
    ]


def described(got: list[Delivery]) -> list[tuple[str, str, int, str]]:
    return [(d.queue, d.receipt, d.delivery_count, d.message_id) for d in got]


def test_what_a_dead_process_held_and_was_not_running_is_unfinished(
    channel: HeldChannel,
) -> None:
    held = deliveries(5)

    def act(reporter: HeldReporter) -> None:
        reporter.held(held)
        reporter.running([held[1].receipt])

    in_child(channel, act)
    unfinished = channel.unfinished()
    assert described(unfinished) == described([d for d in held if d is not held[1]])
    assert all(d.payload == b"" for d in unfinished)  # payloads never cross


def test_each_snapshot_replaces_the_last(channel: HeldChannel) -> None:
    first, second = deliveries(3), deliveries(6)[3:]

    def act(reporter: HeldReporter) -> None:
        reporter.held(first)
        reporter.running([first[0].receipt])
        reporter.held(second)  # the first three were settled meanwhile
        reporter.running([])

    in_child(channel, act)
    assert described(channel.unfinished()) == described(second)


def test_a_process_that_told_nothing_left_nothing(channel: HeldChannel) -> None:
    in_child(channel, lambda reporter: None)
    assert channel.unfinished() == []


def test_holding_more_than_a_snapshot_describes_returns_nothing(channel: HeldChannel) -> None:
    def act(reporter: HeldReporter) -> None:
        reporter.held(deliveries(10))
        reporter.held(deliveries(2000, receipt_size=60))  # > 64 KB: unknown

    in_child(channel, act)
    assert channel.unfinished() == []  # not the stale ten: their leases decide


def test_running_more_than_the_page_holds_returns_nothing(channel: HeldChannel) -> None:
    held = deliveries(300, receipt_size=40)

    def act(reporter: HeldReporter) -> None:
        reporter.held(held)
        reporter.running([d.receipt for d in held])  # 12 KB of receipts: > a half page

    in_child(channel, act)
    assert channel.unfinished() == []


def test_a_nul_in_a_receipt_makes_the_snapshot_unknown(channel: HeldChannel) -> None:
    odd = Delivery(b"", "q", "receipt\0with a nul", 1, "m")

    in_child(channel, lambda reporter: reporter.held([*deliveries(2), odd]))
    assert channel.unfinished() == []  # fields cannot be told apart: leases decide


def test_a_nul_in_a_running_receipt_returns_nothing(channel: HeldChannel) -> None:
    held = deliveries(3)

    def act(reporter: HeldReporter) -> None:
        reporter.held(held)
        reporter.running(["running\0receipt"])  # cannot say which one runs

    in_child(channel, act)
    assert channel.unfinished() == []

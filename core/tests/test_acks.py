"""Batched acknowledgements: what the worker's AckBatcher sends, when, and how often."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from petiole import Petiole
from petiole._builtins.memory import MemoryTransport
from petiole.errors import TransportError
from petiole.testing import wait_until
from petiole.testing.in_thread import start_worker
from petiole.transport import Delivery, ack_many
from petiole.worker.acks import AckBatcher


class BatchingTransport(MemoryTransport):
    """The memory transport with an ``ack_many`` that records each batch's size."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.fail_next = False
        self.gate = threading.Event()
        self.gate.set()

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise TransportError("broker went away")
        self.batches.append(len(deliveries))
        for delivery in deliveries:
            self.ack(delivery)


def leased(transport: MemoryTransport, count: int, queue: str = "q") -> list[Delivery]:
    for index in range(count):
        transport.publish(queue, b"m%d" % index)
    return transport.reserve([queue], max_messages=count, wait_s=0, lease_s=60)


@pytest.fixture
def transport() -> BatchingTransport:
    return BatchingTransport()


@pytest.fixture
def counts() -> collections.Counter[str]:
    return collections.Counter()


@pytest.fixture
def batcher(transport: BatchingTransport, counts: collections.Counter[str]) -> Iterator[AckBatcher]:
    # A window far longer than any test: batches leave only when full or flushed.
    acks = AckBatcher(transport, counts, max_batch=10, window_s=60)
    acks.start()
    yield acks
    acks.close()


def test_a_full_batch_is_sent_at_once_in_one_request(
    batcher: AckBatcher, transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    for delivery in leased(transport, 10):
        batcher.add(delivery, "success")

    assert wait_until(lambda: counts["success"] == 10, timeout_s=5)
    assert transport.batches == [10]
    assert transport.size("q") == 0


def test_flush_sends_a_partial_batch_and_waits_for_it(
    batcher: AckBatcher, transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    for delivery in leased(transport, 3):
        batcher.add(delivery, "success")
    assert transport.size("q") == 3  # held back: the batch is neither full nor due

    assert batcher.flush(timeout_s=5)
    assert transport.batches == [3]
    assert transport.size("q") == 0
    assert counts["success"] == 3
    assert batcher.pending() == 0


def test_an_ack_leaves_once_its_window_has_passed(
    transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    acks = AckBatcher(transport, counts, max_batch=64, window_s=0.01)
    acks.start()
    try:
        (delivery,) = leased(transport, 1)
        acks.add(delivery, "success")
        assert wait_until(lambda: transport.size("q") == 0, timeout_s=5)
    finally:
        acks.close()
    assert transport.batches == [1]


def test_acks_added_while_a_batch_is_in_flight_form_the_next_batch(
    batcher: AckBatcher, transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    deliveries = leased(transport, 15)
    transport.gate.clear()  # the first request hangs until released
    for delivery in deliveries[:10]:
        batcher.add(delivery, "success")
    assert wait_until(lambda: batcher.pending() == 10, timeout_s=5)
    for delivery in deliveries[10:]:
        batcher.add(delivery, "success")
    transport.gate.set()

    assert batcher.flush(timeout_s=5)
    assert transport.batches == [10, 5]
    assert counts["success"] == 15


def test_close_sends_what_is_left_and_later_acks_go_one_by_one(
    transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    acks = AckBatcher(transport, counts, max_batch=10, window_s=60)
    acks.start()
    first, second = leased(transport, 2)
    acks.add(first, "success")
    acks.close()
    assert transport.batches == [1]

    acks.add(second, "failure")  # a task that ended during shutdown

    assert transport.size("q") == 0
    assert counts == {"success": 1, "failure": 1}


def test_a_failed_batch_is_logged_once_and_not_counted(
    batcher: AckBatcher,
    transport: BatchingTransport,
    counts: collections.Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport.fail_next = True
    for delivery in leased(transport, 4):
        batcher.add(delivery, "success")

    assert batcher.flush(timeout_s=5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "could not acknowledge 4 message(s) (broker went away)" in errors[0]
    assert counts["success"] == 0
    assert transport.size("q") == 4  # still leased: delivered again when the lease ends


def test_without_batching_add_acknowledges_before_returning(
    counts: collections.Counter[str],
) -> None:
    plain = MemoryTransport()  # no ack_many: the core falls back to one ack each
    acks = AckBatcher(plain, counts, max_batch=1, window_s=1.0)
    acks.start()
    (delivery,) = leased(plain, 1)

    acks.add(delivery, "success")

    assert plain.size("q") == 0
    assert counts["success"] == 1


def test_worker_acknowledges_in_batches_and_settles_all_at_stop() -> None:
    transport = BatchingTransport()
    app = Petiole("acks", broker="memory://", backend="memory://", ack_batch_window_s=60)
    app._transport = transport  # the app's broker, replaced by one with ack_many
    done = threading.Event()

    @app.task
    def noop(index: int) -> int:
        if index == 199:
            done.set()
        return index

    for index in range(200):
        noop.delay(index)
    with start_worker(app, pool="solo", prefetch_multiplier=64) as worker:
        assert done.wait(10)
    # 200 tasks, batches of at most 64, the last one flushed by the stop.
    assert sum(transport.batches) == 200
    assert len(transport.batches) <= 200 // 64 + 2
    assert transport.size("default") == 0
    assert worker.counts["success"] == 200


def test_a_collecting_ack_batch_does_not_hold_back_reserving(tmp_path: Path) -> None:
    # Prefetch 2, batches of 64 with a window longer than the test: were the acks
    # waiting for their batch counted against the prefetch, the worker would stop
    # after two tasks until the window ends.
    # (SQLite: a broker the worker reserves from; a pushing one counts for itself.)
    app = Petiole(
        "acks",
        broker=f"sqlite:///{tmp_path / 'broker.db'}",
        backend="memory://",
        ack_batch_window_s=60,
    )
    ran: list[int] = []

    @app.task
    def record(index: int) -> None:
        ran.append(index)

    for index in range(20):
        record.delay(index)
    with start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=2) as worker:
        assert wait_until(lambda: len(ran) == 20, timeout_s=10)
        assert worker.settler.acks.pending() == 20  # none sent yet
    assert worker.counts["success"] == 20  # the stop sent them


def test_a_transport_without_ack_many_is_never_batched(
    counts: collections.Counter[str],
) -> None:
    plain = MemoryTransport()  # one request per ack anyway: a thread would only add a backlog
    acks = AckBatcher(plain, counts, max_batch=64, window_s=60)
    acks.start()
    (delivery,) = leased(plain, 1)

    acks.add(delivery, "success")

    assert acks.batching is False
    assert plain.size("q") == 0
    acks.close()


def test_an_unexpected_error_is_logged_and_later_batches_still_go_out(
    batcher: AckBatcher,
    transport: BatchingTransport,
    counts: collections.Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = leased(transport, 2)
    original = transport.ack_many
    calls: list[int] = []

    def broken_once(deliveries: Sequence[Delivery]) -> None:
        calls.append(len(deliveries))
        if len(calls) == 1:
            raise ValueError("a plugin bug")
        original(deliveries)

    transport.ack_many = broken_once  # type: ignore[method-assign]
    batcher.add(first, "success")
    assert batcher.flush(timeout_s=5)
    batcher.add(second, "success")
    assert batcher.flush(timeout_s=5)

    assert "unexpected error in the transport" in caplog.text
    assert counts["success"] == 1
    assert transport.size("q") == 1  # the first is still leased: delivered again later


def test_the_one_by_one_fallback_acks_the_rest_when_one_fails() -> None:
    class Flaky(MemoryTransport):
        def ack(self, delivery: Delivery) -> None:
            if delivery.payload == b"m1":
                raise TransportError("refused")
            super().ack(delivery)

    flaky = Flaky()
    deliveries = leased(flaky, 3)

    with pytest.raises(TransportError, match="refused"):
        ack_many(flaky, deliveries)

    assert flaky.size("q") == 1  # only the refused one is left


def test_take_leaves_a_batch_that_is_neither_full_nor_due(
    transport: BatchingTransport, counts: collections.Counter[str]
) -> None:
    acks = AckBatcher(transport, counts, max_batch=3, window_s=60)
    acks.rides = True
    acks.start()
    first, second = leased(transport, 2)
    acks.add(first, "success")
    acks.add(second, "success")

    assert acks.take() == []  # a reserve now goes without them

    assert acks.pending() == 2
    acks.close()
    assert transport.batches == [2]
    assert counts["success"] == 2


def test_a_due_batch_waits_a_second_window_for_a_reserve_to_take_it(
    transport: BatchingTransport,
    counts: collections.Counter[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    window_s = 1.0
    acks = AckBatcher(transport, counts, max_batch=64, window_s=window_s)
    acks.rides = True
    acks.start()
    try:
        first, second = leased(transport, 2)
        acks.add(first, "success")
        # Due after one window; the batcher's own thread would send it after two.
        taken: list[tuple[Delivery, str]] = []
        assert wait_until(lambda: bool(taken.extend(acks.take()) or taken), timeout_s=10)
        assert [delivery for delivery, _ in taken] == [first]
        assert acks.pending() == 1  # in flight until the reserve's outcome is known
        acks.taken_sent(taken, TransportError("broker went away"))
        assert acks.pending() == 0
        assert counts["success"] == 0  # failed: not counted, and still leased
        assert transport.batches == []  # the thread sent nothing meanwhile
        assert "could not acknowledge 1 message(s) (broker went away)" in caplog.text

        acks.add(second, "success")  # no reserve comes for this one: the thread sends it
        assert wait_until(lambda: counts["success"] == 1, timeout_s=10 * window_s)
        assert transport.batches == [1]
    finally:
        acks.close()
    assert transport.size("q") == 1  # the one whose ride failed comes back with its lease

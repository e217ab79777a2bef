"""The rpc:// result backend on a real RabbitMQ node: the backend kit, and an app
whose results come back to the client that sent the tasks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from petiole_amqp.rpc import RpcBackend, create_backend
from petiole_amqp.testing import RabbitServer

from petiole import Petiole, chord, states
from petiole.backend import RepliesToSender, ResultBackend, ResultRecord
from petiole.coordination import CoordinationUnavailable
from petiole.errors import ConfigError
from petiole.testing import ResultBackendSuite, wait_until
from petiole.testing.in_thread import InThread, start_worker


def rpc_url(server: RabbitServer) -> str:
    return "rpc" + server.url.removeprefix("amqp")


class TestRpcBackend(ResultBackendSuite):
    # One round trip through RabbitMQ before a record is seen by get().
    wait_precision_s = 1.0

    @pytest.fixture
    def backend(self, rabbit_server: RabbitServer) -> Iterator[ResultBackend]:
        backend = create_backend(rpc_url(rabbit_server), {})
        yield backend
        backend.close()


@pytest.fixture
def app(rabbit_server: RabbitServer) -> Iterator[Petiole]:
    app = Petiole(
        "rpc-test",
        broker=rabbit_server.url,
        backend="rpc://",
        config_file="/dev/null",
    )

    @app.task(name="rpc.add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="rpc.total")
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task(name="rpc.fail")
    def fail() -> None:
        raise ValueError("broken on purpose")

    @app.task(name="rpc.reply_to", bind=True)
    def reply_to(self: Any) -> str | None:
        return self.request.reply_to  # type: ignore[no-any-return]

    @app.task(name="rpc.slow", bind=True)
    def slow(self: Any, seconds: float) -> str:
        time.sleep(seconds)
        return self.request.id  # type: ignore[no-any-return]

    yield app
    app.close()


def test_bare_rpc_url_replies_through_the_broker(app: Petiole, rabbit_server: RabbitServer) -> None:
    backend = app.backend
    assert isinstance(backend, RpcBackend)
    assert backend.target.hosts == ((("127.0.0.1", rabbit_server.port)),)
    assert isinstance(backend, RepliesToSender)


def test_bare_rpc_url_with_another_broker_names_the_form_to_use() -> None:
    app = Petiole(
        "rpc-redis", broker="redis://127.0.0.1:1/0", backend="rpc://", config_file="/dev/null"
    )
    with pytest.raises(ConfigError, match=r"rpc://user:password@host:5672/vhost"):
        app.backend  # noqa: B018 - creating it is the check
    app.close()


def test_results_and_failures_come_back_to_the_sender(app: Petiole) -> None:
    with start_worker(app):
        sums = [app.tasks["rpc.add"].delay(i, i) for i in range(20)]
        failed = app.tasks["rpc.fail"].delay()
        assert [r.get(timeout=10) for r in sums] == [2 * i for i in range(20)]
        with pytest.raises(ValueError, match="broken on purpose"):
            failed.get(timeout=10)
        assert failed.state == states.FAILURE


def test_the_message_carries_the_reply_address_and_results_wait_for_a_worker(
    app: Petiole,
) -> None:
    backend = app.backend
    assert isinstance(backend, RpcBackend)
    result = app.tasks["rpc.reply_to"].delay()
    # No worker yet: nothing has come back.
    assert result.state == states.PENDING
    with start_worker(app):
        assert result.get(timeout=10) == backend.reply_address()


def test_a_wait_is_woken_by_the_reply_without_polling(app: Petiole) -> None:
    with start_worker(app):
        result = app.tasks["rpc.slow"].delay(0.5)
        waiter = InThread(lambda: (result.get(timeout=10), time.time()))
        value, woke_at = waiter.result(timeout_s=15)
    assert value == result.id
    record = app.backend.get(result.id)
    assert record is not None
    assert record.date_done is not None
    # Woken a moment after the worker sent the result, not at a poll interval.
    assert 0 <= woke_at - record.date_done < 0.5


def test_only_the_sender_reads_a_result(app: Petiole, rabbit_server: RabbitServer) -> None:
    other = create_backend(rpc_url(rabbit_server), {})
    try:
        with start_worker(app):
            result = app.tasks["rpc.add"].delay(2, 2)
            assert result.get(timeout=10) == 4
        assert other.get(result.id) is None
        assert other.wait([result.id], timeout_s=0.5) == {}
    finally:
        other.close()


def test_group_results_come_back(app: Petiole) -> None:
    from petiole import group

    add = app.tasks["rpc.add"]
    with start_worker(app):
        assert group(add.s(i, 1) for i in range(10)).apply_async().get(timeout=15) == [
            i + 1 for i in range(10)
        ]


def test_a_chord_without_a_coordination_store_names_the_setting(app: Petiole) -> None:
    add = app.tasks["rpc.add"]
    with pytest.raises(CoordinationUnavailable, match="coordination_url"):
        chord([add.s(1, 1), add.s(2, 2)], add.s(0)).apply_async()


def test_a_chord_joins_through_the_coordination_store_and_its_result_comes_back(
    app: Petiole,
) -> None:
    app.configure(coordination_url=f"memory://{uuid.uuid4().hex}")
    add, total = app.tasks["rpc.add"], app.tasks["rpc.total"]
    with start_worker(app, concurrency=4):
        result = chord([add.s(i, i) for i in range(50)], total.s()).apply_async()
        assert result.get(timeout=30) == sum(2 * i for i in range(50))


def test_revoke_needs_a_coordination_store_and_names_the_setting(app: Petiole) -> None:
    with pytest.raises(CoordinationUnavailable, match="coordination_url"):
        app.revoke("some-task-id")


def test_a_record_for_a_client_that_is_gone_is_dropped(rabbit_server: RabbitServer) -> None:
    sender = create_backend(rpc_url(rabbit_server), {"reply_expires_s": 1})
    worker_side = create_backend(rpc_url(rabbit_server), {})
    try:
        address = sender.reply_address()
        sender.close()  # its queue goes 1 s after its consumer did
        record = ResultRecord(
            "t-gone", states.SUCCESS, b"1", date_done=time.time(), reply_to=address
        )
        assert wait_until(lambda: _gone(rabbit_server, address), timeout_s=10)
        worker_side.store(record, ttl_s=None)  # no error: nobody could read it
    finally:
        worker_side.close()


def test_close_wakes_a_waiting_wait(rabbit_server: RabbitServer) -> None:
    backend = create_backend(rpc_url(rabbit_server), {})
    backend.reply_address()
    waiter = InThread(lambda: backend.wait(["never"], timeout_s=None))
    backend.close()
    assert waiter.result(timeout_s=5) == {}


def _gone(server: RabbitServer, queue: str) -> bool:
    return queue not in server.ctl("list_queues", "name")

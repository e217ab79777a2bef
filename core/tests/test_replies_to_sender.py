"""Results delivered to their sender (``RepliesToSender``): the core's part of the routing.

A backend that records where each record was addressed stands in for ``rpc://``
(petiole-amqp tests the real one): the sender puts its reply address in each
task's ``reply_to`` header, a task sent from inside a task inherits its
parent's, and the worker addresses every record of a task to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from core_helpers import ResultsInMemory

from petiole import Petiole, chord, group, hookimpl
from petiole.backend import BackendCapabilities, RepliesToSender, ResultRecord
from petiole.errors import ResultBackendError
from petiole.testing.in_thread import start_worker


class AddressedBackend(ResultsInMemory):
    """Keeps each record with the address it was sent to."""

    capabilities = BackendCapabilities(push_wait=True, replies_to_sender=True)

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.sent_to: list[tuple[str, str, str | None]] = []  # (task id, state, reply_to)

    def reply_address(self) -> str:
        return self.address

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        self.sent_to.append((record.task_id, record.state, record.reply_to))
        if record.reply_to is None:
            return  # as rpc:// does: nobody to send it to (a group's own record)
        super().store(record, ttl_s=ttl_s)


def _factory(url: str, options: Mapping[str, Any]) -> AddressedBackend:
    return AddressedBackend(f"reply-of:{url}")


_factory.address_from_broker = True  # type: ignore[attr-defined]
_factory.replies_to_sender = True  # type: ignore[attr-defined]


class _Plugin:
    @hookimpl
    def petiole_result_backends(self) -> dict[str, Any]:
        return {"addressed": _factory}


@pytest.fixture
def app() -> Iterator[Petiole]:
    broker = f"memory://{uuid.uuid4().hex}"
    app = Petiole("test", broker=broker, backend="addressed://", config_file="/dev/null")
    app.register_plugin(_Plugin(), "addressed")

    @app.task(name="reply_to", bind=True)
    def reply_to(self: Any) -> str | None:
        return self.request.reply_to  # type: ignore[no-any-return]

    @app.task(name="spawn", bind=True)
    def spawn(self: Any) -> str:
        return app.tasks["reply_to"].delay().id

    @app.task(name="fail")
    def fail() -> None:
        raise ValueError("on purpose")

    app.configure(track_started=True)
    yield app
    app.close()


def backend_of(app: Petiole) -> AddressedBackend:
    backend = app.backend
    assert isinstance(backend, AddressedBackend)
    assert isinstance(backend, RepliesToSender)
    return backend


def test_a_bare_scheme_hands_the_factory_the_broker_url(app: Petiole) -> None:
    assert backend_of(app).address == f"reply-of:{app.settings.broker_url}"


def test_every_record_of_a_task_is_addressed_to_its_sender(app: Petiole) -> None:
    backend = backend_of(app)
    with start_worker(app):
        ok = app.tasks["reply_to"].delay()
        failed = app.tasks["fail"].delay()
        assert ok.get(timeout=10) == backend.address
        with pytest.raises(ValueError, match="on purpose"):
            failed.get(timeout=10)
    states_sent = {(task_id, state): to for task_id, state, to in backend.sent_to}
    assert states_sent[(ok.id, "STARTED")] == backend.address
    assert states_sent[(ok.id, "SUCCESS")] == backend.address
    assert states_sent[(failed.id, "FAILURE")] == backend.address


def test_a_workflow_continues_to_its_senders_address_a_plain_child_to_the_workers(
    app: Petiole,
) -> None:
    backend = backend_of(app)
    with start_worker(app):
        # The first step's message carries another client's address: the chain's next
        # step (sent by the worker, continuing the workflow) goes there too...
        chained = (app.tasks["reply_to"].s() | app.tasks["reply_to"].si()).apply_async(
            headers={"reply_to": "the-original-client"}
        )
        assert chained.get(timeout=10) == "the-original-client"
        # ...while a task sent by a task's own code is the worker process's to wait for.
        sent = app.send_task("spawn", headers={"reply_to": "the-original-client"})
        child_id = sent.get(timeout=10)
        assert backend.wait([child_id], timeout_s=10)[child_id].state == "SUCCESS"
    assert (chained.id, "SUCCESS", "the-original-client") in backend.sent_to
    assert (child_id, "SUCCESS", backend.address) in backend.sent_to


def test_a_store_backend_gets_no_reply_address(tmp_path: Any) -> None:
    url = f"memory://{uuid.uuid4().hex}"
    app = Petiole("plain", broker=url, backend=url, config_file="/dev/null")

    @app.task(name="reply_to", bind=True)
    def reply_to(self: Any) -> str | None:
        return self.request.reply_to  # type: ignore[no-any-return]

    try:
        with start_worker(app):
            assert app.tasks["reply_to"].delay().get(timeout=10) is None
    finally:
        app.close()


def test_chord_members_leave_their_values_for_the_callback_in_the_coordination_store(
    app: Petiole,
) -> None:
    app.configure(coordination_url=f"memory://{uuid.uuid4().hex}")

    @app.task(name="square")
    def square(x: int) -> int:
        return x * x

    @app.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    with start_worker(app):
        # No worker can read the group's record (it was sent to nobody): the callback
        # gets the values the members left in the coordination store.
        result = chord(group(square.s(i) for i in range(6)), total.s()).apply_async()
        assert result.get(timeout=10) == sum(i * i for i in range(6))
    assert not any(task_id == result.id for task_id, _, to in backend_of(app).sent_to if to is None)


class _DownStorePlugin:
    """A result store whose server is down: creating it fails, as petiole-redis's does."""

    @hookimpl
    def petiole_result_backends(self) -> dict[str, Any]:
        def down(url: str, options: Mapping[str, Any]) -> AddressedBackend:
            raise ResultBackendError("cannot connect to the store (it is down)")

        return {"downstore": down}


def test_sending_never_creates_a_store_backend() -> None:
    app = Petiole(
        "down",
        broker=f"memory://{uuid.uuid4().hex}",
        backend="downstore://",
        config_file="/dev/null",
    )
    app.register_plugin(_DownStorePlugin(), "downstore")
    try:
        sent = app.send_task("anything", args=(1,))
        assert app.transport.size("default") == 1
        with pytest.raises(ResultBackendError, match="it is down"):
            sent.get(timeout=1)
    finally:
        app.close()

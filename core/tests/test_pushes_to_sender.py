"""Records pushed to a listening sender (``PushesToSender``): the core's part.

A store that records each record's address stands in for petiole-redis (whose
tests show the push on a real server): the sender puts the calling thread's
listening address, when it has one, in each task's ``reply_to`` header; the
worker addresses the task's records to it; a store nobody opened yet is not
opened by sending.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from core_helpers import ResultsInMemory

from petiole import Petiole, hookimpl
from petiole.backend import PushesToSender, ResultRecord
from petiole.testing.in_thread import InThread, start_worker


class ListeningStore(ResultsInMemory):
    """A memory store whose threads listen once they waited; keeps each record's address."""

    def __init__(self) -> None:
        super().__init__()
        self.addressed: list[tuple[str, str, str | None]] = []  # (task id, state, reply_to)
        self.asked: list[str] = []  # the task ids listening_address was asked for
        self._listening = threading.local()

    def listening_address(self, task_id: str) -> str | None:
        self.asked.append(task_id)
        return getattr(self._listening, "address", None)

    def store(self, record: ResultRecord, *, ttl_s: float | None) -> None:
        self.addressed.append((record.task_id, record.state, record.reply_to))
        super().store(record, ttl_s=ttl_s)

    def wait(self, task_ids: Sequence[str], *, timeout_s: float | None) -> dict[str, ResultRecord]:
        self._listening.address = f"thread-{threading.get_ident()}"
        return super().wait(task_ids, timeout_s=timeout_s)


class _Plugin:
    @hookimpl
    def petiole_result_backends(self) -> dict[str, Any]:
        def factory(url: str, options: Mapping[str, Any]) -> ListeningStore:
            return ListeningStore()

        return {"listening": factory}


@pytest.fixture
def app() -> Iterator[Petiole]:
    broker = f"memory://{uuid.uuid4().hex}"
    app = Petiole("test", broker=broker, backend="listening://", config_file="/dev/null")
    app.register_plugin(_Plugin(), "listening")

    @app.task(name="reply_to", bind=True)
    def reply_to(self: Any) -> str | None:
        return self.request.reply_to  # type: ignore[no-any-return]

    @app.task(name="no_result", bind=True, ignore_result=True)
    def no_result(self: Any) -> str | None:
        return self.request.reply_to  # type: ignore[no-any-return]

    yield app
    app.close()


def store_of(app: Petiole) -> ListeningStore:
    store = app.backend
    assert isinstance(store, ListeningStore)
    assert isinstance(store, PushesToSender)
    return store


def test_sending_opens_no_store_and_addresses_nothing_before_one_is_open(app: Petiole) -> None:
    result = app.tasks["reply_to"].delay()
    assert app.backend_if_open is None
    with start_worker(app):
        assert result.get(timeout=10) is None


def test_a_thread_that_listens_gets_its_tasks_records_addressed_to_it(app: Petiole) -> None:
    store = store_of(app)
    with start_worker(app):
        first = app.tasks["reply_to"].delay()
        assert first.get(timeout=10) is None  # not listening yet when it was sent
        address = store.listening_address("any")
        assert address is not None
        second = app.tasks["reply_to"].delay()
        assert second.get(timeout=10) == address
    records = {(task_id, state): to for task_id, state, to in store.addressed}
    assert records[(second.id, "SUCCESS")] == address
    assert records[(first.id, "SUCCESS")] is None


def test_another_thread_that_never_waited_sends_no_address(app: Petiole) -> None:
    store = store_of(app)
    with start_worker(app):
        app.tasks["reply_to"].delay().get(timeout=10)  # this thread listens now
        assert store.listening_address("any") is not None
        other = InThread(lambda: app.tasks["reply_to"].delay()).result(timeout_s=10)
        assert other.get(timeout=10) is None


def test_a_reply_to_the_caller_gives_wins(app: Petiole) -> None:
    store_of(app)
    with start_worker(app):
        app.tasks["reply_to"].delay().get(timeout=10)
        chosen = app.tasks["reply_to"].apply_async(headers={"reply_to": "chosen"})
        assert chosen.get(timeout=10) == "chosen"


def test_the_store_is_asked_for_the_address_of_the_task_being_sent(app: Petiole) -> None:
    store = store_of(app)
    with start_worker(app):
        app.tasks["reply_to"].delay().get(timeout=10)
        sent = app.tasks["reply_to"].delay()
        assert sent.get(timeout=10) is not None
    assert store.asked[-1] == sent.id


def test_a_task_whose_result_is_ignored_is_not_addressed(app: Petiole) -> None:
    """Its successful run stores nothing to push: the address is kept for the next
    task that does (a store may push to one task of a thread's at a time)."""
    store = store_of(app)
    with start_worker(app):
        app.tasks["reply_to"].delay().get(timeout=10)  # this thread listens now
        asked = len(store.asked)
        app.tasks["no_result"].delay()
        app.tasks["reply_to"].apply_async(ignore_result=True)
        assert len(store.asked) == asked
        kept = app.tasks["no_result"].apply_async(ignore_result=False)
        assert store.asked[-1] == kept.id
        assert kept.get(timeout=10) is not None

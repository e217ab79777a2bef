"""The result API a Celery user reaches for: ``AsyncResult`` (``info``, ``wait``,
``collect``, ``then``, ``maybe_throw``, ...), ``ResultSet`` and ``GroupResult``.

Most tests run a worker in threads of this process on the in-memory app, whose
backend pushes; the tests of ``interval`` use SQLite, which polls, and one
runs its worker in another process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import run_python

from petiole import GroupResult, Petiole, group, states
from petiole._builtins.memory import MemoryBackend
from petiole.backend import ResultRecord
from petiole.errors import ResultTimeout, TaskRevoked
from petiole.result import AsyncResult, EagerResult, ResultSet, result_from_tuple
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread, start_worker
from petiole.worker import Worker

NOWHERE = "nowhere"  # a queue no worker in these tests consumes


@pytest.fixture
def gate() -> threading.Event:
    """Opens the ``gated`` task."""
    return threading.Event()


@pytest.fixture
def tasks(app: Petiole, gate: threading.Event) -> dict[str, Any]:
    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="fail")
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(name="gated")
    def gated() -> str:
        assert gate.wait(10), "the test never opened the gate"
        return "opened"

    @app.task(name="fan_out")
    def fan_out(n: int) -> int:
        for i in range(n):
            add.delay(i, i)
        return n

    return {"add": add, "fail": fail, "gated": gated, "fan_out": fan_out}


@pytest.fixture
def worker(app: Petiole, tasks: dict[str, Any]) -> Iterator[Worker]:
    with start_worker(app, concurrency=4) as running:
        yield running


def memory_backend(app: Petiole) -> MemoryBackend:
    backend = app.backend
    assert isinstance(backend, MemoryBackend)
    return backend


def store_state(app: Petiole, task_id: str, state: str, value: Any, **meta: Any) -> None:
    serializer = app.result_serializer
    app.store_result(
        ResultRecord(task_id, state, serializer.dumps(value), serializer.content_type, meta=meta)
    )


# -- reading one result ------------------------------------------------------------------------


def test_info_and_result_are_the_return_value_once_successful(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(2, 3)
    assert result.get(timeout=10) == 5
    assert result.info == result.result == 5


def test_info_reads_what_a_task_stored_with_a_state_of_its_own(app: Petiole) -> None:
    store_state(app, "t-progress", "PROGRESS", {"current": 3, "total": 10})
    result = app.AsyncResult("t-progress")
    assert result.state == "PROGRESS"
    assert result.info == {"current": 3, "total": 10}
    assert not result.ready()


def test_info_of_a_failed_task_is_its_exception(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["fail"].delay("broken")
    with pytest.raises(ValueError, match="broken"):
        result.get(timeout=10)
    assert isinstance(result.info, ValueError)
    assert str(result.info) == "broken"
    assert "ValueError: broken" in (result.traceback or "")
    assert result.date_done is not None
    assert result.date_done <= time.time()


def test_get_without_propagate_returns_the_exception(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    value = tasks["fail"].delay("returned").get(timeout=10, propagate=False)
    assert isinstance(value, ValueError)
    assert str(value) == "returned"


def test_get_without_propagate_returns_a_revocation_as_task_revoked(app: Petiole) -> None:
    store_state(app, "t-revoked", states.REVOKED, {"message": "not needed"})
    value = app.AsyncResult("t-revoked").get(timeout=1, propagate=False)
    assert isinstance(value, TaskRevoked)
    assert "not needed" in str(value)


def test_wait_is_get(app: Petiole, tasks: dict[str, Any], worker: Worker) -> None:
    assert tasks["add"].delay(1, 1).wait(timeout=10) == 2
    with pytest.raises(ResultTimeout):
        app.AsyncResult("never-sent").wait(timeout=0.1)


def test_get_calls_back_with_the_id_and_value_before_returning(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    seen: list[tuple[str, Any]] = []
    result = tasks["add"].delay(4, 4)
    assert result.get(timeout=10, callback=lambda i, v: seen.append((i, v))) == 8
    assert seen == [(result.id, 8)]


def test_get_accepts_celerys_options_that_change_nothing_here(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(1, 2)
    options = {"no_ack": False, "follow_parents": False, "disable_sync_subtasks": False}
    assert result.get(timeout=10, **options) == 3
    assert result.get(timeout=10, no_ack=True, follow_parents=True) == 3


def test_maybe_throw_raises_a_failure_without_waiting(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    failed = tasks["fail"].delay("thrown")
    failed.get(timeout=10, propagate=False)
    with pytest.raises(ValueError, match="thrown"):
        failed.maybe_throw()
    assert isinstance(failed.maybe_throw(propagate=False), ValueError)
    pending = tasks["add"].apply_async((1, 1), queue=NOWHERE)
    seen: list[tuple[str, Any]] = []
    assert pending.maybe_throw(callback=lambda i, v: seen.append((i, v))) is None
    assert seen == [(pending.id, None)]


def test_name_worker_retries_and_queue_are_read_from_the_record(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    sent = tasks["add"].delay(1, 1)
    sent.get(timeout=10)
    found = app.AsyncResult(sent.id)  # knows nothing but the id
    assert found.name == "add"
    assert found.worker == worker.hostname
    assert found.retries == 0
    assert found.queue == app.settings.default_queue


def test_args_and_kwargs_are_none_unless_the_record_carries_them(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    ran = tasks["add"].delay(1, 1)
    ran.get(timeout=10)
    assert (ran.args, ran.kwargs) == (None, None)
    store_state(app, "t-extended", states.SUCCESS, 3, args=[1, 2], kwargs={"z": 0})
    assert app.AsyncResult("t-extended").args == [1, 2]
    assert app.AsyncResult("t-extended").kwargs == {"z": 0}


def test_exists_tells_a_stored_record_from_none(app: Petiole) -> None:
    store_state(app, "t-stored", states.SUCCESS, 1)
    assert app.AsyncResult("t-stored").exists()
    assert not app.AsyncResult("t-never").exists()


def test_a_result_equals_another_handle_of_its_task_and_its_id(app: Petiole) -> None:
    result = app.AsyncResult("t-1")
    assert result == AsyncResult("t-1", app) == "t-1"
    assert str(result) == "t-1"
    assert len({result, AsyncResult("t-1", app)}) == 1


# -- interval: ignored where the store pushes, a poll period where it polls -------------------


def test_get_interval_is_ignored_by_a_backend_that_pushes(
    app: Petiole, tasks: dict[str, Any], gate: threading.Event, worker: Worker
) -> None:
    result = tasks["gated"].delay()
    waiting = InThread(lambda: result.get(timeout=30, interval=3600))
    # Blocked in the backend's wait, to be woken by the store: not sleeping an hour.
    assert wait_until(lambda: memory_backend(app).results.waiting == 1, timeout_s=10)
    gate.set()
    assert waiting.result(timeout_s=20) == "opened"


def test_get_interval_must_be_positive(app: Petiole) -> None:
    with pytest.raises(ValueError, match="interval must be a positive number"):
        app.AsyncResult("t-1").get(timeout=1, interval=0)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'petiole.db'}"


@pytest.fixture
def sqlite_app(sqlite_url: str) -> Iterator[Petiole]:
    app = Petiole("test", broker=sqlite_url, backend=sqlite_url, config_file="/dev/null")
    yield app
    app.close()


def test_get_interval_is_the_time_between_reads_of_a_store_that_polls(
    sqlite_app: Petiole, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = sqlite_app.backend
    assert not backend.capabilities.push_wait
    reads: list[float] = []
    get_many = backend.get_many

    def counted(task_ids: Any) -> dict[str, ResultRecord]:
        reads.append(time.monotonic())
        return get_many(task_ids)

    monkeypatch.setattr(backend, "get_many", counted)
    with pytest.raises(ResultTimeout):
        sqlite_app.AsyncResult("never-sent").get(timeout=0.5, interval=0.2)
    # At 0, 0.2, 0.4 and 0.5 s at most (the backend's own wait starts at 5 ms and doubles).
    assert 1 <= len(reads) <= 4


_SQLITE_WORKER = """
    import sys
    from petiole import Petiole
    from petiole.testing.in_thread import start_worker
    app = Petiole("child", broker=sys.argv[1], backend=sys.argv[1], config_file="/dev/null")

    @app.task(name="add")
    def add(x, y):
        return x + y

    with start_worker(app, concurrency=2):
        print("ready", flush=True)
        sys.stdin.readline()
"""


def test_results_of_a_worker_in_another_process_arrive_by_polling(
    sqlite_app: Petiole, sqlite_url: str
) -> None:
    child = run_python(_SQLITE_WORKER, sqlite_url)
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        single = sqlite_app.send_task("add", (2, 2))
        ran_in: list[str] = []
        single.then(lambda r: ran_in.append(threading.current_thread().name))
        assert single.get(timeout=30, interval=0.05) == 4
        assert ran_in == [threading.current_thread().name]
        members = ResultSet(sqlite_app.send_task("add", (i, i)) for i in range(5))
        assert members.join_native(timeout=30, interval=0.05) == [0, 2, 4, 6, 8]
        assert members.join(timeout=30) == [0, 2, 4, 6, 8]
    finally:
        child.stdin.close()
        assert child.wait(timeout=60) == 0


# -- then() ---------------------------------------------------------------------------------


def test_then_runs_in_the_thread_that_waits_before_its_get_returns(
    app: Petiole, tasks: dict[str, Any], gate: threading.Event, worker: Worker
) -> None:
    result = tasks["gated"].delay()
    events: list[str] = []
    result.then(lambda r: events.append(f"callback in {threading.current_thread().name}"))

    def wait() -> None:
        result.get(timeout=30)
        events.append("get returned")

    waiting = InThread(wait)
    assert wait_until(lambda: memory_backend(app).results.waiting == 1, timeout_s=10)
    gate.set()
    waiting.result(timeout_s=20)
    assert events == ["callback in petiole-test-in-thread", "get returned"]


def test_then_on_a_handle_known_ready_runs_at_once_in_the_calling_thread(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(1, 1)
    result.get(timeout=10)
    ran_in: list[threading.Thread] = []
    assert result.then(lambda r: ran_in.append(threading.current_thread())) is result
    assert ran_in == [threading.current_thread()]


def test_then_waits_for_a_read_of_the_handle_no_thread_runs_it(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(1, 1)
    called: list[AsyncResult] = []
    result.then(called.append)
    app.AsyncResult(result.id).get(timeout=10)  # another handle: the task is done
    assert called == []
    assert result.ready()
    assert called == [result]


def test_then_runs_once_however_many_threads_see_the_task_ready(
    app: Petiole, tasks: dict[str, Any], gate: threading.Event, worker: Worker
) -> None:
    result = tasks["gated"].delay()
    calls: list[str] = []
    result.then(lambda r: calls.append(threading.current_thread().name))
    waiters = [InThread(lambda: result.get(timeout=30)) for _ in range(3)]
    assert wait_until(lambda: memory_backend(app).results.waiting == 3, timeout_s=10)
    gate.set()
    assert [w.result(timeout_s=20) for w in waiters] == ["opened"] * 3
    result.get(timeout=1)
    assert len(calls) == 1


def test_a_then_callback_may_use_its_handle_and_register_more(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(2, 2)
    values: list[Any] = []

    def first(r: AsyncResult) -> None:
        values.append(r.get(timeout=1))  # already held: no wait, no deadlock
        r.then(lambda again: values.append(again.state))  # runs at once

    result.then(first)
    assert result.get(timeout=10) == 4
    assert values == [4, states.SUCCESS]


def test_then_callbacks_run_in_the_order_they_were_registered(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    result = tasks["add"].delay(2, 2)
    order: list[int] = []
    result.then(lambda r: order.append(1)).then(lambda r: order.append(2))
    result.get(timeout=10)
    assert order == [1, 2]


def test_then_hands_what_the_callback_raised_to_on_error(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    errors: list[Exception] = []

    def broken(r: AsyncResult) -> None:
        raise RuntimeError("callback broke")

    result = tasks["add"].delay(1, 1).then(broken, on_error=errors.append)
    assert result.get(timeout=10) == 2
    assert [str(e) for e in errors] == ["callback broke"]


def test_a_then_callback_error_without_on_error_raises_from_the_call_that_ran_it(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    later: list[str] = []

    def broken(r: AsyncResult) -> None:
        raise RuntimeError("callback broke")

    result = tasks["add"].delay(1, 1).then(broken).then(lambda r: later.append("ran"))
    with pytest.raises(RuntimeError, match="callback broke"):
        result.get(timeout=10)
    assert later == ["ran"]  # the other callbacks ran first
    assert result.get(timeout=1) == 2  # and each ran once


def test_then_on_an_eager_result_runs_at_once(app: Petiole) -> None:
    record = ResultRecord("t-eager", states.SUCCESS, b"7", date_done=time.time())
    result = EagerResult("t-eager", app, record)
    seen: list[Any] = []
    result.then(lambda r: seen.append(r.get()))
    assert seen == [7]


# -- collect() --------------------------------------------------------------------------------


def test_collect_yields_a_task_then_the_tasks_it_sent(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    parent = tasks["fan_out"].delay(3)
    collected = [(r.name, value) for r, value in parent.collect(timeout=10)]
    assert collected == [("fan_out", 3), ("add", 0), ("add", 2), ("add", 4)]


def test_collect_walks_a_chain_from_its_first_step(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    add = tasks["add"]
    last = (add.s(1, 1) | add.s(10) | add.s(100)).apply_async()
    last.get(timeout=10)
    first = last.parent.parent if last.parent else None
    assert first is not None
    assert [value for _, value in first.collect(timeout=10)] == [2, 12, 112]


def test_collect_timeout_bounds_the_whole_walk(app: Petiole, tasks: dict[str, Any]) -> None:
    never = tasks["add"].apply_async((0, 0), queue=NOWHERE)
    store_state(app, "t-root", states.SUCCESS, 2, children=[never.id])
    walk = app.AsyncResult("t-root").collect(timeout=0.5)
    assert next(walk)[1] == 2
    with pytest.raises(ResultTimeout):
        next(walk)


# -- ResultSet ------------------------------------------------------------------------------


def test_result_set_membership_is_by_task_id(app: Petiole) -> None:
    a, b, c = (AsyncResult(i, app) for i in "abc")
    members = ResultSet([a, b])
    members.add(AsyncResult("a", app))  # already a member
    members.update([b, c])
    assert members.ids == ["a", "b", "c"]
    assert "c" in members
    assert c in members
    members.discard("b")
    members.discard("b")  # not a member any more: nothing happens
    members.remove(c)
    assert members.ids == ["a"]
    with pytest.raises(KeyError, match="task z is not a member"):
        members.remove("z")
    members.clear()
    assert len(members) == 0


def test_an_empty_result_set_is_ready_and_needs_no_app_to_wait(app: Petiole) -> None:
    empty: ResultSet[AsyncResult] = ResultSet()
    assert empty.get(timeout=1) == []
    assert empty.ready()
    with pytest.raises(ValueError, match="pass app="):
        _ = empty.app
    assert ResultSet([], app=app).app is app


def test_result_set_reports_its_members_states(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    done = tasks["add"].delay(1, 1)
    failed = tasks["fail"].delay("no")
    members = ResultSet([done, failed])
    members.join(timeout=10, propagate=False)
    assert (members.ready(), members.waiting()) == (True, False)
    assert (members.successful(), members.failed()) == (False, True)
    assert members.completed_count() == 1
    members.add(tasks["add"].apply_async((2, 2), queue=NOWHERE))
    assert (members.ready(), members.waiting()) == (False, True)
    assert members.completed_count() == 1


def test_result_set_get_returns_values_in_set_order(
    app: Petiole, tasks: dict[str, Any], gate: threading.Event, worker: Worker
) -> None:
    slow = tasks["gated"].delay()
    fast = tasks["add"].delay(1, 1)
    fast.get(timeout=10)
    gate.set()
    assert ResultSet([slow, fast]).get(timeout=10) == ["opened", 2]


def test_result_set_without_propagate_puts_each_exception_in_its_place(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet([tasks["add"].delay(1, 1), tasks["fail"].delay("second")])
    with pytest.raises(ValueError, match="second"):
        members.get(timeout=10)
    for join in (members.join, members.join_native):
        first, second = join(timeout=10, propagate=False)
        assert first == 2
        assert isinstance(second, ValueError)


def test_join_native_waits_for_all_members_in_one_backend_wait(
    app: Petiole, tasks: dict[str, Any], worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = app.backend
    waits: list[list[str]] = []
    wait = backend.wait

    def recorded(task_ids: Any, *, timeout_s: float | None) -> dict[str, ResultRecord]:
        waits.append(list(task_ids))
        return wait(task_ids, timeout_s=timeout_s)

    monkeypatch.setattr(backend, "wait", recorded)
    members = ResultSet(tasks["add"].delay(i, i) for i in range(5))
    assert members.join_native(timeout=10) == [0, 2, 4, 6, 8]
    assert waits == [members.ids]
    members.join_native(timeout=10)
    assert len(waits) == 1  # every member is held now: no more waits


def test_join_calls_back_for_each_member_in_set_order(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet(tasks["add"].delay(i, 1) for i in range(4))
    seen: list[tuple[str, Any]] = []
    assert members.join(timeout=10, callback=lambda i, v: seen.append((i, v))) == [1, 2, 3, 4]
    assert seen == list(zip(members.ids, [1, 2, 3, 4], strict=True))
    seen.clear()
    members.join_native(timeout=10, callback=lambda i, v: seen.append((i, v)))
    assert seen == list(zip(members.ids, [1, 2, 3, 4], strict=True))


def test_join_raises_a_failure_without_waiting_for_later_members(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    never = tasks["add"].apply_async((0, 0), queue=NOWHERE)
    members = ResultSet([tasks["fail"].delay("first"), never])
    with pytest.raises(ValueError, match="first"):
        members.join(timeout=30)


def test_a_result_set_timeout_says_how_many_members_and_where_the_first_stands(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    never = tasks["add"].apply_async((0, 0), queue=NOWHERE)
    members = ResultSet([tasks["add"].delay(1, 1), never])
    with pytest.raises(ResultTimeout) as timed_out:
        members.get(timeout=0.5)
    message = str(timed_out.value)
    assert "result set: 1 of 2 members not ready after" in message
    assert never.id in message
    assert repr(NOWHERE) in message


def test_result_set_then_runs_once_every_member_is_ready(
    app: Petiole, tasks: dict[str, Any], gate: threading.Event, worker: Worker
) -> None:
    fast = tasks["add"].delay(1, 1)
    members = ResultSet([fast, tasks["gated"].delay()])
    called: list[ResultSet[AsyncResult]] = []
    assert members.then(called.append) is members
    fast.get(timeout=10)
    assert not members.ready()
    assert called == []
    gate.set()
    members.get(timeout=10)
    assert called == [members]


def test_result_set_then_runs_at_once_when_its_members_are_known_ready(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet(tasks["add"].delay(i, i) for i in range(2))
    members.get(timeout=10)
    ran_in: list[threading.Thread] = []
    members.then(lambda s: ran_in.append(threading.current_thread()))
    assert ran_in == [threading.current_thread()]


def test_reading_a_set_runs_its_members_then_callbacks(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    member = tasks["add"].delay(1, 1)
    app.AsyncResult(member.id).get(timeout=10)
    called: list[AsyncResult] = []
    member.then(called.append)
    assert ResultSet([member]).completed_count() == 1
    assert called == [member]


def test_result_set_revoke_revokes_every_member(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet(tasks["add"].apply_async((i, i), queue=NOWHERE) for i in range(3))
    members.revoke(reason="not needed")
    with start_worker(app, queues=[NOWHERE]):
        values = members.join_native(timeout=10, propagate=False)
    assert all(isinstance(v, TaskRevoked) and "not needed" in str(v) for v in values)


def test_result_set_maybe_throw_raises_the_first_failure(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet([tasks["add"].delay(1, 1), tasks["fail"].delay("thrown")])
    members.join(timeout=10, propagate=False)
    with pytest.raises(ValueError, match="thrown"):
        members.maybe_throw()
    seen: list[str] = []
    members.maybe_throw(propagate=False, callback=lambda i, v: seen.append(i))
    assert seen == members.ids


def test_result_set_forget_deletes_every_members_result(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    members = ResultSet(tasks["add"].delay(i, i) for i in range(2))
    members.get(timeout=10)
    members.forget()
    assert [app.AsyncResult(i).state for i in members.ids] == [states.PENDING] * 2


# -- GroupResult -----------------------------------------------------------------------------


def test_group_result_is_a_result_set_that_saves_and_restores(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    sent = group(tasks["add"].s(i, i) for i in range(3)).apply_async()
    assert isinstance(sent, ResultSet)
    assert sent.join_native(timeout=10) == [0, 2, 4]
    restored = GroupResult.restore(sent.id, app)
    assert restored == sent == sent.id
    assert str(restored) == sent.id
    assert restored.children == restored.results
    assert restored.join(timeout=10) == [0, 2, 4]


def test_group_delete_removes_the_saved_group_only(
    app: Petiole, tasks: dict[str, Any], worker: Worker
) -> None:
    sent = group(tasks["add"].s(i, i) for i in range(2)).apply_async()
    sent.get(timeout=10)
    sent.delete()
    with pytest.raises(ResultTimeout, match="no saved group"):
        GroupResult.restore(sent.id, app)
    assert [r.state for r in sent] == [states.SUCCESS] * 2


def test_group_timeout_names_the_group(app: Petiole, tasks: dict[str, Any], worker: Worker) -> None:
    sent = group(tasks["add"].s(1, 1).set(queue=NOWHERE)).apply_async()
    with pytest.raises(ResultTimeout, match=f"group {sent.id}: 1 of 1 members not ready"):
        sent.get(timeout=0.2)


# -- as_tuple / result_from_tuple ------------------------------------------------------------


def test_as_tuple_rebuilds_a_task_and_a_group_after_a_json_round_trip(app: Petiole) -> None:
    task = AsyncResult("t-1", app)
    grouped = GroupResult("g-1", [AsyncResult("m-1", app), AsyncResult("m-2", app)], app)
    again = result_from_tuple(json.loads(json.dumps(task.as_tuple())), app)
    assert type(again) is AsyncResult
    assert again.id == "t-1"
    rebuilt = result_from_tuple(json.loads(json.dumps(grouped.as_tuple())), app)
    assert isinstance(rebuilt, GroupResult)
    assert rebuilt == grouped


def test_result_from_tuple_reads_celerys_shape_with_a_parent(app: Petiole) -> None:
    rebuilt = result_from_tuple((("t-2", ("t-1", None)), None), app)
    assert rebuilt.id == "t-2"


@pytest.mark.parametrize(
    "data", ["t-1", (("t-1", None),), ((1, None), None), (("g", None), [(("h", None), [])])]
)
def test_result_from_tuple_refuses_what_as_tuple_cannot_make(app: Petiole, data: Any) -> None:
    with pytest.raises(ValueError, match=r"not a result tuple|a GroupResult's members are tasks"):
        result_from_tuple(data, app)


def test_a_wait_that_times_out_inside_a_task_says_the_task_holds_a_slot(app: Petiole) -> None:
    """Petiole allows get() inside a task (Celery refuses it): when the wait times
    out, say that the waiting task holds the slot its child may need, rather than
    only that no worker consumes the queue."""

    @app.task(name="child")
    def child() -> int:
        return 1

    @app.task(name="parent")
    def parent() -> int:
        return int(child.delay().get(timeout=0.5))

    with (
        start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=1),
        pytest.raises(ResultTimeout) as raised,
    ):
        parent.delay().get(timeout=20)
    message = str(raised.value)
    assert "this wait ran inside task parent[" in message
    assert "holds a pool slot while it waits" in message


def test_a_wait_with_no_timeout_inside_a_task_is_warned_of_once(
    app: Petiole, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a wait holds the task's pool slot for as long as it lasts, possibly for ever."""
    from petiole import result_set

    monkeypatch.setattr(result_set, "_warned_of_endless_waits", set())

    @app.task(name="child")
    def child() -> int:
        return 1

    @app.task(name="endless_parent")
    def parent() -> int:
        return int(child.delay().get())

    caplog.set_level(logging.WARNING, logger="petiole.worker")
    with start_worker(app, concurrency=2):
        assert [parent.delay().get(timeout=20) for _ in range(3)] == [1, 1, 1]
        assert child.delay().get(timeout=20) == 1  # outside a task: not warned of
    warned = [r for r in caplog.records if "waits for a result with no timeout" in r.message]
    assert len(warned) == 1
    assert warned[0].message.startswith("task endless_parent waits")


def test_a_wait_that_times_out_outside_a_task_does_not_mention_one(app: Petiole) -> None:
    @app.task(name="nobody_runs_this")
    def lonely() -> None:
        return None

    with pytest.raises(ResultTimeout) as raised:
        lonely.delay().get(timeout=0.2)
    assert "inside task" not in str(raised.value)


def test_a_group_wait_that_times_out_inside_a_task_says_so_too(app: Petiole) -> None:
    @app.task(name="member")
    def member() -> int:
        return 1

    @app.task(name="gatherer")
    def gatherer() -> list[int]:
        return list(group(member.s(), member.s()).apply_async().get(timeout=0.5))

    with (
        start_worker(app, pool="solo", concurrency=1, prefetch_multiplier=1),
        pytest.raises(ResultTimeout) as raised,
    ):
        gatherer.delay().get(timeout=20)
    assert "this wait ran inside task gatherer[" in str(raised.value)

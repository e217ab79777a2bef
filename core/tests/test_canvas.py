from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from petiole import (
    GroupResult,
    Petiole,
    chain,
    chord,
    group,
    maybe_signature,
    signature,
    states,
    subtask,
)
from petiole.canvas import Signature, from_dict
from petiole.errors import ChordError, ConfigError, SerializationError
from petiole.task import Task
from petiole.testing.in_thread import start_worker


@pytest.fixture
def tasks(app: Petiole) -> dict[str, Any]:
    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="fail")
    def fail(*args: Any) -> None:
        raise ValueError(f"failed with {args}")

    @app.task(name="record")
    def record(*args: Any) -> list[Any]:
        return list(args)

    return {"add": add, "mul": mul, "tsum": tsum, "fail": fail, "record": record}


# -- signatures ------------------------------------------------------------------------


def test_signature_is_json_safe_and_rebuilds(app: Petiole, tasks: dict[str, Any]) -> None:
    sig = tasks["add"].s(2).set(queue="fast", countdown=1)
    again = from_dict(json.loads(json.dumps(sig)), app)
    assert again == sig
    assert again.args == [2]
    assert again.options == {"queue": "fast", "countdown": 1}


def test_partial_signature_takes_arguments_in_front(tasks: dict[str, Any]) -> None:
    sig = tasks["add"].s(10)
    assert sig.clone((5,)).args == [5, 10]
    assert tasks["add"].si(1, 2).clone((5,)).args == [1, 2]


def test_unknown_option_is_refused(tasks: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="quue"):
        tasks["add"].s(1, 2).set(quue="x")


def test_signature_by_name_needs_no_import(app: Petiole) -> None:
    sig = signature("elsewhere.task", (1,), app=app)
    assert isinstance(sig, Signature)
    assert sig.name == "elsewhere.task"


def test_celery_subtask_spellings_build_the_same_signatures(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    add = tasks["add"]
    assert add.subtask((1, 2), queue="fast") == add.signature((1, 2), queue="fast")
    by_name = subtask("add", (1, 2), app=app)
    assert by_name == signature("add", (1, 2), app=app)
    with start_worker(app):
        assert by_name.delay().get(timeout=10) == 3


def test_maybe_signature_takes_a_signature_its_dict_or_none(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    sig = tasks["add"].s(1, 2)
    assert maybe_signature(None) is None
    assert maybe_signature(sig) is sig
    rebuilt = maybe_signature(json.loads(json.dumps(chain(sig, tasks["add"].s(3)))), app=app)
    assert isinstance(rebuilt, chain)
    with start_worker(app):
        assert rebuilt.delay().get(timeout=10) == 6
    with pytest.raises(TypeError, match="got int"):
        maybe_signature(3)  # type: ignore[arg-type]


def test_calling_a_signature_runs_its_task_here(app: Petiole, tasks: dict[str, Any]) -> None:
    assert tasks["add"].s(2)(3) == 5  # Celery's sig(): partial arguments in front
    assert tasks["tsum"].si([1, 2])() == 3
    assert app.signature("add", (4, 5))() == 9
    with pytest.raises(ConfigError, match="not registered with this app: send it with"):
        signature("elsewhere.task", app=app)()


def test_calling_a_workflow_sends_it_as_celery_does(app: Petiole, tasks: dict[str, Any]) -> None:
    add, tsum = tasks["add"], tasks["tsum"]
    with start_worker(app, concurrency=2):
        assert group(add.s(i, i) for i in range(3))().get(timeout=10) == [0, 2, 4]
        assert chain(add.s(1, 2), add.s(10))().get(timeout=10) == 13
        assert chord([add.s(1, 1), add.s(2, 2)], tsum.s())().get(timeout=10) == 6
        assert chord([add.s(3, 3)])(tsum.s()).get(timeout=10) == 6


def test_app_task_is_the_base_class_for_celery_style_subclasses(app: Petiole) -> None:
    class Audited(app.Task):  # type: ignore[name-defined,misc]
        greeting = "hello"

    @app.task(base=Audited, bind=True, name="greet")
    def greet(self: Audited, name: str) -> str:
        return f"{self.greeting} {name}"

    assert app.Task is Task
    assert isinstance(greet, Audited)
    assert greet.s("Ada")() == "hello Ada"


def test_pipe_builds_a_flat_chain(tasks: dict[str, Any]) -> None:
    add = tasks["add"]
    workflow = add.s(1, 1) | add.s(2) | add.s(3)
    assert isinstance(workflow, chain)
    assert [s.name for s in workflow.tasks] == ["add", "add", "add"]


# -- running them ----------------------------------------------------------------------


def test_chain_passes_each_result_on(app: Petiole, tasks: dict[str, Any]) -> None:
    add, mul = tasks["add"], tasks["mul"]
    with start_worker(app):
        result = chain(add.s(2, 2), mul.s(10), add.s(1)).apply_async()
        assert result.get(timeout=10) == 41
        assert result.parent is not None
        assert result.parent.get(timeout=10) == 40


def test_group_runs_members_and_keeps_their_order(app: Petiole, tasks: dict[str, Any]) -> None:
    with start_worker(app, concurrency=4):
        result = group(tasks["add"].s(i, i) for i in range(10)).apply_async()
        assert isinstance(result, GroupResult)
        assert result.get(timeout=10) == [2 * i for i in range(10)]
        assert result.completed_count() == 10
        assert result.ready()
        restored = GroupResult.restore(result.id, app)
        assert restored.ids == result.ids


def test_chord_calls_back_once_with_all_results(app: Petiole, tasks: dict[str, Any]) -> None:
    with start_worker(app, concurrency=4):
        result = chord((tasks["add"].s(i, i) for i in range(20)), tasks["tsum"].s()).apply_async()
        assert result.get(timeout=10) == sum(2 * i for i in range(20))


def test_chord_with_an_empty_header_calls_back_with_nothing(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    with start_worker(app):
        assert chord([], tasks["tsum"].s()).apply_async().get(timeout=10) == 0


def test_failing_chain_step_stops_the_chain_and_calls_errbacks(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    add, fail, record = tasks["add"], tasks["fail"], tasks["record"]
    errback = record.s("errback")
    with start_worker(app):
        result = chain(add.s(1, 1), fail.s(), add.s(100)).apply_async(link_error=errback)
        with pytest.raises(ValueError, match=r"failed with \(2,\)"):
            result.get(timeout=10)
        called = app.AsyncResult(errback.id or "")
        assert called.get(timeout=10)[1] == "errback"


def test_a_step_whose_value_the_result_serializer_refuses_fails_the_chain(
    app: Petiole, tasks: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Not a success with nothing after it: a failure, logged, stored, and passed
    down the chain like a raised exception."""

    @app.task(name="opaque")
    def opaque() -> object:
        return object()

    with caplog.at_level(logging.ERROR), start_worker(app):
        result = chain(opaque.s(), tasks["add"].s(1)).apply_async()
        with pytest.raises(SerializationError, match="serializer cannot store"):
            result.get(timeout=10)
    assert result.state == states.FAILURE
    failed = [r for r in caplog.records if "task opaque[" in r.getMessage()]
    assert failed
    assert "failed" in failed[0].getMessage()
    assert "returned a value the json serializer cannot store" in failed[0].getMessage()


def test_link_calls_back_with_the_result(app: Petiole, tasks: dict[str, Any]) -> None:
    add = tasks["add"]
    sig = add.s(2, 3)
    callback = sig.link(add.s(100))
    with start_worker(app):
        first = sig.apply_async()
        assert first.get(timeout=10) == 5
        assert app.AsyncResult(callback.id or "").get(timeout=10) == 105
        assert [c.id for c in first.children] == [callback.id]


def test_link_error_on_apply_async_gets_the_failed_task_id(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    errback = tasks["record"].s()
    with start_worker(app):
        failed = tasks["fail"].s().apply_async(link_error=errback)
        with pytest.raises(ValueError, match="failed with"):
            failed.get(timeout=10)
        assert app.AsyncResult(errback.id or "").get(timeout=10) == [failed.id]


def test_chord_member_failure_fails_the_chord_naming_the_member(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    add, fail, tsum = tasks["add"], tasks["fail"], tasks["tsum"]
    header = [add.s(1, 1), fail.si("boom"), add.s(2, 2)]
    with start_worker(app):
        result = chord(header, tsum.s()).apply_async()
        with pytest.raises(ChordError, match="chord member 1") as info:
            result.get(timeout=10)
    assert "ValueError" in str(info.value)
    assert result.state == states.FAILURE


def test_chain_containing_a_group_feeds_the_group_results_on(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    add, tsum = tasks["add"], tasks["tsum"]
    with start_worker(app, concurrency=4):
        workflow = chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s())
        assert workflow.apply_async().get(timeout=10) == (2 + 10) + (2 + 20)


def test_a_chain_or_chord_ending_in_a_group_returns_the_groups_result(
    app: Petiole, tasks: dict[str, Any]
) -> None:
    """As in Celery: its result is the group's (its members'), not a task's handle
    of the group's id, which read the saved member ids as the result."""
    add, tsum = tasks["add"], tasks["tsum"]
    with start_worker(app, concurrency=4):
        ends_in_group = chain(add.s(1, 1), group(add.s(10), add.s(20))).apply_async()
        assert isinstance(ends_in_group, GroupResult)
        assert ends_in_group.get(timeout=10) == [12, 22]
        body_is_group = chord([add.s(1, 1), add.s(2, 2)], group(tsum.s(), tsum.s()))()
        assert isinstance(body_is_group, GroupResult)
        assert body_is_group.get(timeout=10) == [6, 6]
    with app.override(broker_url=app.settings.broker_url, eager=True):
        eager = chain(add.s(1, 1), group(add.s(10), add.s(20))).apply_async()
        assert eager.get() == [12, 22]


def test_chord_inside_a_chain(app: Petiole, tasks: dict[str, Any]) -> None:
    add, mul, tsum = tasks["add"], tasks["mul"], tasks["tsum"]
    with start_worker(app, concurrency=4):
        workflow = chain(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), mul.s(10))
        assert workflow.apply_async().get(timeout=10) == 60


def test_chain_inside_a_group(app: Petiole, tasks: dict[str, Any]) -> None:
    add, mul = tasks["add"], tasks["mul"]
    with start_worker(app, concurrency=4):
        result = group(chain(add.s(i, i), mul.s(10)) for i in range(5)).apply_async()
        assert result.get(timeout=10) == [20 * i for i in range(5)]


def test_chord_whose_header_holds_chains(app: Petiole, tasks: dict[str, Any]) -> None:
    add, mul, tsum = tasks["add"], tasks["mul"], tasks["tsum"]
    with start_worker(app, concurrency=4):
        header = [chain(add.s(i, 1), mul.s(2)) for i in range(5)]
        result = chord(header, tsum.s()).apply_async()
        assert result.get(timeout=10) == sum((i + 1) * 2 for i in range(5))


def test_map_starmap_and_chunks(app: Petiole, tasks: dict[str, Any]) -> None:
    add, tsum = tasks["add"], tasks["tsum"]
    with start_worker(app, concurrency=4):
        assert tsum.map([[1, 2], [3]]).apply_async().get(timeout=10) == [3, 3]
        assert add.starmap([(1, 2), (3, 4)]).apply_async().get(timeout=10) == [3, 7]
        chunked = add.chunks(((i, i) for i in range(10)), 3).apply_async()
        assert chunked.get(timeout=10) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]


def test_forget_removes_a_whole_workflow(app: Petiole, tasks: dict[str, Any]) -> None:
    add = tasks["add"]
    with start_worker(app):
        result = chain(add.s(1, 1), add.s(1), add.s(1)).apply_async()
        result.get(timeout=10)
    root = result.parent.parent  # type: ignore[union-attr]
    ids = [root.id, result.parent.id, result.id]  # type: ignore[union-attr]
    root.forget()
    assert [app.AsyncResult(i).state for i in ids] == [states.PENDING] * 3


def test_group_forget_removes_members_and_the_group(app: Petiole, tasks: dict[str, Any]) -> None:
    with start_worker(app):
        result = group(tasks["add"].s(i, i) for i in range(3)).apply_async()
        result.get(timeout=10)
    result.forget()
    assert [r.state for r in result] == [states.PENDING] * 3
    with pytest.raises(Exception, match="no saved group"):
        GroupResult.restore(result.id, app)


def test_eager_mode_runs_workflows_in_the_caller(app: Petiole, tasks: dict[str, Any]) -> None:
    app.configure(eager=True)
    add, tsum = tasks["add"], tasks["tsum"]
    assert chain(add.s(1, 2), add.s(3)).apply_async().get() == 6
    assert group(add.s(i, i) for i in range(3)).apply_async().get() == [0, 2, 4]
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get() == 6

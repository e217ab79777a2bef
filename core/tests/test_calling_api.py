"""The calling and task API a Celery user reaches for (issue #18, points 1 and 2):
``apply_async``'s ``link``/``link_error``/``ignore_result``, ``task.apply()``,
``update_state``, ``base=`` handlers, ``typing``, and ``task_routes``."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import run_python

from petiole import Petiole, Task, chain, signature, states, use_app
from petiole.envelope import Envelope
from petiole.errors import ConfigError
from petiole.result import EagerResult
from petiole.testing.in_thread import start_worker


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Petiole]:
    """A SQLite app: a real store and queue, shared by the test and its worker."""
    url = f"sqlite:///{tmp_path / 'petiole.db'}"
    app = Petiole("calling", broker=url, backend=url, config_file="/dev/null")
    yield app
    app.close()


# -- apply_async options -----------------------------------------------------------


def test_link_sends_the_callback_with_the_result(app: Petiole) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    callback = add.s(10)
    with start_worker(app):
        result = add.apply_async((2, 2), link=callback)
        assert result.get(timeout=10) == 4
        assert app.AsyncResult(str(callback.id)).get(timeout=10) == 14


def test_link_error_sends_the_errback_with_the_failed_task_id(app: Petiole) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("no")

    @app.task
    def record_failure(task_id: str) -> str:
        return f"failed: {task_id}"

    errback = record_failure.s()
    with start_worker(app):
        result = boom.apply_async(link_error=[errback])
        with pytest.raises(ValueError, match="no"):
            result.get(timeout=10)
        assert app.AsyncResult(str(errback.id)).get(timeout=10) == f"failed: {result.id}"


def test_a_celery_style_errback_is_refused_when_sent(app: Petiole) -> None:
    """Celery calls such an errback with (request, exc, traceback); Petiole sends it
    the failed task's id: it would fail in the worker, after the task failed."""

    @app.task
    def boom() -> None:
        raise ValueError("no")

    @app.task
    def on_error(request: object, exc: object, traceback: object) -> None:
        pass

    with pytest.raises(TypeError, match=r"link_error=.*on_error: an errback is called with"):
        boom.apply_async(link_error=on_error.s())
    assert app.transport.size("default") == 0
    # An immutable one is sent with its own arguments alone: nothing to check against.
    boom.apply_async(link_error=on_error.si(1, 2, 3))
    assert app.transport.size("default") == 1


def test_link_takes_signatures_only(app: Petiole) -> None:
    @app.task
    def noop() -> None:
        pass

    with pytest.raises(ConfigError, match="takes signatures"):
        noop.apply_async(link="proj.tasks.other")  # type: ignore[arg-type]


def test_ignore_result_per_call_overrides_the_task(app: Petiole) -> None:
    @app.task(ignore_result=True)
    def quiet(x: int) -> int:
        return x

    @app.task
    def loud(x: int) -> int:
        return x

    done = loud.s()
    with start_worker(app):
        kept = quiet.apply_async((1,), ignore_result=False)
        assert kept.get(timeout=10) == 1
        dropped = loud.apply_async((2,), ignore_result=True, link=done)
        # The callback runs after its parent finished: by then no result was stored.
        assert app.AsyncResult(str(done.id)).get(timeout=10) == 2
    assert dropped.state == states.PENDING


# -- task.apply() ----------------------------------------------------------------------


def test_apply_runs_here_without_a_broker() -> None:
    # A broker nobody listens on: apply() must never connect to it.
    app = Petiole("local", broker="redis://127.0.0.1:9/0", backend="memory://apply")
    caller = threading.get_ident()

    @app.task(bind=True)
    def where(self: Task[Any, Any], x: int) -> tuple[int, bool, bool]:
        return x, threading.get_ident() == caller, self.request.eager

    result = where.apply((5,))
    assert isinstance(result, EagerResult)
    assert result.state == states.SUCCESS
    assert result.get() == [5, True, True]  # through the serializer, as a worker would


def test_apply_returns_a_failure_and_raises_with_throw(app: Petiole) -> None:
    app.configure(eager_propagates=False)

    @app.task
    def boom() -> None:
        raise KeyError("k")

    result = boom.apply()
    assert result.failed()
    with pytest.raises(KeyError):
        result.get()
    with pytest.raises(KeyError):
        boom.apply(throw=True)


def test_eager_delay_returns_a_failure_whose_get_raises(app: Petiole) -> None:
    """Celery's default: a failing task's delay() in eager mode does not raise."""
    app.configure(eager=True)

    @app.task
    def boom() -> None:
        raise RuntimeError("inside")

    result = boom.delay()
    assert result.state == states.FAILURE
    with pytest.raises(RuntimeError, match="inside"):
        result.get()


# -- update_state ----------------------------------------------------------------------


def test_update_state_is_read_by_another_process_mid_run(app: Petiole, tmp_path: Path) -> None:
    may_finish = threading.Event()

    @app.task(bind=True)
    def crunch(self: Task[Any, Any], total: int) -> int:
        for done in range(1, total + 1):
            self.update_state(state="PROGRESS", meta={"current": done, "total": total})
        may_finish.wait(10)
        return total

    with start_worker(app):
        result = crunch.delay(3)
        reader = run_python(
            """
            import json, sys
            from petiole import Petiole
            from petiole.testing import wait_until
            url, task_id = sys.argv[1:]
            app = Petiole("reader", broker=url, backend=url, config_file="/dev/null")
            found = app.AsyncResult(task_id)
            wait_until(lambda: found.result == {"current": 3, "total": 3}, timeout_s=10)
            print(json.dumps([found.state, found.result, found.ready()]))
            """,
            str(app.settings.backend_url),
            result.id,
        )
        seen, _ = reader.communicate(timeout=30)
        assert json.loads(seen) == ["PROGRESS", {"current": 3, "total": 3}, False]
        may_finish.set()
        assert result.get(timeout=10) == 3
    assert result.state == states.SUCCESS


def test_update_state_refuses_ready_states_and_needs_a_task(app: Petiole) -> None:
    @app.task(bind=True)
    def finisher(self: Task[Any, Any]) -> None:
        self.update_state(state=states.SUCCESS, meta={})

    with pytest.raises(ConfigError, match="ready state"):
        finisher.apply(throw=True)
    with pytest.raises(Exception, match="outside a running task"):
        finisher.update_state(state="PROGRESS")
    task_id = str(uuid.uuid4())
    finisher.update_state(task_id=task_id, state="QUEUED_ELSEWHERE", meta={"where": "x"})
    assert app.AsyncResult(task_id).state == "QUEUED_ELSEWHERE"
    assert app.AsyncResult(task_id).result == {"where": "x"}


# -- base= and handlers -------------------------------------------------------------------


def test_base_class_handlers_run_in_the_worker_with_celerys_arguments(app: Petiole) -> None:
    seen: list[tuple[Any, ...]] = []

    class Audited(Task[Any, Any]):
        max_retries = 1
        default_retry_delay = 0.0

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(("success", retval, task_id, tuple(args), dict(kwargs)))

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            seen.append(("failure", type(exc).__name__, task_id, "raise" in str(einfo)))

        def on_retry(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            seen.append(("retry", type(exc).__name__, einfo.type.__name__))

        def after_return(
            self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            seen.append(("after", status))

    @app.task(base=Audited)
    def double(x: int) -> int:
        return 2 * x

    @app.task(base=Audited, autoretry_for=(OSError,))
    def flaky() -> None:
        raise OSError("disk")

    assert isinstance(double, Audited)
    assert flaky.options.max_retries == 1  # the class attribute is the default
    with start_worker(app, pool="solo"):
        ok = double.apply_async((4,), kwargs={})
        assert ok.get(timeout=10) == 8
        failed = flaky.delay()
        with pytest.raises(OSError, match="disk"):
            failed.get(timeout=10)
    assert seen[:2] == [("success", 8, ok.id, (4,), {}), ("after", "SUCCESS")]
    assert seen[2:] == [
        ("retry", "OSError", "OSError"),
        ("after", "RETRY"),
        ("failure", "OSError", failed.id, True),
        ("after", "FAILURE"),
    ]


def test_a_raising_handler_is_logged_and_the_outcome_stands(
    app: Petiole, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Task[Any, Any]):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            raise RuntimeError("handler bug")

    @app.task(base=Broken)
    def fine() -> str:
        return "ok"

    with start_worker(app, pool="solo"):
        assert fine.delay().get(timeout=10) == "ok"
    assert "a handler of task" in caplog.text
    assert "handler bug" in caplog.text


def test_base_must_be_a_task_subclass(app: Petiole) -> None:
    with pytest.raises(ConfigError, match=r"subclass of petiole\.Task"):
        app.task(base=object)(lambda: None)


# -- typing ---------------------------------------------------------------------------------


def test_typing_checks_arguments_when_sending(app: Petiole) -> None:
    @app.task(bind=True)
    def add(self: Task[Any, Any], x: int, y: int = 0) -> int:
        return x + y

    with pytest.raises(TypeError, match=re.escape("add(x, y=0): too many positional arguments")):
        add.delay(1, 2, 3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        add.apply_async((1,), {"z": 2})
    assert app.transport.size("default") == 0

    @app.task(typing=False)
    def loose(x: int) -> int:
        return x

    loose.delay(1, 2)  # sent as given; the worker will fail it
    assert app.transport.size("default") == 1


# -- task options: names from Celery ---------------------------------------------------------


def test_celery_task_options_are_read_or_answered_with_the_petiole_spelling(
    app: Petiole,
) -> None:
    limited = app.task(time_limit=10, soft_time_limit=5)(lambda: None)
    assert (limited.options.time_limit_s, limited.options.soft_time_limit_s) == (10, 5)
    with pytest.raises(ConfigError, match="is spelled `dead_letter_on_failure` in Petiole"):
        app.task(acks_on_failure_or_timeout=False)(lambda: None)
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        app.task(max_retry=3)(lambda: None)


def test_a_misspelt_calling_option_suggests_the_right_one(app: Petiole) -> None:
    @app.task(name="spelled")
    def spelled() -> None:
        return None

    with pytest.raises(ConfigError, match=r"'countdwn' \(did you mean 'countdown'\?\)"):
        spelled.apply_async(countdwn=1)


def test_celery_calling_options_are_read_or_answered(app: Petiole) -> None:
    @app.task
    def job() -> None:
        pass

    job.apply_async(time_limit=30, soft_time_limit=20)
    [delivery] = app.transport.reserve(["default"], max_messages=1, wait_s=0, lease_s=5)
    assert Envelope.from_bytes(delivery.payload).time_limits == (20.0, 30.0)
    with pytest.raises(ConfigError, match="`routing_key` has no Petiole equivalent"):
        job.apply_async(routing_key="x")
    with pytest.raises(ConfigError, match="both given"):
        job.apply_async(time_limit=3, time_limit_s=4)
    with pytest.raises(ConfigError, match="unknown option"):
        job.apply_async(countdonw=3)


def test_signatures_by_name_send_through_the_current_app(app: Petiole) -> None:
    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    other = Petiole("other", broker="memory://other-app", backend="memory://other-app")
    try:
        by_name = signature("proj.add", args=(2, 2))
        steps = chain(signature("proj.add", (1, 1)), signature("proj.add", (10,)))
        with use_app(app), start_worker(app):
            assert by_name.delay().get(timeout=10) == 4
            assert steps.apply_async().get(timeout=10) == 12
        with use_app(other):
            signature("proj.add", (3, 3)).delay()  # sent, not run: no worker of `other`
        assert other.transport.size("default") == 1
    finally:
        other.close()

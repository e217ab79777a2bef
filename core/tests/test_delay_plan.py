"""``delay()`` resolves a task's send options once (``app.send_with_defaults``): what
it sends must still follow the task, its route, the settings and a subclass's
``apply_async`` as a call resolved from scratch would."""

from __future__ import annotations

from typing import Any
from unittest import mock

from petiole import Petiole, Task
from petiole.envelope import Envelope
from petiole.result import AsyncResult


def _sent(app: Petiole, queue: str) -> Envelope:
    [delivery] = app.transport.reserve([queue], max_messages=1, wait_s=0, lease_s=5)
    return Envelope.from_bytes(delivery.payload)


def test_delay_goes_through_a_subclass_apply_async(app: Petiole) -> None:
    seen: list[tuple[Any, Any]] = []

    class Audited(Task[Any, Any]):
        def apply_async(self, args: Any = (), kwargs: Any = None, **options: Any) -> AsyncResult:
            seen.append((tuple(args), kwargs))
            return super().apply_async(args, kwargs, queue="audited", **options)

    @app.task(base=Audited)
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, y=2)
    assert seen == [((1,), {"y": 2})]
    assert _sent(app, "audited").task_name == add.name


def test_delay_goes_through_an_apply_async_patched_in(app: Petiole) -> None:
    """A test that stubs a task's apply_async must see its delay() calls, and send nothing."""

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with mock.patch.object(add, "apply_async") as on_task:
        add.delay(1, 2)
    on_task.assert_called_once_with((1, 2), {})
    with mock.patch.object(Task, "apply_async") as on_class:
        add.delay(3, 4)
    on_class.assert_called_once_with((3, 4), {})
    assert app.transport.size("default") == 0


def test_delay_follows_the_settings_after_an_override(app: Petiole) -> None:
    @app.task
    def echo(x: int) -> int:
        return x

    echo.delay(1)  # the plan made with the app's own settings
    assert _sent(app, "default").content_encoding == "identity"
    with app.override(
        broker_url=app.settings.broker_url,
        default_queue="elsewhere",
        compression="zlib",
        compression_min_bytes=0,
    ):
        echo.delay(2)
        envelope = _sent(app, "elsewhere")
        assert envelope.content_encoding == "zlib"
        assert app.serializer("json").loads(app.decode_body(envelope)) == [[2], {}]
    echo.delay(3)
    envelope = _sent(app, "default")
    assert envelope.content_encoding == "identity"
    assert app.serializer("json").loads(envelope.body) == [[3], {}]


def test_delay_follows_a_task_registered_again_under_its_name(app: Petiole) -> None:
    @app.task(name="jobs.report", queue="first", priority=1)
    def report() -> None:
        pass

    report.delay()

    @app.task(name="jobs.report", queue="second", priority=8)
    def report_again() -> None:
        pass

    report_again.delay()
    assert _sent(app, "first").priority == 1
    assert _sent(app, "second").priority == 8


def test_delay_asks_a_route_function_on_every_call(app: Petiole) -> None:
    def by_size(name: str, args: Any, kwargs: Any, options: Any) -> str | None:
        return "big" if args and args[0] > 100 else None

    app.configure(task_routes=[by_size])

    @app.task(queue="small")
    def resize(size: int) -> None:
        pass

    for size in (500, 5, 700):
        resize.delay(size)
    assert (app.transport.size("big"), app.transport.size("small")) == (2, 1)


def test_delay_inside_a_task_records_its_parent_each_time(app: Petiole) -> None:
    @app.task
    def child(x: int) -> int:
        return x

    @app.task(bind=True)
    def parent(self: Task[Any, Any]) -> list[str]:
        return [child.delay(i).id for i in range(2)]

    child.delay(0)  # a plan made outside any task must not carry a parent into one
    _sent(app, "default")
    ran = parent.apply()
    sent = [_sent(app, "default") for _ in ran.get()]
    assert [e.task_id for e in sent] == ran.get()
    assert [e.parent_id for e in sent] == [ran.id, ran.id]

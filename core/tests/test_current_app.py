"""The current app (petiole.current): the default app, ``use_app`` blocks, and
``shared_task`` tasks that send through whichever app is current."""

from __future__ import annotations

import asyncio
import threading
import uuid
import weakref
from collections.abc import Iterator

import pytest

from petiole import (
    AsyncResult,
    ConfigError,
    GroupResult,
    Petiole,
    app_context,
    current_app,
    group,
    shared_task,
    use_app,
)
from petiole import current as current_module
from petiole.current import default_app, set_default_app
from petiole.testing.in_thread import start_worker


@pytest.fixture(autouse=True)
def _no_current_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no app created and no shared task, as a fresh process."""
    monkeypatch.setattr(app_context, "_default", None)
    monkeypatch.setattr(current_module, "_apps", weakref.WeakSet())
    monkeypatch.setattr(current_module, "_shared", [])


def new_app(name: str, **settings: object) -> Petiole:
    store = f"memory://{uuid.uuid4().hex}"
    return Petiole(name, broker=store, backend=store, config_file="/dev/null", **settings)


@pytest.fixture
def two_apps() -> Iterator[tuple[Petiole, Petiole]]:
    first, second = new_app("first"), new_app("second")
    yield first, second
    first.close()
    second.close()


def test_with_no_app_created_current_app_says_how_to_create_one() -> None:
    with pytest.raises(ConfigError, match=r"no Petiole app has been created yet; create one"):
        current_app()


def test_the_most_recently_created_app_is_current(two_apps: tuple[Petiole, Petiole]) -> None:
    assert current_app() is two_apps[1]


def test_an_app_created_with_set_as_current_false_does_not_become_current(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    aside = new_app("aside", set_as_current=False)
    assert current_app() is two_apps[1]
    aside.close()


def test_set_default_app_makes_any_app_current(two_apps: tuple[Petiole, Petiole]) -> None:
    set_default_app(two_apps[0])
    assert current_app() is two_apps[0]


def test_use_app_overrides_the_default_inside_the_block_only(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    first, second = two_apps
    with use_app(first) as used:
        assert used is first
        assert current_app() is first
        with use_app(second):
            assert current_app() is second
        assert current_app() is first
    assert current_app() is second


def test_default_app_ignores_use_app_blocks(two_apps: tuple[Petiole, Petiole]) -> None:
    first, second = two_apps
    with use_app(first):
        assert default_app() is second


def test_use_app_in_one_thread_is_not_seen_by_another(two_apps: tuple[Petiole, Petiole]) -> None:
    first, second = two_apps
    inside, done = threading.Event(), threading.Event()
    seen: list[object] = []

    def other_thread() -> None:
        inside.wait(timeout=10)
        try:
            seen.append(current_app())
        except ConfigError as exc:
            seen.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with use_app(first):
        inside.set()
        assert done.wait(timeout=10)
        assert current_app() is first
    thread.join(timeout=10)
    assert seen == [second]


def test_asyncio_tasks_each_keep_their_own_current_app(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    first, second = two_apps

    async def main() -> list[str]:
        opened = {first.name: asyncio.Event(), second.name: asyncio.Event()}
        seen: list[str] = []

        async def under(app: Petiole, other: Petiole) -> None:
            with use_app(app):
                opened[app.name].set()
                await opened[other.name].wait()  # both blocks are open at once here
                seen.append(f"{app.name}:{current_app().name}")

        await asyncio.gather(under(first, second), under(second, first))
        return sorted(seen)

    assert asyncio.run(main()) == ["first:first", "second:second"]


# -- shared_task ----------------------------------------------------------------------


def test_a_shared_task_is_registered_on_apps_created_before_and_after_it(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    @shared_task
    def add(x: int, y: int) -> int:
        return x + y

    later = new_app("later")
    name = f"{add.__module__}.{add.__qualname__}"
    assert all(name in app.tasks for app in (*two_apps, later))
    later.close()


def test_a_shared_task_sends_through_the_current_app(two_apps: tuple[Petiole, Petiole]) -> None:
    first, second = two_apps

    @shared_task
    def ping() -> str:
        return "pong"

    ping.delay()
    with use_app(first):
        ping.apply_async(queue="elsewhere")
    assert second.transport.size("default") == 1
    assert first.transport.size("elsewhere") == 1
    assert first.transport.size("default") == 0


def test_a_shared_task_runs_in_an_eager_app_and_its_result_is_read_back() -> None:
    app = new_app("eager", eager=True)

    @shared_task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(2, 3).get(timeout=5) == 5
    app.close()


def test_a_shared_task_takes_the_options_of_app_task(two_apps: tuple[Petiole, Petiole]) -> None:
    @shared_task(name="proj.whoami", bind=True, queue="special")
    def whoami(self: object) -> str:
        return self.name  # type: ignore[attr-defined, no-any-return]

    assert all("proj.whoami" in app.tasks for app in two_apps)
    assert whoami.queue == "special"
    assert whoami() == "proj.whoami"


def test_attributes_of_a_shared_task_are_those_of_the_current_app_s_task(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    first, second = two_apps

    @shared_task(name="proj.echo")
    def echo(value: str) -> str:
        return value

    assert echo.task_of() is second.tasks["proj.echo"]
    with use_app(first):
        assert echo.task_of() is first.tasks["proj.echo"]
        assert echo.s("x").app is first  # a signature of the current app's task


def test_calling_a_shared_task_with_no_app_runs_the_function() -> None:
    @shared_task
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    with pytest.raises(ConfigError, match="no Petiole app has been created yet"):
        double.delay(1)


def test_a_shared_task_with_a_bad_option_names_itself_and_the_app() -> None:
    @shared_task(queu="typo")
    def broken() -> None:
        return None

    with pytest.raises(ConfigError, match=r"shared task <shared task '.*broken'> on app 'late'"):
        new_app("late")


def test_binding_a_shared_task_twice_to_one_app_registers_it_once(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    @shared_task
    def once() -> None:
        return None

    first = two_apps[0]
    assert once.bind(first) is once.bind(first)


def test_async_result_of_an_id_alone_reads_the_current_app_s_backend(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    # Celery's `AsyncResult(task_id)`: a web request holding only the id.
    first, second = two_apps

    @second.task
    def double(x: int) -> int:
        return 2 * x

    with start_worker(second):
        sent = double.delay(21)
        assert sent.get(timeout=10) == 42
        assert AsyncResult(sent.id).get(timeout=10) == 42
        with use_app(first):
            assert AsyncResult(sent.id).app is first  # not on first's backend
            assert AsyncResult(sent.id).state == "PENDING"


def test_group_result_restore_by_id_alone_reads_the_current_app_s_backend(
    two_apps: tuple[Petiole, Petiole],
) -> None:
    second = two_apps[1]

    @second.task
    def double(x: int) -> int:
        return 2 * x

    with start_worker(second):
        saved = group(double.s(i) for i in range(3)).apply_async()
        assert GroupResult.restore(saved.id).get(timeout=10) == [0, 2, 4]


def test_async_result_of_an_id_with_no_app_created_says_how_to_create_one() -> None:
    with pytest.raises(ConfigError, match=r"no Petiole app has been created yet; create one"):
        AsyncResult("some-task-id")

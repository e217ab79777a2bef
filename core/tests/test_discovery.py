"""autodiscover_tasks: each package's tasks module, imported when the app is
finalized (a worker starts) or at once with force."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petiole import ConfigError, Petiole
from petiole.discovery import autodiscover_tasks, run_pending
from petiole.worker import Worker

Package = Callable[..., str]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Package]:
    """Writes a package under a fresh name (``files``: module name -> source) and
    returns its name; everything imported from it is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(**files: str) -> str:
        name = f"discovered_{uuid.uuid4().hex[:8]}"
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for module, source in files.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield make
    for name in [m for m in sys.modules if m.split(".")[0] in made]:
        del sys.modules[name]


# A tasks module that registers a task on the app current while it is imported.
TASKS = """
from petiole import current_app

app = current_app()

@app.task(name=__name__ + ".ping")
def ping():
    return "pong"
"""


def test_discovery_waits_until_the_app_is_finalized(app: Petiole, package: Package) -> None:
    name = package(tasks=TASKS)
    assert autodiscover_tasks(app, [name]) == []
    assert f"{name}.tasks" not in sys.modules
    assert run_pending(app) == [f"{name}.tasks"]
    assert f"{name}.tasks.ping" in app.tasks


def test_the_app_is_current_while_its_tasks_modules_are_imported(
    app: Petiole, package: Package
) -> None:
    name = package(tasks=TASKS)
    autodiscover_tasks(app, [name], force=True)
    assert sys.modules[f"{name}.tasks"].app is app


def test_force_imports_at_once(app: Petiole, package: Package) -> None:
    name = package(tasks=TASKS)
    assert autodiscover_tasks(app, [name], force=True) == [f"{name}.tasks"]
    assert f"{name}.tasks.ping" in app.tasks


def test_a_function_giving_the_packages_is_called_only_when_the_app_is_finalized(
    app: Petiole, package: Package
) -> None:
    name = package(tasks=TASKS)
    calls: list[str] = []

    def packages() -> list[str]:
        calls.append("called")
        return [name]

    autodiscover_tasks(app, packages)
    assert calls == []
    run_pending(app)
    assert calls == ["called"]
    assert f"{name}.tasks.ping" in app.tasks


def test_a_package_without_a_tasks_module_is_skipped(app: Petiole, package: Package) -> None:
    with_tasks, without = package(tasks=TASKS), package(models="")
    imported = autodiscover_tasks(app, [without, with_tasks], force=True)
    assert imported == [f"{with_tasks}.tasks"]


def test_an_import_error_inside_a_tasks_module_names_the_module(
    app: Petiole, package: Package
) -> None:
    name = package(tasks="import petiole_no_such_dependency\n")
    with pytest.raises(
        ImportError, match=rf"importing {name}\.tasks \(autodiscover_tasks\)"
    ) as info:
        autodiscover_tasks(app, [name], force=True)
    assert info.value.name == "petiole_no_such_dependency"


def test_a_package_that_cannot_be_imported_is_a_config_error(app: Petiole) -> None:
    with pytest.raises(ConfigError, match="cannot import the package 'petiole_no_such_package'"):
        autodiscover_tasks(app, ["petiole_no_such_package"], force=True)


def test_related_name_chooses_the_module_and_none_the_package_itself(
    app: Petiole, package: Package
) -> None:
    name = package(jobs=TASKS)
    assert autodiscover_tasks(app, [name], related_name="jobs", force=True) == [f"{name}.jobs"]
    assert autodiscover_tasks(app, [name], related_name=None, force=True) == [name]


def test_a_discovery_after_the_app_was_finalized_imports_at_once(
    app: Petiole, package: Package
) -> None:
    run_pending(app)
    name = package(tasks=TASKS)
    assert autodiscover_tasks(app, [name]) == [f"{name}.tasks"]
    assert run_pending(app) == []  # nothing left over


def test_discoveries_wait_per_app(app: Petiole, package: Package) -> None:
    other = Petiole("other", broker="memory://other-d", backend="memory://other-d")
    name = package(tasks=TASKS)
    autodiscover_tasks(app, [name])
    assert run_pending(other) == []
    assert run_pending(app) == [f"{name}.tasks"]
    other.close()


def test_a_finalization_that_failed_runs_again_once_fixed(
    app: Petiole, package: Package, tmp_path: Path
) -> None:
    name = package(tasks="import petiole_no_such_dependency\n")
    autodiscover_tasks(app, [name])
    with pytest.raises(ImportError):
        run_pending(app)
    (tmp_path / name / "tasks.py").write_text(textwrap.dedent(TASKS))
    assert run_pending(app) == [f"{name}.tasks"]


def test_a_worker_imports_the_modules_of_imports_and_include(package: Package) -> None:
    """Celery's ``include=[...]`` given to the app, ``imports`` by a config module:
    a worker imports both, the app current while they are imported."""
    first, second = package(tasks=TASKS), package(tasks=TASKS)
    app = Petiole(
        "imports", broker="memory://imp", backend="memory://imp", include=[f"{first}.tasks"]
    )
    app.config_from_object({"imports": [f"{second}.tasks"]})
    assert app.settings.task_modules == [f"{second}.tasks", f"{first}.tasks"]
    assert f"{first}.tasks" not in sys.modules  # a sender never imports them
    Worker(app, pool="solo", concurrency=1)
    assert {f"{first}.tasks.ping", f"{second}.tasks.ping"} <= set(app.tasks)
    app.close()


def test_a_module_of_the_imports_setting_that_fails_names_it(package: Package) -> None:
    name = package(tasks="raise RuntimeError('broken on purpose')\n")
    app = Petiole(
        "imports", broker="memory://imp2", backend="memory://imp2", imports=[f"{name}.tasks"]
    )
    with pytest.raises(
        ConfigError, match=rf"imports: cannot import '{name}.tasks'.*broken on purpose"
    ):
        Worker(app, pool="solo", concurrency=1)
    app.close()


def test_autodiscover_without_packages_says_what_to_pass() -> None:
    app = Petiole("nothing-given", broker="memory://", backend="memory://")
    with pytest.raises(ConfigError, match=r"needs the packages to look in: .*INSTALLED_APPS"):
        app.autodiscover_tasks()

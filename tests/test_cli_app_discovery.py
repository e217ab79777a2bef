"""`petiole -A proj` finds the app where Celery's `-A proj` would: in proj, then
proj.petiole, proj.celery and proj.app — run as a user would, in a fresh process
from a project directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# An app module that says which app the command line picked: `petiole plugins`
# configures the app it loaded, which calls this hook.
APP = """
from petiole import Petiole, hookimpl


class Announce:
    @hookimpl
    def petiole_app_configured(self, app):
        print(f"using app {{app.name}}", flush=True)


{attr} = Petiole("{name}", broker="memory://", backend="memory://")
{attr}.register_plugin(Announce())
"""


def write(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def app_module(name: str, attr: str = "app") -> str:
    return APP.format(name=name, attr=attr)


def python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from ``cwd``, with no PETIOLE_* variable or PYTHONPATH of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PETIOLE_", "CELERY_"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def petiole(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return python(cwd, "-m", "petiole", *args)


def picked(cwd: Path, spec: str = "proj") -> str:
    done = petiole(cwd, "-A", spec, "plugins")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("using app ")]
    assert len(lines) == 1, done.stdout
    return lines[0].removeprefix("using app ")


def test_an_app_in_the_package_itself_comes_first(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "proj/__init__.py": app_module("in-init", attr="celery_app"),
            "proj/petiole.py": app_module("in-petiole"),
        },
    )
    assert picked(tmp_path) == "in-init"


def test_the_app_in_proj_petiole_is_found(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/petiole.py": app_module("in-petiole")})
    assert picked(tmp_path) == "in-petiole"


def test_proj_petiole_comes_before_proj_celery(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "proj/__init__.py": "",
            "proj/petiole.py": app_module("in-petiole"),
            "proj/celery.py": app_module("in-celery"),
        },
    )
    assert picked(tmp_path) == "in-petiole"


def test_the_only_app_in_proj_celery_is_found_whatever_its_name(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/celery.py": app_module("in-celery", "main")})
    assert picked(tmp_path) == "in-celery"


def test_the_app_in_proj_app_is_found_last(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/app.py": app_module("in-app")})
    assert picked(tmp_path) == "in-app"


def test_an_attribute_named_after_a_colon_is_taken_and_nothing_else(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "proj/__init__.py": "",
            "proj/petiole.py": app_module("in-petiole"),
            "proj/other.py": app_module("named", attr="mine"),
        },
    )
    assert picked(tmp_path, "proj.other:mine") == "named"


def test_a_misspelt_attribute_is_named_as_missing_with_the_apps_there(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/other.py": app_module("named", attr="mine")})
    done = petiole(tmp_path, "-A", "proj.other:mien", "plugins")
    assert done.returncode != 0
    assert "proj.other has no attribute 'mien'; its Petiole apps: mine" in done.stderr


def test_with_no_app_anywhere_the_error_lists_every_place_it_looked(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/celery.py": "broker_url = 'x'\n"})
    done = petiole(tmp_path, "-A", "proj", "plugins")
    assert done.returncode != 0
    error = done.stderr
    assert "no Petiole app found for -A proj" in error
    for place in (
        "proj (no Petiole app in it)",
        "proj.petiole (no such module)",
        "proj.celery (no Petiole app in it)",
        "proj.app (no such module)",
    ):
        assert place in error


def test_a_submodule_that_fails_to_import_is_named_in_the_error(tmp_path: Path) -> None:
    write(tmp_path, {"proj/__init__.py": "", "proj/petiole.py": "import petiole_no_such_dep\n"})
    done = petiole(tmp_path, "-A", "proj", "plugins")
    assert done.returncode != 0
    assert "importing the app module 'proj.petiole' (-A proj) failed" in done.stderr
    assert "petiole_no_such_dep" in done.stderr


@pytest.mark.parametrize(
    ("files", "main_path"),
    [
        ({"proj/__init__.py": "", "proj/petiole.py": app_module("p")}, "proj.petiole:app"),
        ({"proj/__init__.py": "", "proj/celery.py": app_module("c", "main")}, "proj.celery:main"),
    ],
)
def test_the_app_remembers_where_it_was_found_for_processes_that_import_it_again(
    tmp_path: Path, files: dict[str, str], main_path: str
) -> None:
    write(tmp_path, files)
    code = "from petiole.loading import load_app; print(load_app('proj').main_path)"
    done = python(tmp_path, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == main_path

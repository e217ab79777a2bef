"""The distributions as users get them: complete metadata, a build that installs, and
a missing-plugin hint whose command works where the user is."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import petiole
from petiole.errors import UnknownComponentError
from petiole.plugins import PluginInfo, PluginRegistry, install_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # the core depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = sorted(
    p.parent
    for p in (ROOT / "plugins").glob("*/pyproject.toml")
    if not p.parent.name.startswith("_")
)
# Every distribution, and the template new plugins are copied from.
PROJECTS = [ROOT / "core", *PLUGINS, ROOT / "plugins" / "_template"]
URLS = {"Homepage", "Documentation", "Source", "Issues", "Changelog"}


def _config(folder: Path) -> dict[str, Any]:
    with (folder / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


CORE_VERSION = _config(ROOT / "core")["project"]["version"]


def _fake_clone(root: Path, *plugins: str) -> Path:
    """A clone's layout as install_command reads it; returns the core package's folder."""
    package = root / "core" / "src" / "petiole"
    package.mkdir(parents=True)
    for plugin in plugins:
        (root / "plugins" / plugin).mkdir(parents=True)
        (root / "plugins" / plugin / "pyproject.toml").write_text("")
    return package


def _wheel(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}-0.1.0-py3-none-any.whl").write_bytes(b"")


# -- metadata ----------------------------------------------------------------


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: p.name)
def test_distribution_metadata_is_complete(folder: Path) -> None:
    project = _config(folder)["project"]
    for key in ("description", "readme", "requires-python", "authors", "keywords", "classifiers"):
        assert project.get(key), f"{folder.name}: project.{key} is missing"
    assert project["license"] == "Apache-2.0"
    assert set(project["urls"]) == URLS
    home = "core" if folder.name == "core" else f"plugins/{project['name']}"
    assert project["urls"]["Source"].endswith(f"/{home}")
    # License classifiers are superseded by the license expression (and rejected with it).
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: p.name)
def test_distribution_ships_the_repository_license(folder: Path) -> None:
    config = _config(folder)
    assert config["project"]["license-files"] == ["LICENSE"]
    force_include = config["tool"]["hatch"]["build"]["targets"]["sdist"]["force-include"]
    [(source, target)] = force_include.items()
    assert target == "LICENSE"
    assert (folder / source).resolve() == ROOT / "LICENSE"
    assert "Apache License" in (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda p: p.name)
def test_plugin_folder_is_named_after_its_distribution(folder: Path) -> None:
    """scripts/build-dist and the missing-plugin hint find a plugin by its folder's name."""
    assert _config(folder)["project"]["name"] == folder.name


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda p: p.name)
def test_plugin_requires_a_core_range_that_admits_the_core_in_this_clone(folder: Path) -> None:
    requirements = [Requirement(r) for r in _config(folder)["project"]["dependencies"]]
    [core] = [r for r in requirements if r.name == "petiole"]
    assert CORE_VERSION in core.specifier
    assert any(s.operator == "<" for s in core.specifier), "no bound below the next breaking core"


# -- the missing-plugin hint -----------------------------------------------------


def test_hint_from_a_clone_installs_its_plugin_folder_editable(tmp_path: Path) -> None:
    package = _fake_clone(tmp_path / "my clone", "petiole-redis")
    _wheel(tmp_path / "my clone" / "dist", "petiole_redis")
    command = install_command("petiole-redis", package_dir=package, cwd=tmp_path)
    assert command == f"pip install -e '{tmp_path}/my clone/plugins/petiole-redis'"


def test_hint_from_a_clone_without_the_plugin_folder_uses_a_wheel_in_its_dist(
    tmp_path: Path,
) -> None:
    package = _fake_clone(tmp_path / "clone")
    _wheel(tmp_path / "clone" / "dist", "petiole_redis")
    command = install_command("petiole-redis", package_dir=package, cwd=tmp_path)
    assert command == f"pip install --find-links {tmp_path}/clone/dist petiole-redis"


def test_hint_outside_a_clone_uses_a_wheel_in_the_current_directorys_dist(tmp_path: Path) -> None:
    site_packages = tmp_path / "venv" / "lib" / "site-packages" / "petiole"
    _wheel(tmp_path / "work" / "dist", "petiole_redis")
    command = install_command("petiole-redis", package_dir=site_packages, cwd=tmp_path / "work")
    assert command == f"pip install --find-links {tmp_path}/work/dist petiole-redis"


def test_hint_without_a_local_copy_installs_from_the_package_index(tmp_path: Path) -> None:
    site_packages = tmp_path / "venv" / "lib" / "site-packages" / "petiole"
    _wheel(tmp_path / "dist", "petiole_sqs")  # another plugin's wheel is no help
    command = install_command("petiole-redis", package_dir=site_packages, cwd=tmp_path)
    assert command == "pip install petiole-redis"


def test_hint_with_a_deleted_working_directory_falls_back_to_the_package_index(
    tmp_path: Path,
) -> None:
    site_packages = tmp_path / "venv" / "lib" / "site-packages" / "petiole"
    command = install_command("petiole-redis", package_dir=site_packages, cwd=tmp_path / "gone")
    assert command == "pip install petiole-redis"


def test_unknown_scheme_from_this_clone_says_to_install_the_plugin_folder() -> None:
    if Path(petiole.__file__).resolve().parent != ROOT / "core" / "src" / "petiole":
        pytest.skip("petiole is not running from this clone")
    registry = PluginRegistry(
        infos=[PluginInfo("builtins", "petiole._builtins.plugin", "petiole", "0")]
    )
    with pytest.raises(UnknownComponentError) as info:
        registry.get("transport", "sqs")
    assert info.value.hint == f"install it with: pip install -e {ROOT}/plugins/petiole-sqs"


# -- the built distributions -------------------------------------------------------


def _run(*args: str | Path, cwd: Path | None = None, timeout_s: float) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_built_distributions_install_from_dist_and_the_hint_installs_a_missing_plugin(
    tmp_path: Path,
) -> None:
    """scripts/build-dist, then the install the docs give for a clone, in a fresh venv;
    then the command the unknown-scheme error prints, run as printed. About a minute."""
    started = time.monotonic()
    dist = tmp_path / "dist"
    _run(ROOT / "scripts" / "build-dist", dist, timeout_s=300)
    names = ["petiole", *(p.name.replace("-", "_") for p in PLUGINS)]
    versions = [CORE_VERSION, *(_config(p)["project"]["version"] for p in PLUGINS)]
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        f"{name}-{version}{suffix}"
        for name, version in zip(names, versions, strict=True)
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, timeout_s=120)
    pip = venv / "bin" / "pip"
    # Ours from dist/ only, so a release on the package index can never stand in for
    # them; then the documented command, which fetches redis-py, click and pluggy.
    _run(
        pip,
        "install",
        "--no-index",
        "--find-links",
        dist,
        "--no-deps",
        "petiole",
        "petiole-redis",
        timeout_s=120,
    )
    _run(pip, "install", "--find-links", dist, "petiole", "petiole-redis", timeout_s=300)

    python = venv / "bin" / "python"
    location = _run(
        python, "-c", "import petiole; print(petiole.__file__)", cwd=tmp_path, timeout_s=60
    )
    assert Path(location.strip()).is_relative_to(venv)
    listed = _run(venv / "bin" / "petiole", "plugins", cwd=tmp_path, timeout_s=60)
    redis_version = _config(ROOT / "plugins" / "petiole-redis")["project"]["version"]
    assert f"redis  (petiole-redis {redis_version})  [loaded]" in listed
    assert "transports: redis, rediss, unix" in listed

    # Outside a clone, next to dist/: the hint installs from it, and its command works.
    error = subprocess.run(
        [venv / "bin" / "petiole", "result", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PETIOLE_BACKEND_URL": "memcached://127.0.0.1:1"},
    )
    assert error.returncode == 1
    command = f"pip install --find-links {shlex.quote(str(dist))} petiole-memcached"
    assert f"install it with: {command}" in error.stdout + error.stderr
    pip_name, *pip_args = shlex.split(command)
    _run(venv / "bin" / pip_name, *pip_args, cwd=tmp_path, timeout_s=300)
    listed = _run(venv / "bin" / "petiole", "plugins", cwd=tmp_path, timeout_s=60)
    assert "memcached  (petiole-memcached " in listed
    print(f"built, installed and checked in {time.monotonic() - started:.0f} s")

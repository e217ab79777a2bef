"""Every development task, one session each. `nox -l` lists them.

`nox -s ci` is what `scripts/test` (and so `.ci/run`) runs: lint, types and
every test of the core and of every plugin, in one environment.
"""

from __future__ import annotations

from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
PLUGINS = sorted(
    p.name
    for p in (ROOT / "plugins").glob("*")
    if (p / "pyproject.toml").is_file() and not p.name.startswith("_")
)
# The template new plugins are copied from: not released, but linted, typed and tested
# like every plugin. Installed, it registers example:// and the "example" serializer,
# names no other plugin uses, so every app in the test run may load it harmlessly.
TEMPLATE = "_template"
CHECKED = [*PLUGINS, TEMPLATE]

nox.options.sessions = ["ci"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def _extras(plugin: str) -> set[str]:
    with (ROOT / "plugins" / plugin / "pyproject.toml").open("rb") as fh:
        project = tomllib.load(fh).get("project", {})
    return set(project.get("optional-dependencies", {}))


def _install(session: nox.Session, *plugins: str) -> None:
    session.install("-r", "requirements-dev.txt")
    # A third-party plugin living outside plugins/: found through its entry point alone.
    editable = ["-e", "core", "-e", "tests/thirdparty/petiole-example-serializer"]
    for plugin in plugins:
        # A plugin's [test] extra holds its test-only needs (an in-process server, say).
        test_extra = "[test]" if "test" in _extras(plugin) else ""
        editable += ["-e", f"plugins/{plugin}{test_extra}"]
    session.install(*editable)


def _lint(session: nox.Session) -> None:
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _types(session: nox.Session, plugins: list[str]) -> None:
    """mypy --strict (settings in pyproject.toml) over the core and each plugin's package."""
    sources = [ROOT / "plugins" / p / "src" for p in plugins]
    packages = ["petiole"] + [pkg.name for src in sources for pkg in src.iterdir() if pkg.is_dir()]
    mypy_path = ":".join(str(path) for path in [ROOT / "core" / "src", *sources])
    args = [arg for pkg in packages for arg in ("-p", pkg)]
    session.run("mypy", *args, env={"MYPYPATH": mypy_path})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting, core and plugins."""
    session.install("-r", "requirements-dev.txt")
    _lint(session)


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over the core, the plugins and the template."""
    _install(session, *CHECKED)
    _types(session, CHECKED)


@nox.session
def tests(session: nox.Session) -> None:
    """The core's tests, its conformance runs and the end-to-end tests."""
    _install(session)
    session.run("pytest", "core/tests", "tests", *session.posargs)


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def pythons(session: nox.Session) -> None:
    """The core's tests on every supported CPython (those installed here)."""
    _install(session)
    session.run("pytest", "core/tests", "tests", *session.posargs)


@nox.session
@nox.parametrize("plugin", CHECKED)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin's own tests and conformance suite, against its real server.

    `plugin(plugin='_template')` runs the template's."""
    _install(session, plugin)
    session.run("pytest", f"plugins/{plugin}/tests", *session.posargs)


@nox.session
def ci(session: nox.Session) -> None:
    """Everything CI checks: lint, types, all tests of the core, every plugin, the template."""
    _install(session, *CHECKED)
    _lint(session)
    _types(session, CHECKED)
    tests = ["core/tests", "tests", *(f"plugins/{p}/tests" for p in CHECKED)]
    session.run("pytest", *tests, *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate the settings table of docs/configuration.md from the code."""
    _install(session)
    session.run("python", "scripts/gen_docs.py")


@nox.session(venv_backend="none")
def dist(session: nox.Session) -> None:
    """Every distribution's sdist and wheel into dist/, twine-checked: scripts/build-dist.
    It keeps build and twine in .nox-tools/, so this session needs no environment of its
    own. `nox -s dist -- DIR` builds into DIR instead."""
    session.run("scripts/build-dist", *session.posargs, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not part of CI): `nox -s bench -- hooks`; with no argument, all of them."""
    _install(session, *PLUGINS)
    # The peers compared with (benchmarks/requirements.txt): latest releases from PyPI.
    session.install("-r", "benchmarks/requirements.txt")
    # arq asks for redis-py below 6, the other peers (and the tests) for 8: installed
    # without its dependencies (click and redis-py are already there), it runs on 8.
    session.install("--no-deps", "arq")
    available = {
        "hooks": "benchmarks/hook_overhead.py",
        "redis": "benchmarks/redis_peers/run.py",
        "cassandra": "benchmarks/cassandra_peers/run.py",
        "amqp_clients": "benchmarks/amqp_clients/run.py",
        "amqp": "benchmarks/amqp_peers/run.py",
        "codecs": "benchmarks/codecs/run.py",
        "producer": "benchmarks/producer/run.py",
        "sqlite": "benchmarks/sqlite_default/run.py",
        "floor": "benchmarks/round_trip_floor/run.py",
    }
    chosen = session.posargs or sorted(available)
    for name in chosen:
        if name not in available:
            session.error(f"unknown benchmark {name!r}; choose from {', '.join(sorted(available))}")
        session.run("python", available[name])


@nox.session
def cassandra_cluster(session: nox.Session) -> None:
    """Three Cassandra nodes on 127.0.0.1-3, RF 3, QUORUM; one stopped mid-run loses no
    result (not part of CI; about a minute and 2.5 GB of memory)."""
    _install(session, "petiole-cassandra")
    session.run("python", "plugins/petiole-cassandra/cluster/run_cluster.py", *session.posargs)


@nox.session
def redis_soak(session: nox.Session) -> None:
    """Redis broker and results under chaos for 10 minutes (workers SIGKILLed every few
    seconds, the server every minute): nothing lost (not part of CI; `-- --minutes 2`
    for a shorter run)."""
    _install(session, "petiole-redis")
    session.run("python", "plugins/petiole-redis/soak/run_soak.py", *session.posargs)

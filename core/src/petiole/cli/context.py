"""What every subcommand shares: the app (from -A, before or after the subcommand),
the config file, and logging.

Logging is set up once the app is loaded (:meth:`CliState.app`), so that the
app's plugins — its in-code ones included — can take it over through
``petiole_setup_logging``; the level is ``--loglevel``, else the ``log_level``
setting, else INFO without the worker's line per task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from petiole.app import Petiole
from petiole.config import CONFIG_ENV, load_settings
from petiole.errors import PetioleError
from petiole.loading import load_app
from petiole.logs import DEFAULT_LEVEL, setup_logging
from petiole.worker import hooks

F = TypeVar("F", bound=Callable[..., Any])

APP_ENV = "PETIOLE_APP"


@dataclass
class CliState:
    app_spec: str | None = None
    loglevel: str | None = None
    #: The worker's --logfile, where its output already goes (for the logging hook).
    logfile: str | None = None
    _app: Petiole | None = None
    _logging_set_up: bool = False

    def app(self) -> Petiole:
        """The -A app (else ``$PETIOLE_APP``, else the config file's ``app``), or with
        none named, a plain app configured from the config file and environment
        (enough to talk to the broker and results). Sets up logging the first time."""
        if self._app is None:
            spec = self.app_spec or os.environ.get(APP_ENV) or load_settings().app
            self._app = load_app(spec) if spec else Petiole()
            if not self._logging_set_up:
                self._logging_set_up = True
                level = self.loglevel or self._app.settings.log_level
                hooks.setup_logging(self._app, level, logfile=self.logfile)
        return self._app

    def setup_logging_without_app(self) -> None:
        """For a plugin's subcommand, which may never load an app: log the CLI's way."""
        if not self._logging_set_up:
            self._logging_set_up = True
            setup_logging(self.loglevel or DEFAULT_LEVEL)


def _remember_app(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(CliState).app_spec = value
    return value


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        # Through the environment, so apps loaded later (and pool children) see it too.
        os.environ[CONFIG_ENV] = os.path.abspath(value)
    return value


def _set_loglevel(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(CliState).loglevel = value  # applied once the app is loaded
    return value


def common_options(fn: F) -> F:
    """-A/--app, --config and --loglevel, accepted on the group and on every subcommand."""
    fn = click.option(
        "-l",
        "--loglevel",
        metavar="LEVEL",
        expose_value=False,
        is_eager=True,
        callback=_set_loglevel,
        type=click.Choice(
            ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL"], case_sensitive=False
        ),
        help="How much to log: DEBUG, INFO, WARNING, ERROR or CRITICAL (FATAL, as Celery "
        "spells it; default: the log_level "
        "setting; unset, INFO without the worker's line per task, which -l INFO adds).",
    )(fn)
    fn = click.option(
        "-A",
        "--app",
        "app_spec",
        metavar="MODULE[:ATTR]",
        expose_value=False,
        is_eager=True,
        callback=_remember_app,
        help=f"The app to use, e.g. proj.tasks:app (default: ${APP_ENV}, else the config "
        "file's `app` setting, else a plain app configured from the config file and "
        "environment).",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        metavar="PATH",
        expose_value=False,
        is_eager=True,
        callback=_remember_config,
        type=click.Path(dir_okay=False),
        help=f"Config file (default: ${CONFIG_ENV}, else ./petiole.toml, else "
        "[tool.petiole] in ./pyproject.toml).",
    )(fn)
    return fn


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def fail(exc: PetioleError) -> None:
    raise click.ClickException(str(exc)) from exc

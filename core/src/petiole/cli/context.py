"""What every subcommand shares: the app (from -A, before or after the subcommand),
the config file, and logging."""

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
from petiole.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])

APP_ENV = "PETIOLE_APP"


@dataclass
class CliState:
    app_spec: str | None = None
    loglevel: str | None = None
    _app: Petiole | None = None

    def app(self) -> Petiole:
        """The -A app (else ``$PETIOLE_APP``, else the config file's ``app``), or with
        none named, a plain app configured from the config file and environment
        (enough to talk to the broker and results)."""
        if self._app is None:
            spec = self.app_spec or os.environ.get(APP_ENV) or load_settings().app
            self._app = load_app(spec) if spec else Petiole()
        return self._app


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
        ctx.ensure_object(CliState).loglevel = value
        setup_logging(value)
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
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        help="How much to log: DEBUG, INFO (the default), WARNING or ERROR.",
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

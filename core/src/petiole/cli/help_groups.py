"""``--help`` in sections: options grouped under headings, as Celery's worker shows them.

click lists every option under one "Options" heading. Declare an option with
``cls=GroupedOption, group="Pool Options"`` (or through :func:`grouped_option`)
in a command made with ``cls=GroupedCommand``: its help then has one section per
group, in the order the groups first appear, and a last "Options" section for
the options that name no group (``-A``, ``--config``, ``--help``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

UNGROUPED = "Options"


class GroupedOption(click.Option):
    """A click option that names the section of ``--help`` it is listed in."""

    def __init__(self, *args: Any, group: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


def grouped_option(*param_decls: str, group: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option(...)`` listed under ``group`` in ``--help``."""
    return click.option(*param_decls, cls=GroupedOption, group=group, **kwargs)


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists options by their :class:`GroupedOption` group."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        ungrouped: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            group = getattr(param, "group", None)
            if group is None:
                ungrouped.append(record)
            else:
                sections.setdefault(group, []).append(record)
        if ungrouped:
            sections[UNGROUPED] = ungrouped
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)

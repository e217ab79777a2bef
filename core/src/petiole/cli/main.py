"""The ``petiole`` group; subcommands live in their own modules, plugins add more."""

from __future__ import annotations

from typing import Any

import click

from petiole import __version__, celery_names
from petiole.cli import dlq, inspect_cmds, plugins_cmd, worker_cmd
from petiole.cli.context import common_options, state
from petiole.errors import PetioleError
from petiole.plugins import PluginRegistry


class PetioleGroup(click.Group):
    """Loads plugin subcommands only when a name is not one of ours (or for --help)."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        try:
            found = PluginRegistry().cli_commands()
        except PetioleError:
            return {}
        return {c.name: c for c in found if c.name and c.name not in self.commands}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return command or self._plugin_commands().get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and name in celery_names.COMMANDS:
            ctx.fail(f"No such command '{name}' (Celery's): {celery_names.COMMANDS[name]}.")
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PetioleError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=PetioleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(__version__, prog_name="petiole")
def cli() -> None:
    """Petiole: a distributed task queue.

    Run a worker with `petiole worker -A proj.tasks`, send a task with
    `petiole call proj.tasks.add --args '[2, 3]' --wait`. The app (-A) and
    --config may be given before or after the subcommand.
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand not in cli.commands:
        # A plugin's subcommand may never load an app, where ours set up logging.
        state().setup_logging_without_app()


cli.add_command(worker_cmd.worker)
cli.add_command(inspect_cmds.call)
cli.add_command(inspect_cmds.result)
cli.add_command(inspect_cmds.purge)
cli.add_command(inspect_cmds.revoke)
cli.add_command(plugins_cmd.plugins)
cli.add_command(dlq.dlq)


def main() -> None:
    cli.main(prog_name="petiole")

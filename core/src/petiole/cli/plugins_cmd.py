"""``petiole plugins``."""

from __future__ import annotations

import click

from petiole.cli.context import common_options, state


@click.command()
@common_options
def plugins() -> None:
    """List every discovered plugin: distribution, version, status, components, hooks.

    Plugins disabled by the plugins_enabled / plugins_disabled settings are shown
    as disabled; one that fails to import is shown with its error.
    """
    registry = state().app().plugins
    for kind in registry.kinds():
        registry.provided(kind)  # fills in each plugin's components
    labels = {kind: f"{kind}s" for kind in registry.kinds()}
    for info in registry.infos.values():
        version = f" {info.version}" if info.version else ""
        click.echo(f"{info.name}  ({info.distribution}{version})  [{info.status}]")
        if info.error is not None:
            click.echo(f"    error: {info.error.error.__class__.__name__}: {info.error.error}")
        for kind, names in sorted(info.components.items()):
            click.echo(f"    {labels[kind]}: {', '.join(names)}")
        for kind, failure in sorted(info.component_errors.items()):
            click.echo(f"    {labels.get(kind, kind)} failed: {failure}")
        if info.hooks:
            click.echo(f"    hooks: {', '.join(info.hooks)}")

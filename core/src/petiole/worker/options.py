"""What a worker's own options mean before it starts: settings it overrides,
the queues it consumes, and whether its pool can autoscale."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from petiole.config import Settings, validate
from petiole.errors import ConfigError, PetioleError
from petiole.plugins import BUILTINS, PluginRegistry
from petiole.pools.base import Pool, Resizable
from petiole.worker.layout import PREFORK

logger = logging.getLogger("petiole.worker")


def overridden(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with the overrides that were given (not None), validated as
    any other source of settings is."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return settings
    return dataclasses.replace(settings, **validate(given, source="the worker's options"))


def consumed_queues(queues: list[str], excluded: Sequence[str]) -> list[str]:
    """``queues`` without the ``excluded`` ones (``-X``); at least one must remain."""
    left = [queue for queue in queues if queue not in excluded]
    if not left:
        raise ConfigError(
            f"-X/--exclude-queues {','.join(excluded)} leaves no queue to consume of "
            f"{','.join(queues)}; name others with -Q or the worker_queues setting"
        )
    unknown = [queue for queue in excluded if queue not in queues]
    if unknown:
        logger.warning(
            "-X/--exclude-queues names queues this worker would not consume anyway: %s",
            ", ".join(unknown),
        )
    return left


def check_autoscaling(pool: Pool, pool_name: str, plugins: PluginRegistry, idle_s: float) -> None:
    """Raise :class:`ConfigError` unless ``pool`` can be autoscaled."""
    if not isinstance(pool, Resizable):
        raise ConfigError(
            f"--autoscale needs a pool that can resize, and the {pool_name} pool cannot; "
            f"pools that can: {', '.join(resizable_pools(plugins)) or 'none'}"
        )
    if idle_s <= 0:
        raise ConfigError(f"the autoscale idle time must be above 0 s, not {idle_s!r}")


def resizable_pools(plugins: PluginRegistry) -> list[str]:
    """The pools that can resize, of the core's and of the plugins' already loaded:
    importing a plugin's pool only to ask has effects of its own (gevent's)."""
    names = []
    for name, provided in sorted(plugins.provided("pool").items()):
        if name == PREFORK:
            continue  # under ``petiole worker``, fixed worker processes (worker/layout.py)
        if isinstance(provided.component, str) and provided.plugin != BUILTINS:
            continue
        try:
            factory = plugins.get("pool", name).component
        except PetioleError:
            continue  # a pool that does not load cannot be offered
        if callable(getattr(factory, "resize", None)):
            names.append(name)
    return names


def warn_of_unused(
    pool: Pool,
    pool_name: str,
    *,
    concurrency: int | None,
    autoscaling: bool,
    recycling: bool,
    supervised: bool = False,
) -> None:
    """Log the options given to this worker that its pool will not use (a supervised
    worker that runs tasks itself recycles its own process)."""
    if autoscaling and concurrency:
        logger.warning(
            "concurrency %d is not used: with autoscale the pool runs between MIN and MAX",
            concurrency,
        )
    recycles = getattr(pool, "runs_in_children", False) or (
        supervised and getattr(pool, "runs_inline", False)
    )
    if recycling and not recycles:
        logger.warning(
            "max_tasks_per_child and max_memory_per_child_mb replace pool children, or a "
            "supervised worker process that runs tasks itself (--workers N -P solo); "
            "the %s pool has no children and does not use them",
            pool_name,
        )

"""``petiole worker``."""

from __future__ import annotations

import sys

import click

from petiole.cli.context import common_options, state
from petiole.worker import Worker


@click.command()
@common_options
@click.option(
    "-Q",
    "--queues",
    metavar="A,B",
    default=None,
    help="Comma-separated queues to consume, earlier ones first "
    "(default: the worker_queues setting, else default_queue).",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once (default: worker_concurrency, else the number of CPUs).",
)
@click.option(
    "-P",
    "--pool",
    metavar="NAME",
    default=None,
    help="processes (isolated children; the default), threads (I/O-bound tasks), "
    "solo (one at a time, in the worker itself), or a plugin's pool.",
)
@click.option(
    "--prefetch-multiplier",
    type=click.IntRange(min=1),
    default=None,
    help="Hold at most concurrency x this many messages (default: prefetch_multiplier).",
)
@click.option(
    "--shutdown-timeout",
    "shutdown_timeout_s",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds running tasks may take to finish after SIGTERM before they are returned "
    "to the queue (default: shutdown_timeout_s).",
)
@click.option("-n", "--hostname", default=None, help="Name of this worker in logs and results.")
def worker(
    queues: str | None,
    concurrency: int | None,
    pool: str | None,
    prefetch_multiplier: int | None,
    shutdown_timeout_s: float | None,
    hostname: str | None,
) -> None:
    """Consume tasks and run them.

    Acknowledges a message only after its task finished, renews the lease of
    every message it holds, and on SIGTERM or Ctrl-C stops taking new work,
    returns unstarted messages at once, and lets running tasks finish (a second
    signal stops at once; running tasks then return to the queue).
    """
    app = state().app()
    w = Worker(
        app,
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        concurrency=concurrency,
        pool=pool,
        prefetch_multiplier=prefetch_multiplier,
        shutdown_timeout_s=shutdown_timeout_s,
        hostname=hostname,
    )
    code = w.run()
    app.close()
    sys.exit(code)

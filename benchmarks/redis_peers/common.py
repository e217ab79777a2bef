"""What the system modules and the runner share: each system's two sets of flags, the
producer's entry point, the Redis command counter and the tasks that Celery and
Petiole define alike (the workloads themselves are in ``systemkit``, shared with
``amqp_peers``).

Each system module (``sys_petiole``, ``sys_celery``, ``sys_dramatiq``, ``sys_taskiq``,
``sys_arq``, ``sys_rq``) defines its app, two tasks (``noop()`` and ``echo(x) -> x``)
and the same small interface, used by the runner (``run.py``) and by the producer
subprocess (``python sys_<name>.py ACTION N``, which prints one JSON object):

* ``NAME``; ``FLAGS``: a :class:`Flags` for ``"default"`` (the worker command as its
  documentation starts it, no option) and one for ``"best"`` (the fastest flags
  measured here for many tiny tasks);
* ``remaining(client)``: messages not yet acknowledged (or, for a system without
  acknowledgements, not yet finished), from the system's own keys;
* ``PRODUCER``: a ``systemkit.QueueProducer``.

The runner exports ``FLAGS_ENV`` (``default`` or ``best``) to the workers and the
producer, for a system whose flags would have to live in its app's settings; today
every system's best flags are on its command line (arq's: a second settings class).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import systemkit
from systemkit import Figures, QueueProducer, define_tasks, redis_url

if TYPE_CHECKING:
    # Imported where used, not here: the worker processes load a system's module (its
    # app), and redis-py in them would count in their memory when the system does
    # not use it there.
    import redis

__all__ = [
    "FLAGS_ENV",
    "RESULT_TIMEOUT_S",
    "Flags",
    "Producer",
    "RedisCommands",
    "commands_by_name",
    "define_tasks",
    "delay_producer",
    "produce",
]

# How long the producer waits for any one result (a broken worker must not hang the run).
RESULT_TIMEOUT_S = 60.0
FLAGS_ENV = "BENCH_FLAGS"

Producer = QueueProducer


@dataclass(frozen=True, kw_only=True)
class Flags:
    """One way to run a system's workers: what the runner starts, and what the report says."""

    commands: Sequence[Sequence[str]]  # one worker process (with its own children) each
    shown: str  # the command line(s) as a user types them
    why: str = ""  # why these flags are the best ones (empty for the defaults)
    env: Mapping[str, str] = field(default_factory=dict)  # for the workers only
    # The workloads' sizes times this: a system that runs tens of tasks a second gets
    # fewer of them, so the whole table stays within minutes (rates are per second).
    scale: float = 1.0
    # When no flag measured faster than the defaults: "default", and the runner shows the
    # default row's figures for this one instead of running the same command twice.
    same_as: str | None = None


# -- Redis commands per task -------------------------------------------------------------

# What the counting itself sends (and ``CONFIG RESETSTAT`` the runner sends): not counted.
_NOT_COUNTED = frozenset({"info", "config|resetstat", "config"})


def commands_by_name(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last ``CONFIG RESETSTAT`` (``INFO commandstats``).
    Redis counts the commands a Lua script runs as calls too, so a script that touches
    four keys counts as five."""
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(values["calls"])
        for name, values in stats.items()
        if name.removeprefix("cmdstat_") not in _NOT_COUNTED
    }


def commands_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The calls of each command from one ``commands_by_name`` to the next (non-zero only)."""
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if calls != before.get(name, 0)
    }


class RedisCommands:
    """A ``systemkit.Meter``: the commands every client sent redis-server between
    ``start()`` and ``stop()`` (figures ``commands`` and ``commands_by_name``)."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._before: dict[str, int] = {}

    def start(self) -> None:
        self._before = commands_by_name(self._client)

    def stop(self) -> Figures:
        counted = commands_between(self._before, commands_by_name(self._client))
        return {"commands": sum(counted.values()), "commands_by_name": counted}


# -- producer side ------------------------------------------------------------------------


def produce(producer: QueueProducer, argv: Sequence[str]) -> NoReturn:
    """The producer subprocess's entry point: W2 and W3 count Redis commands too."""
    systemkit.produce_queue_workloads(producer, argv, RedisCommands(redis_url()))


def delay_producer(
    noop: Any,
    echo: Any,
    send_and_wait: Callable[[int], list[Any]],
    send_batch_and_wait: Callable[[int], list[Any]],
) -> Producer:
    """``systemkit.delay_producer`` with this benchmark's result timeout."""
    return systemkit.delay_producer(
        noop,
        echo,
        send_and_wait,
        result_timeout_s=RESULT_TIMEOUT_S,
        send_batch_and_wait=send_batch_and_wait,
    )

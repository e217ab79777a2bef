"""``task_routes``: the queue (and priority, serializer, ...) of a task, chosen by its name.

Routes are tried in order; the first that matches gives the options. A route is

* a mapping of *patterns* to options — an exact task name, a glob
  (``"proj.feeds.*"``), a regular expression (``re.compile(...)`` in Python, or a
  string starting with ``re:`` in a config file) — where the options are a table
  (``{"queue": "feeds", "priority": 7}``) or just a queue name (``"feeds"``);
* or a function ``route(name, args, kwargs, options) -> options | queue | None``.

A call's own options win over its route, a route over the task's
``@app.task(...)`` options, those over the app's settings.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from petiole.errors import ConfigError

#: The send options a route may set.
ROUTE_OPTIONS = frozenset(
    {"queue", "priority", "serializer", "compression", "soft_time_limit_s", "time_limit_s"}
)
# Celery's AMQP routing keys, which Petiole replaces by queues alone.
_AMQP_ONLY = frozenset({"exchange", "exchange_type", "routing_key"})

RouteFunction = Callable[[str, Sequence[Any], Mapping[str, Any], Mapping[str, Any]], Any]


def _options(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"queue": value}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: a route gives a queue name or a table of options, got {value!r}"
        )
    options = dict(value)
    amqp = set(options) & _AMQP_ONLY
    if amqp:
        raise ConfigError(
            f"{where}: {', '.join(sorted(amqp))}: Petiole routes by queue alone; "
            'give {"queue": "..."} (every transport, AMQP included, delivers by queue name)'
        )
    unknown = set(options) - ROUTE_OPTIONS
    if unknown:
        raise ConfigError(
            f"{where}: unknown route option(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(sorted(ROUTE_OPTIONS))}"
        )
    return options


def _matcher(pattern: Any, where: str) -> Callable[[str], bool]:
    if isinstance(pattern, re.Pattern):
        return lambda name: pattern.match(name) is not None
    if not isinstance(pattern, str):
        raise ConfigError(
            f"{where}: a route pattern is a string or re.compile(...), got {pattern!r}"
        )
    if pattern.startswith("re:"):
        try:
            compiled = re.compile(pattern[3:])
        except re.error as exc:
            raise ConfigError(f"{where}: {pattern!r} is not a regular expression: {exc}") from None
        return lambda name: compiled.match(name) is not None
    if any(c in pattern for c in "*?["):
        glob = re.compile(fnmatch.translate(pattern))
        return lambda name: glob.match(name) is not None
    return lambda name: name == pattern


class Router:
    """The ``task_routes`` setting, checked once and applied to each send."""

    def __init__(self, routes: Any) -> None:
        # (matcher, options) pairs and route functions, in the order given.
        self._ordered: list[tuple[Callable[[str], bool], dict[str, Any]] | RouteFunction] = []
        self._cache: dict[str, dict[str, Any]] = {}
        self._static = True
        if routes is None:
            return
        entries = [routes] if isinstance(routes, Mapping) or callable(routes) else list(routes)
        for i, entry in enumerate(entries):
            where = f"task_routes[{i}]" if not isinstance(routes, Mapping) else "task_routes"
            if callable(entry) and not isinstance(entry, Mapping):
                self._ordered.append(entry)
            elif isinstance(entry, Mapping):
                for pattern, value in entry.items():
                    at = f"{where}[{pattern!r}]"
                    self._ordered.append((_matcher(pattern, at), _options(value, at)))
            else:
                raise ConfigError(
                    f"{where}: a route is a mapping of patterns or a function, got {entry!r}"
                )
        # Names are few and routes fixed: remember each name's answer unless a
        # function (which may look at the arguments) takes part.
        self._static = all(isinstance(e, tuple) for e in self._ordered)

    def __bool__(self) -> bool:
        return bool(self._ordered)

    def route(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The options the first matching route gives ``name``; ``{}`` when none matches."""
        if self._static:
            cached = self._cache.get(name)
            if cached is not None:
                return cached
        found: dict[str, Any] = {}
        for entry in self._ordered:
            if isinstance(entry, tuple):
                matches, given = entry
                if matches(name):
                    found = given
                    break
            else:
                answer = entry(name, args, kwargs, options)
                if answer is not None:
                    found = _options(answer, f"task_routes function {entry!r} for {name!r}")
                    break
        if self._static and len(self._cache) < 10_000:
            self._cache[name] = found
        return found

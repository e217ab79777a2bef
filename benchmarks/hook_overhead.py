"""What the per-task hook machinery costs when no plugin implements the hooks.

The worker resolves once, at start, which per-task hooks have implementations;
a hook nobody implements costs one ``is None`` test per task. This measures a
task's trip through ``TaskRunner.call`` (request context, soft-limit guard,
hooks) against calling the function bare, with and without a plugin that
implements the hooks, and what calling an *empty* pluggy hook would have cost
had we not guarded it.

    nox -s bench -- hooks        (or: python benchmarks/hook_overhead.py)
"""

from __future__ import annotations

import os
import timeit
from typing import Any

from petiole import Petiole, Request, Task, hookimpl
from petiole.envelope import PROTOCOL_VERSION, Envelope
from petiole.execution import TaskRunner
from petiole.serializers import JsonSerializer

ROUNDS = 200_000


class NoopPlugin:
    @hookimpl
    def petiole_task_prerun(self, task: Task[Any, Any], request: Request) -> None:
        pass

    @hookimpl
    def petiole_task_postrun(
        self, task: Task[Any, Any], request: Request, state: str, retval: Any
    ) -> None:
        pass


def _runner(with_plugin: bool) -> tuple[TaskRunner, Any]:
    store = "memory://bench"
    app = Petiole("bench", broker=store, backend=store, config_file=os.devnull)
    if with_plugin:
        app.register_plugin(NoopPlugin(), "noop")

    @app.task(name="bench.add")
    def add(x: int, y: int) -> int:
        return x + y

    json = JsonSerializer()
    headers = {"protocol": PROTOCOL_VERSION, "id": "b", "task": "bench.add", "sent_at": 0.0}
    envelope = Envelope(headers, json.dumps([[1, 2], {}]), json.content_type)
    runner = TaskRunner(app, hostname="bench")
    prepared = runner.prepare(envelope, queue="q", delivery_count=1)
    return runner, prepared


def _per_call_us(stmt: Any) -> float:
    best = min(timeit.repeat(stmt, number=ROUNDS, repeat=5))
    return best / ROUNDS * 1e6


def main() -> None:
    bare_runner, prepared = _runner(with_plugin=False)
    hooked_runner, hooked_prepared = _runner(with_plugin=True)
    task = prepared.task
    empty_hook = bare_runner.app.plugins.hook.petiole_task_prerun

    rows = [
        ("task function, called bare", _per_call_us(lambda: task(1, 2))),
        (
            "TaskRunner.call, no hook implemented",
            _per_call_us(lambda: bare_runner.call(prepared, soft_time_limit_s=None)),
        ),
        (
            "TaskRunner.call, prerun+postrun implemented",
            _per_call_us(lambda: hooked_runner.call(hooked_prepared, soft_time_limit_s=None)),
        ),
        (
            "one empty pluggy hook call (what the guard avoids)",
            _per_call_us(lambda: empty_hook(task=task, request=prepared.request)),
        ),
    ]
    base = rows[0][1]
    print(f"{'per task':<52} {'µs':>8} {'vs bare':>9}")
    for label, micros in rows:
        print(f"{label:<52} {micros:8.3f} {micros / base:8.1f}x")
    overhead = rows[1][1] - rows[0][1]
    print(f"\nhook machinery + request context with no plugin: {overhead:.3f} µs per task")


if __name__ == "__main__":
    main()

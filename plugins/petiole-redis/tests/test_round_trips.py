"""How many commands Redis executes per task, from ``INFO commandstats``.

Every command the server ran counts, those a script runs included (Redis counts
a script's ``redis.call`` commands as well as its ``EVALSHA``), divided by the
tasks: the figure issue 19 sets targets for. Three workloads on a server of
the test's own, with a real worker on the default settings but the threads pool
(so the test app need not be importable by path; its smaller reserves and ack
batches send more commands per task than prefork's, which the ``bench`` session
measures):

* **enqueue** no-op tasks (no result), one by one, with no worker running;
* **W1** drain them: start a worker and count until every one is settled;
* **W2** send tasks whose results are stored, and wait for all of them;
* **W3** sequential round trips, ``echo.delay(i).get()``.

Command counts are deterministic enough to assert (no timing is asserted):
what varies from run to run is how many tasks share a reserve or an ack batch,
and an idle worker's waits. Each workload is run once per module; one test
holds the plugin to what it reaches on its own (a ceiling with a little room
for that variation), and one holds it to issue 19's target where that is met: by
both layouts of the broker's keys for the W1 drain, by the streams layout for all
three; the list layout's W2 and W3 are expected to miss it (see the plugin's README,
"Commands per task"). ``pytest -s`` prints the per-command breakdown.
"""

from __future__ import annotations

import collections
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport

from petiole import Petiole
from petiole.result import GroupResult
from petiole.testing import wait_until
from petiole.testing.servers import serve
from petiole.worker import Worker

TASKS = 400
ROUND_TRIPS = 200
RESULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Limit:
    """Commands per task: what the plugin reaches alone, and issue 19's target."""

    ceiling: float
    target: float | None = None  # None: the issue sets none


# Per layout of the broker's keys (the streams layout, the default, and the list one).
LIMITS = {
    "lists": {
        "enqueue": Limit(ceiling=4.5),  # measured 4.0: the publish script and its three writes
        # The drain: measured 1.7-2.3 alone, 2.9 in a loaded CI run (a slower drain renews
        # leases more often); the issue's target is what must hold.
        "W1": Limit(ceiling=3.5, target=4.0),
        # A stored result is one SET since waits are woken by client tracking.
        "W2": Limit(ceiling=14.5, target=8.0),  # measured 12.5 (16-17.5 before, 32.9 first)
        "W3": Limit(ceiling=25.0, target=10.0),  # measured 22.6 (27.8 before, 57.1 first)
    },
    "streams": {
        "enqueue": Limit(ceiling=1.1),  # one XADD (and the consumer group made once)
        "W1": Limit(ceiling=1.5, target=4.0),  # measured 0.26 (1.3 with an XPENDING per ack)
        "W2": Limit(ceiling=6.0, target=8.0),  # measured 3.6-4.5
        # A result pushed to its waiting sender, who counts on it: a PUBLISH, no MGET;
        # acks ride on reserves, in batches.
        "W3": Limit(ceiling=7.0, target=10.0),  # measured 4.7 (5.6-7.0 before)
    },
}
URL_QUERY = {"lists": "?layout=lists", "streams": ""}
# Issue 19's targets: met, and (expected to fail) not yet met by the list layout.
MET = [("lists", "W1"), *(("streams", w) for w in ("W1", "W2", "W3"))]
NOT_YET_MET = [("lists", "W2"), ("lists", "W3")]
CEILINGS = [(layout, w) for layout, limits in LIMITS.items() for w in sorted(limits)]


@dataclass(frozen=True)
class Tally:
    """Commands the server ran during one workload, by name."""

    calls: collections.Counter[str]
    tasks: int

    @property
    def per_task(self) -> float:
        return sum(self.calls.values()) / self.tasks

    def breakdown(self, title: str) -> str:
        lines = [f"{title}: {self.per_task:.2f} commands per task ({self.tasks} tasks)"]
        for name, calls in self.calls.most_common():
            lines.append(f"    {name:<14} {calls / self.tasks:6.2f}  ({calls})")
        return "\n".join(lines)


class CommandCounter:
    """Reads the server's command statistics around a workload."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def reset(self) -> None:
        self.client.config_resetstat()

    def tally(self, tasks: int) -> Tally:
        stats: dict[str, Any] = self.client.info("commandstats")
        calls: collections.Counter[str] = collections.Counter()
        for name, values in stats.items():
            command = name.removeprefix("cmdstat_")
            if not command.startswith("config"):  # the reset itself
                calls[command] = int(values["calls"])
        return Tally(calls, tasks)


@dataclass(frozen=True)
class Setup:
    url: str
    app: Petiole
    noop: Any
    echo: Any
    counter: CommandCounter


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server of this module's own: no other client's commands are counted."""
    yield from serve(RedisServer(tmp_path_factory.mktemp("round-trips")))


@contextlib.contextmanager
def app_on(server: RedisServer, layout: str) -> Iterator[Setup]:
    """An app on ``server``, its broker in ``layout``, with the workloads' two tasks."""
    broker = server.url + URL_QUERY[layout]
    app = Petiole("round-trips", broker=broker, backend=server.url, config_file=os.devnull)

    @app.task(name="round_trips.noop", ignore_result=True)
    def noop() -> None:
        pass

    @app.task(name="round_trips.echo")
    def echo(x: int) -> int:
        return x

    client = server.client()
    try:
        yield Setup(server.url, app, noop, echo, CommandCounter(client))
    finally:
        client.close()
        app.close()


@contextlib.contextmanager
def running_worker(app: Petiole) -> Iterator[Worker]:
    """A worker on the default settings but the pool (see the module docstring)."""
    worker = Worker(app, pool="threads")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def settled(worker: Worker) -> int:
    return sum(worker.counts.values())


def enqueue_then_drain(setup: Setup) -> tuple[Tally, Tally]:
    """Enqueue (counted), then W1: start a worker and count until it settled every task."""
    setup.counter.reset()
    for _ in range(TASKS):
        setup.noop.delay()
    enqueued = setup.counter.tally(TASKS)
    setup.counter.reset()
    with running_worker(setup.app) as worker:
        assert wait_until(lambda: settled(worker) >= TASKS, timeout_s=RESULT_TIMEOUT_S)
        return enqueued, setup.counter.tally(TASKS)


def results(setup: Setup) -> Tally:
    """W2: send tasks with results, then wait for all of them."""
    with running_worker(setup.app):
        setup.counter.reset()
        sent = [setup.echo.delay(i) for i in range(TASKS)]
        got = GroupResult(str(uuid.uuid4()), sent, setup.app).get(timeout=RESULT_TIMEOUT_S)
        assert got == list(range(TASKS))
        return setup.counter.tally(TASKS)


def round_trips(setup: Setup) -> Tally:
    """W3: one task at a time, each result awaited before the next is sent."""
    with running_worker(setup.app):
        setup.counter.reset()
        for i in range(ROUND_TRIPS):
            assert setup.echo.delay(i).get(timeout=RESULT_TIMEOUT_S) == i
        return setup.counter.tally(ROUND_TRIPS)


def measure(setup: Setup) -> dict[str, Tally]:
    enqueued, drained = enqueue_then_drain(setup)
    measured = {
        "enqueue": enqueued,
        "W1": drained,
        "W2": results(setup),
        "W3": round_trips(setup),
    }
    titles = {"enqueue": "enqueue", "W1": "W1 drain", "W2": "W2 results", "W3": "W3 round trips"}
    print("\n" + "\n".join(measured[w].breakdown(titles[w]) for w in measured))
    return measured


@pytest.fixture(scope="module")
def tallies(server: RedisServer) -> Callable[[str], dict[str, Tally]]:
    """The workloads' tallies of a layout, measured once per module."""
    cache: dict[str, dict[str, Tally]] = {}

    def of(layout: str) -> dict[str, Tally]:
        if layout not in cache:
            with app_on(server, layout) as setup:
                cache[layout] = measure(setup)
        return cache[layout]

    return of


@pytest.mark.parametrize(("layout", "workload"), CEILINGS)
def test_commands_per_task_stay_within_the_plugins_ceiling(
    tallies: Callable[[str], dict[str, Tally]], layout: str, workload: str
) -> None:
    assert tallies(layout)[workload].per_task <= LIMITS[layout][workload].ceiling


@pytest.mark.parametrize(("layout", "workload"), MET)
def test_commands_per_task_meet_issue_19s_target(
    tallies: Callable[[str], dict[str, Tally]], layout: str, workload: str
) -> None:
    target = LIMITS[layout][workload].target
    assert target is not None
    assert tallies(layout)[workload].per_task <= target


@pytest.mark.xfail(
    strict=True,
    reason="the list layout keeps a message in three keys and wakes workers with a "
    "token: the streams layout meets these (plugin README, 'Commands per task')",
)
@pytest.mark.parametrize(("layout", "workload"), NOT_YET_MET)
def test_commands_per_task_meet_issue_19s_target_later(
    tallies: Callable[[str], dict[str, Tally]], layout: str, workload: str
) -> None:
    target = LIMITS[layout][workload].target
    assert target is not None
    assert tallies(layout)[workload].per_task <= target


@pytest.mark.parametrize("layout", sorted(LIMITS))
def test_each_round_trips_result_is_pushed_to_its_waiting_sender(
    tallies: Callable[[str], dict[str, Tally]], layout: str
) -> None:
    """W3's sender listens (it waited in W2 already): each result comes with its
    store (one PUBLISH per task), and the wait, counting on it, reads nothing
    unless the round trip outlasts the push's grace (50 ms: a loaded machine's
    hiccup, a handful of times in 200 at most)."""
    calls = tallies(layout)["W3"].calls
    assert calls["publish"] == ROUND_TRIPS
    assert calls.get("mget", 0) <= ROUND_TRIPS // 10


def test_an_idle_reserve_blocks_without_running_a_script(server: RedisServer) -> None:
    """After a reserve found its queues drained, the next one waits for a wake
    token at once instead of asking again (one BLPOP, no EVALSHA)."""
    # Without the periodic orphan check, whose steps are scripts of their own.
    transport = RedisTransport(server.url, {"orphan_check_interval_s": 0})
    queue = f"idle-{uuid.uuid4().hex}"
    client = server.client()
    counter = CommandCounter(client)
    try:
        assert transport.reserve([queue], max_messages=4, wait_s=0.05, lease_s=30) == []
        counter.reset()
        assert transport.reserve([queue], max_messages=4, wait_s=0.05, lease_s=30) == []
        calls = counter.tally(1).calls
    finally:
        client.close()
        transport.close()

    assert calls["evalsha"] == 0
    assert calls["blpop"] >= 1

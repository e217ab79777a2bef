"""Petiole vs Celery with results on one local Apache Cassandra node: W2 and a chord.

    nox -s bench -- cassandra          (or: python benchmarks/cassandra_peers/run.py)

Starts one Apache Cassandra 5.0.9 node (``petiole_cassandra.testing.CassandraNode``:
127.0.0.1, free ports, a temporary directory, a 256 MB heap) and one
``redis-server`` as the broker of both systems (a free port, ``--save ''
--appendonly no``), creates each system's keyspace and table, runs one
untimed round of every system (``BENCH_WARMUP_ROUNDS``: the node's JIT warms up;
the first round on a fresh node ran about 30 % slower), then, for each
repetition and each system in turn (interleaved):

* the system's workers start; a warm-up (round trips, a batch and a small
  chord, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks one by one and wait for every
  result, timed from the first send to the last result, values checked;
* **chord** ``chord(echo.s(i) for i in range(CHORD_SIZE))(tsum.s())``, timed
  from the send to the callback's result, which is checked.

Producers run in their own subprocesses, workers in theirs. Figures are the
median over the repetitions. Environment: ``BENCH_REPS`` (default 3),
``BENCH_WARMUP_ROUNDS`` (default 1),
``BENCH_SYSTEMS`` (default ``petiole,celery``), ``BENCH_W2_TASKS``,
``BENCH_CHORD_SIZE``, ``BENCH_JSON`` (write the raw figures there), and each
system's worker knobs (see sys_petiole.py, sys_celery.py).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import redis
from petiole_cassandra.testing import CassandraNode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import CASSANDRA_ENV, REDIS_ENV  # noqa: E402

W2_TASKS = int(os.environ.get("BENCH_W2_TASKS", "5000"))
CHORD_SIZE = int(os.environ.get("BENCH_CHORD_SIZE", "1000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
WARMUP_ROUNDS = int(os.environ.get("BENCH_WARMUP_ROUNDS", "1"))
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "petiole,celery").split(",")
WARMUP = 100
# Bounds, so a broken system fails the run instead of hanging it.
PRODUCER_TIMEOUT_S = 300.0
PREPARE_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


# -- servers ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server without persistence; yields its URL and pid."""
    with tempfile.TemporaryDirectory(prefix="petiole-bench-") as data:
        port = _free_port()
        process = subprocess.Popen(
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data),
                *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            yield url, process.pid
        finally:
            client.close()
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def cassandra_node() -> Iterator[CassandraNode]:
    """One Cassandra node in a temporary directory, stopped (SIGTERM) afterwards."""
    with tempfile.TemporaryDirectory(prefix="petiole-bench-cassandra-") as directory:
        node = CassandraNode(Path(directory))
        try:
            yield node.start()
        finally:
            node.stop()


# -- processes ----------------------------------------------------------------------------


def _env(servers: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(servers)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def start_workers(
    system: ModuleType, servers: dict[str, str], log: Path
) -> list[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        return [
            subprocess.Popen(
                command,
                cwd=HERE,
                env=_env(servers),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )
            for command in system.worker_commands()
        ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _python(system: ModuleType, servers: dict[str, str], args: list[str], timeout_s: float) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=HERE,
        env=_env(servers),
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{system.NAME}: {' '.join(args)[:80]} failed ({done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-3000:]}"
        )
    return done.stdout.decode()


def prepare(system: ModuleType, servers: dict[str, str]) -> None:
    """The system's keyspace and table, created once before any of its workers start."""
    code = f"import {system.__name__} as s; s.prepare()"
    _python(system, servers, ["-c", code], PREPARE_TIMEOUT_S)


def produce(system: ModuleType, servers: dict[str, str], action: str, n: int) -> dict[str, Any]:
    out = _python(system, servers, [f"{system.__name__}.py", action, str(n)], PRODUCER_TIMEOUT_S)
    return dict(json.loads(out.strip().splitlines()[-1]))


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(groups: set[int], pids: set[int]) -> float:
    """User + system CPU used so far by every live process of these process groups
    (a worker and its pool children) and these pids (redis-server, Cassandra)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) in groups or int(entry.name) in pids:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _TICKS_PER_S


# -- one repetition of one system ------------------------------------------------------------


def run_system(
    system: ModuleType, servers: dict[str, str], server_pids: dict[str, int], log: Path
) -> dict[str, Any]:
    client = redis.Redis.from_url(servers[REDIS_ENV])
    client.flushall()
    client.close()
    figures: dict[str, Any] = {}
    workers = start_workers(system, servers, log)
    try:
        # Where W2's CPU goes: the workers (with their pool children), each server.
        parts: dict[str, tuple[set[int], set[int]]] = {"workers": ({w.pid for w in workers}, set())}
        parts.update({name: (set(), {pid}) for name, pid in server_pids.items()})
        produce(system, servers, "warmup", WARMUP)
        before = {name: cpu_seconds(*part) for name, part in parts.items()}
        w2 = produce(system, servers, "w2", W2_TASKS)
        figures["w2_per_s"] = W2_TASKS / w2["seconds"]
        spent = {name: cpu_seconds(*part) - before[name] for name, part in parts.items()}
        spent["producer"] = w2["cpu_s"]
        for name, seconds in spent.items():
            figures[f"w2_cpu_{name}_us"] = seconds / W2_TASKS * 1e6
        figures["w2_cpu_us"] = sum(spent.values()) / W2_TASKS * 1e6
        figures["chord_s"] = produce(system, servers, "chord", CHORD_SIZE)["seconds"]
    finally:
        stop_workers(workers)
    return figures


# -- report -------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in (
        *("petiole", "petiole-redis", "petiole-cassandra", "celery", "kombu"),
        *("cassandra-driver", "redis"),
    ):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "-"
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    found["redis-server"] = (
        server.stdout.split("v=")[1].split()[0] if "v=" in server.stdout else "?"
    )
    return found


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def report(modules: dict[str, ModuleType], runs: dict[str, list[dict[str, Any]]]) -> str:
    names = [m.NAME for m in modules.values()]
    ours = "Petiole" if "Petiole" in runs else names[0]
    lines: list[str] = []

    def table(title: str, key: str, unit: str, digits: int, higher_better: bool) -> None:
        verdict = "higher is better" if higher_better else "lower is better"
        lines.extend(["", f"{title} ({unit}, {verdict})", ""])
        lines.append("| system | median | runs | Petiole / system |")
        lines.append("|---|---:|---|---:|")
        base = _median(runs[ours], key)
        for name in names:
            value = _median(runs[name], key)
            each = ", ".join(f"{r[key]:,.{digits}f}" for r in runs[name])
            ratio = base / value if higher_better else value / base
            lines.append(f"| {name} | {value:,.{digits}f} | {each} | {ratio:.2f}x |")

    table(
        f"W2: {W2_TASKS:,} tasks, producer waits for every result", "w2_per_s", "tasks/s", 0, True
    )
    table(f"Chord: {CHORD_SIZE:,} members + callback, send to result", "chord_s", "s", 2, False)
    table("W2 CPU per task: workers + redis + Cassandra + producer", "w2_cpu_us", "µs", 0, False)
    lines.extend(["", "W2 CPU per task by process (µs, medians)", ""])
    parts = ("workers", "cassandra", "redis", "producer")
    lines.append("| system | " + " | ".join(parts) + " |")
    lines.append("|---|" + "---:|" * len(parts))
    for name in names:
        cells = " | ".join(f"{_median(runs[name], f'w2_cpu_{p}_us'):,.0f}" for p in parts)
        lines.append(f"| {name} | {cells} |")
    lines.append(
        "\n(Petiole / system: how many times faster Petiole is; for times, system / Petiole.)"
    )
    return "\n".join(lines)


def main() -> None:
    modules = {name: importlib.import_module(f"sys_{name}") for name in SYSTEMS}
    runs: dict[str, list[dict[str, Any]]] = {m.NAME: [] for m in modules.values()}
    started = time.monotonic()
    print("versions:", json.dumps(_versions()))
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()}")
    for module in modules.values():
        print(f"{module.NAME}: {module.config()}")
    with (
        tempfile.TemporaryDirectory(prefix="petiole-bench-logs-") as logs,
        redis_server() as (url, redis_pid),
        cassandra_node() as node,
    ):
        assert node.process is not None
        servers = {REDIS_ENV: url, CASSANDRA_ENV: node.host}
        pids = {"redis": redis_pid, "cassandra": node.process.pid}
        print(f"redis-server at {url}; Cassandra {node.host} ready in {node.started_in_s:.1f} s")
        for module in modules.values():
            prepare(module, servers)
        for rep in range(-WARMUP_ROUNDS, REPS):
            for module in modules.values():
                log = Path(logs) / f"{module.NAME}.log"
                try:
                    figures = run_system(module, servers, pids, log)
                except Exception:
                    print(f"--- {module.NAME} worker log (tail) ---")
                    print(log.read_text(errors="replace")[-4000:] if log.exists() else "(none)")
                    raise
                shown = ", ".join(f"{k}={v:,.2f}" for k, v in figures.items())
                if rep < 0:
                    print(f"warm-up round {module.NAME} (not counted): {shown}", flush=True)
                    continue
                runs[module.NAME].append(figures)
                print(f"rep {rep + 1}/{REPS} {module.NAME}: {shown}", flush=True)
    print(report(modules, runs))
    print(f"\n(total {time.monotonic() - started:.0f} s; load now {os.getloadavg()})")
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()

"""Petiole vs Celery vs Dramatiq on one local redis-server: three workloads, one table.

    nox -s bench -- redis          (or: python benchmarks/redis_peers/run.py)

Starts ``redis-server`` on 127.0.0.1 (a free port, a temporary directory,
``--save '' --appendonly no``: no persistence, the same for every system), then,
for each repetition and each system in turn:

* **W1** enqueue ``W1_TASKS`` no-op tasks with no worker running, start the
  system's workers, and time the drain: from the first message acknowledged to
  the last (the runner polls the broker's own bookkeeping every 2 ms, so worker
  start-up is not counted);
* a warm-up (round trips and a small batch, not timed);
* **W2** send ``W2_TASKS`` ``echo(i)`` tasks and wait for every result, timed
  from the first send to the last result;
* **W3** ``W3_ROUND_TRIPS`` sequential round trips (send, wait for the result),
  each timed.

Producers run in their own subprocesses, workers in theirs. Figures are the
median over the repetitions. Environment: ``BENCH_REPS`` (default 3),
``BENCH_SYSTEMS`` (default ``petiole,celery,dramatiq``), ``BENCH_W1_TASKS``,
``BENCH_W2_TASKS``, ``BENCH_W3_ROUND_TRIPS``, ``BENCH_JSON`` (write the raw
figures there).
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
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import URL_ENV  # noqa: E402

W1_TASKS = int(os.environ.get("BENCH_W1_TASKS", "20000"))
W2_TASKS = int(os.environ.get("BENCH_W2_TASKS", "5000"))
W3_ROUND_TRIPS = int(os.environ.get("BENCH_W3_ROUND_TRIPS", "500"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
SYSTEMS = os.environ.get("BENCH_SYSTEMS", "petiole,celery,dramatiq,petiole_processes").split(",")
WARMUP = 100
POLL_S = 0.002
# Bounds, so a broken system fails the run instead of hanging it.
DRAIN_TIMEOUT_S = 120.0
PRODUCER_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0


# -- redis-server -------------------------------------------------------------------------


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


# -- processes ----------------------------------------------------------------------------


def _env(url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    env[URL_ENV] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def start_workers(system: ModuleType, url: str, log: Path) -> list[subprocess.Popen[bytes]]:
    out = log.open("ab")
    return [
        subprocess.Popen(
            command,
            cwd=HERE,
            env=_env(url, getattr(system, "WORKER_ENV", None)),
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


def produce(system: ModuleType, url: str, action: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, f"{system.__name__}.py", action, str(n)],
        cwd=HERE,
        env=_env(url),
        capture_output=True,
        timeout=PRODUCER_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{system.NAME} producer {action} failed ({done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-3000:]}"
        )
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


# -- one repetition of one system ------------------------------------------------------------


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(groups: set[int], pids: set[int]) -> float:
    """User + system CPU used so far by every live process of these process groups
    (a worker and its pool children) and these pids (redis-server)."""
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


def drain(
    system: ModuleType, client: redis.Redis, total: int, cpu: Callable[[], float]
) -> tuple[float, float]:
    """Tasks per second from the first acknowledgement to the last, and CPU
    seconds per task (workers and redis-server) over the same window."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    first: tuple[float, int, float] | None = None
    while True:
        left = system.remaining(client)
        now = time.perf_counter()
        if first is None and left < total:
            first = (now, left, cpu())
        if left == 0:
            assert first is not None
            started, left_then, cpu_then = first
            return left_then / (now - started), (cpu() - cpu_then) / left_then
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system.NAME}: {left} of {total} left after the drain timeout")
        time.sleep(POLL_S)


def run_system(system: ModuleType, url: str, redis_pid: int, log: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushall()
    figures: dict[str, Any] = {}
    enqueued = produce(system, url, "enqueue", W1_TASKS)
    figures["enqueue_per_s"] = W1_TASKS / enqueued["seconds"]
    queued = system.remaining(client)
    if queued != W1_TASKS:
        raise RuntimeError(f"{system.NAME}: {queued} messages queued, expected {W1_TASKS}")
    workers = start_workers(system, url, log)
    try:
        groups = {w.pid for w in workers}

        def cpu() -> float:
            return cpu_seconds(groups, {redis_pid})

        figures["w1_per_s"], w1_cpu = drain(system, client, W1_TASKS, cpu)
        figures["w1_cpu_us"] = w1_cpu * 1e6
        produce(system, url, "warmup", WARMUP)
        before = cpu()
        w2 = produce(system, url, "w2", W2_TASKS)
        figures["w2_per_s"] = W2_TASKS / w2["seconds"]
        figures["w2_cpu_us"] = (cpu() - before + w2["cpu_s"]) / W2_TASKS * 1e6
        w3 = produce(system, url, "w3", W3_ROUND_TRIPS)["latencies_s"]
        cuts = statistics.quantiles(w3, n=100, method="inclusive")
        figures["w3_p50_ms"] = statistics.median(w3) * 1000
        figures["w3_p99_ms"] = cuts[98] * 1000
    finally:
        stop_workers(workers)
        client.close()
    return figures


# -- report -------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("petiole", "petiole-redis", "celery", "kombu", "dramatiq", "redis"):
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
    return statistics.median(r[key] for r in runs)


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
            lines.append(f"| {name} | {value:,.{digits}f} | {each} | {base / value:.2f}x |")

    table(f"W1: drain {W1_TASKS:,} no-op tasks, enqueued first", "w1_per_s", "tasks/s", 0, True)
    table(
        f"W2: {W2_TASKS:,} tasks, producer waits for every result", "w2_per_s", "tasks/s", 0, True
    )
    table(f"W3: {W3_ROUND_TRIPS} sequential round trips, p50", "w3_p50_ms", "ms", 2, False)
    table(f"W3: {W3_ROUND_TRIPS} sequential round trips, p99", "w3_p99_ms", "ms", 2, False)
    table("W1 CPU per task: workers + redis-server", "w1_cpu_us", "µs", 0, False)
    table("W2 CPU per task: workers + redis-server + producer", "w2_cpu_us", "µs", 0, False)
    table("Enqueue rate before W1 (not a target)", "enqueue_per_s", "tasks/s", 0, True)
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
    ):
        print(f"redis-server at {url} (--save '' --appendonly no)", flush=True)
        for rep in range(REPS):
            for module in modules.values():
                log = Path(logs) / f"{module.NAME}.log"
                try:
                    figures = run_system(module, url, redis_pid, log)
                except Exception:
                    print(f"--- {module.NAME} worker log (tail) ---")
                    print(log.read_text(errors="replace")[-4000:] if log.exists() else "(none)")
                    raise
                runs[module.NAME].append(figures)
                shown = ", ".join(f"{k}={v:,.2f}" for k, v in figures.items())
                print(f"rep {rep + 1}/{REPS} {module.NAME}: {shown}", flush=True)
    print(report(modules, runs))
    print(f"\n(total {time.monotonic() - started:.0f} s; load now {os.getloadavg()})")
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()

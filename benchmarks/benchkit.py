"""What the runners of the peer benchmarks (``redis_peers/run.py``,
``cassandra_peers/run.py``) share.

A throwaway ``redis-server``, worker and producer subprocesses, CPU time read from
``/proc``, the repetition loop and the comparison tables. What the system modules
share is in ``systemkit``.

Each ``run.py`` puts this folder on ``sys.path``; its subprocesses find this folder
through the ``PYTHONPATH`` that ``child_env`` sets.
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
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

import redis
from systemkit import Figures

S = TypeVar("S")

# Bounds, so a broken system fails the run instead of hanging it.
REDIS_START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
# How much of a failed process's output is worth showing.
STDERR_TAIL_CHARS = 3000
LOG_TAIL_CHARS = 4000

Runs = dict[str, list[Figures]]


# -- redis-server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server without persistence (the same for every system);
    yields its URL and pid."""
    with tempfile.TemporaryDirectory(prefix="petiole-bench-") as data:
        port = free_port()
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
            _wait_until_answering(client, REDIS_START_TIMEOUT_S)
            yield url, process.pid
        finally:
            client.close()
            process.terminate()
            process.wait(10)


def _wait_until_answering(client: redis.Redis, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# -- subprocesses -------------------------------------------------------------------------


def child_env(
    folder: Path, settings: Mapping[str, str], *, drop_prefix: str | None
) -> dict[str, str]:
    """This process's environment plus ``settings`` (server addresses, worker knobs),
    without the variables named ``drop_prefix*``, and with ``folder`` (the system
    modules) and this module's folder importable."""
    env = {
        k: v for k, v in os.environ.items() if drop_prefix is None or not k.startswith(drop_prefix)
    }
    env.update(settings)
    importable = [str(folder), str(Path(__file__).resolve().parent), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, importable))
    return env


def start_workers(
    commands: Iterable[Sequence[str]], *, folder: Path, env: Mapping[str, str], log: Path
) -> list[subprocess.Popen[bytes]]:
    """One subprocess per command, output appended to ``log``."""
    with log.open("ab") as out:
        return [
            subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )
            for command in commands
        ]


def stop_workers(
    workers: Iterable[subprocess.Popen[bytes]], timeout_s: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM each worker's process group, SIGKILL what is left after ``timeout_s``."""
    workers = list(workers)
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def run_python(
    args: Sequence[str], *, what: str, folder: Path, env: Mapping[str, str], timeout_s: float
) -> str:
    """``python ARGS`` in ``folder``; its stdout, or RuntimeError naming ``what`` with
    the tail of its stderr."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}):\n"
            f"{done.stderr.decode(errors='replace')[-STDERR_TAIL_CHARS:]}"
        )
    return done.stdout.decode()


def run_producer(
    system: ModuleType,
    action: str,
    n: int,
    *,
    folder: Path,
    env: Mapping[str, str],
    timeout_s: float,
) -> Figures:
    """``python sys_<name>.py ACTION N`` (see ``run_action``): the figures it printed."""
    out = run_python(
        [f"{system.__name__}.py", action, str(n)],
        what=f"{system.NAME} producer {action}",
        folder=folder,
        env=env,
        timeout_s=timeout_s,
    )
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- CPU time -----------------------------------------------------------------------------


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(groups: Collection[int], pids: Collection[int]) -> float:
    """User + system CPU used so far by every live process of these process groups
    (a worker and its pool children) and these pids (servers), with that of the
    children they have reaped: a worker that forks per task (RQ) or replaces a pool
    child keeps its ended children's CPU in its own count."""
    ticks = 0
    for pid, fields in _processes():
        if int(fields[2]) in groups or pid in pids:
            ticks += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return ticks / _TICKS_PER_S


def peak_rss_bytes(groups: Collection[int]) -> tuple[int, int]:
    """The peak resident set size (``VmHWM``) of every live process of these process
    groups, summed, and how many processes that is. Pages a forked child shares with
    its parent count in both, as in ``ps``; processes that already ended are not seen."""
    total = count = 0
    for pid, fields in _processes():
        if int(fields[2]) not in groups:
            continue
        with contextlib.suppress(OSError, StopIteration):  # the process ended meanwhile
            with open(f"/proc/{pid}/status") as fh:
                line = next(line for line in fh if line.startswith("VmHWM:"))
            total += int(line.split()[1]) * 1024  # kB
            count += 1
    return total, count


def pss_bytes(groups: Collection[int]) -> int:
    """The proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``) of every live
    process of these process groups, summed, now: each page shared by n processes
    counts 1/n in each, so forked workers sharing their parent's pages count them
    once in all — the memory the processes cost the machine together."""
    total = 0
    for pid, fields in _processes():
        if int(fields[2]) not in groups:
            continue
        with contextlib.suppress(OSError, StopIteration):  # ended, or not ours to read
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                line = next(line for line in fh if line.startswith("Pss:"))
            total += int(line.split()[1]) * 1024  # kB
    return total


def _processes() -> Iterator[tuple[int, list[str]]]:
    """Each live process's pid and the fields of its ``/proc/PID/stat`` after the
    command name (index 0 is field 3, the state; 2 the process group; 11-14 the CPU
    ticks)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                # After the command name, which may itself contain spaces or ")".
                yield int(entry.name), fh.read().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue


# -- repetitions --------------------------------------------------------------------------


def import_systems(names: Iterable[str]) -> dict[str, ModuleType]:
    """``sys_<name>`` for each name, in the order given (also the tables' order)."""
    return {name: importlib.import_module(f"sys_{name}") for name in names}


def versions(dists: Iterable[str]) -> dict[str, str]:
    """Python's, each distribution's ("-" if not installed) and redis-server's."""
    found = {"python": platform.python_version()}
    for dist in dists:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "-"
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    found["redis-server"] = (
        server.stdout.split("v=")[1].split()[0] if "v=" in server.stdout else "?"
    )
    return found


def print_setup(found_versions: Mapping[str, str], systems: Mapping[str, ModuleType]) -> None:
    """What a reader needs to reproduce or compare the figures."""
    print("versions:", json.dumps(found_versions))
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()}")
    for system in systems.values():
        print(f"{system.NAME}: {system.config()}")


def _module_name(system: Any) -> str:
    return str(system.NAME)


def run_rounds(
    systems: Mapping[str, S],
    run_system: Callable[[S, Path], Figures],
    *,
    reps: int,
    warmup_rounds: int,
    name_of: Callable[[S], str] = _module_name,
) -> Runs:
    """``warmup_rounds`` uncounted rounds, then ``reps`` counted ones; in each round every
    system in turn (interleaved, so a drift in the machine hits all of them alike).
    ``run_system(system, log)`` runs one system once, its workers writing to ``log``;
    ``name_of(system)`` names it (by default its module's ``NAME``)."""
    runs: Runs = {name_of(system): [] for system in systems.values()}
    with tempfile.TemporaryDirectory(prefix="petiole-bench-logs-") as logs:
        for rep in range(-warmup_rounds, reps):
            for system in systems.values():
                name = name_of(system)
                log = Path(logs) / f"{name}.log"
                figures = _run_showing_log_on_failure(run_system, system, log, name)
                shown = ", ".join(
                    _shown(k, v) for k, v in figures.items() if not isinstance(v, dict | list)
                )
                if rep < 0:
                    print(f"warm-up round {name} (not counted): {shown}", flush=True)
                    continue
                runs[name].append(figures)
                print(f"rep {rep + 1}/{reps} {name}: {shown}", flush=True)
    return runs


def _shown(key: str, value: object) -> str:
    """One figure of a progress line (figures that are not numbers, e.g. a reason
    for "n/a", as they are)."""
    return f"{key}={value:,.2f}" if isinstance(value, int | float) else f"{key}={value}"


def _run_showing_log_on_failure(
    run_system: Callable[[S, Path], Figures], system: S, log: Path, name: str
) -> Figures:
    try:
        return run_system(system, log)
    except Exception:
        print(f"--- {name} worker log (tail) ---")
        print(log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log.exists() else "(none)")
        raise


def finish(started: float, runs: Runs) -> None:
    """The total time, and the raw figures written to ``BENCH_JSON`` if it is set."""
    print(f"\n(total {time.monotonic() - started:.0f} s; load now {os.getloadavg()})")
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(runs, indent=2))


# -- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One figure compared across systems: one table."""

    title: str
    key: str
    unit: str
    digits: int
    higher_is_better: bool


# The last column's figure, from Petiole's median and a system's.
Ratio = Callable[[float, float, Figure], float]


def petiole_over_system(petiole: float, system: float, figure: Figure) -> float:
    """Petiole / system for every figure: for times, below 1 means Petiole is faster."""
    return petiole / system


def times_faster(petiole: float, system: float, figure: Figure) -> float:
    """How many times faster Petiole is: Petiole / system for rates, system / Petiole
    for times."""
    return petiole / system if figure.higher_is_better else system / petiole


def median(runs: Sequence[Figures], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def comparison_tables(
    runs: Runs, figures: Iterable[Figure], *, ratio: Ratio, bases: Sequence[str] = ()
) -> list[str]:
    """One ``comparison_table`` per figure, in order."""
    return [
        line
        for figure in figures
        for line in comparison_table(runs, figure, ratio=ratio, bases=bases)
    ]


def comparison_table(
    runs: Runs, figure: Figure, *, ratio: Ratio, bases: Sequence[str] = ()
) -> list[str]:
    """A Markdown table, one row per system: median, each run, and ``ratio`` against
    each of ``bases`` (the systems of that name that ran), one column each; by default
    one column, against Petiole (or the first system, if Petiole is not among them)."""
    names = list(runs)
    ours = [base for base in bases if base in runs] or [
        "Petiole" if "Petiole" in runs else names[0]
    ]
    verdict = "higher is better" if figure.higher_is_better else "lower is better"
    key, digits = figure.key, figure.digits
    lines = ["", f"{figure.title} ({figure.unit}, {verdict})", ""]
    lines.append("| system | median | runs | " + " | ".join(f"{b} / system" for b in ours) + " |")
    lines.append("|---|---:|---|" + "---:|" * len(ours))
    base_values = [median(runs[base], key) for base in ours]
    for name in names:
        value = median(runs[name], key)
        each = ", ".join(f"{r[key]:,.{digits}f}" for r in runs[name])
        ratios = " | ".join(f"{ratio(base, value, figure):.2f}x" for base in base_values)
        lines.append(f"| {name} | {value:,.{digits}f} | {each} | {ratios} |")
    return lines


@dataclass(frozen=True)
class Drained(Generic[S]):
    """A drain's window: from the first message seen gone to the queue being empty."""

    per_s: float  #: messages per second over the window
    count: int  #: messages drained in it
    before: S  #: the sample (CPU counters) taken when the window opened
    after: S  #: and when it closed


def drain_window(
    remaining: Callable[[], int],
    total: int,
    sample: Callable[[], S],
    *,
    what: str,
    timeout_s: float,
    poll_s: float,
) -> Drained[S]:
    """Watch a queue of ``total`` messages drain: ``remaining()`` is polled every
    ``poll_s``; ``sample()`` (CPU counters) is taken when the first message is gone
    and when none is left. Raises RuntimeError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    first: tuple[float, int, S] | None = None
    while True:
        left = remaining()
        now = time.perf_counter()
        if first is None and left < total:
            first = (now, left, sample())
        if left == 0:
            assert first is not None
            started, left_then, before = first
            return Drained(left_then / (now - started), left_then, before, sample())
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {left} of {total} left after the drain timeout")
        time.sleep(poll_s)

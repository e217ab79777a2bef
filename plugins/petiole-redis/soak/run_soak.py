"""A soak of the Redis broker's default (streams) layout under chaos: nothing is lost.

    nox -s redis_soak [-- --minutes 10]   (or: python plugins/petiole-redis/soak/run_soak.py)

1. Starts a private redis-server on 127.0.0.1 (append-only file, ``appendfsync
   always``) holding both the broker and the results.
2. Starts ``--workers`` ``petiole worker -A run_soak:app`` processes (pools
   alternating: the default prefork and threads), with 5 s leases.
3. For ``--minutes``, sends ``--rate`` tasks a second from this process: each
   with a random priority (0-9), one in ten with a countdown (0.2-3 s), one in
   fifty asking to be retried once. Each run of a task appends ``<i> <retries>
   <pid>`` to a log file, so a run repeated after a kill is counted, not guessed.
4. Meanwhile SIGKILLs a random worker (with its pool) every 3-8 s and starts it
   again, and SIGKILLs the redis-server every 40-80 s, starting it again 1-3 s
   later on the same data.
5. Stops sending, waits for every result and checks each value; waits for the
   queue to empty and checks that no message was dead-lettered, that the
   streams are empty and that the consumer group's consumers were cleaned up
   after; samples each worker's memory.

Prints a JSON summary; exits 1 if any task is missing, wrong or dead-lettered.
Bounded: every wait has a timeout and the whole run stops within ``--minutes``
plus 4 minutes; everything started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from petiole import Petiole

HERE = Path(__file__).resolve().parent
QUEUE = "default"
LEASE_S = 5
# Broker, backend and the execution log come from the environment: the runner sets
# them for itself and for the workers, which import this module (-A run_soak:app).
app = Petiole("petiole-redis-soak", config_file=os.devnull)


@app.task(name="soak.double", bind=True)
def double(self: Any, i: int, retry_once: bool) -> int:
    with open(os.environ["SOAK_LOG"], "a") as log:  # one write: lines never interleave
        log.write(f"{i} {self.request.retries} {os.getpid()}\n")
    if retry_once and self.request.retries == 0:
        raise self.retry(countdown=0.5)
    return 2 * i


# -- the run -----------------------------------------------------------------------


class Chaos:
    """SIGKILLs workers and the server on a schedule, from a thread of its own."""

    def __init__(self, run: Run, rng: random.Random) -> None:
        self.run = run
        self.rng = rng
        self.worker_kills = 0
        self.server_kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        next_server_kill = time.monotonic() + self.rng.uniform(40, 80)
        while not self._stop.wait(self.rng.uniform(3, 8)):  # the schedule itself
            slot = self.rng.randrange(len(self.run.workers))
            self.run.kill_worker(slot)
            self.run.start_worker(slot)
            self.worker_kills += 1
            if time.monotonic() >= next_server_kill:
                self.run.server.kill()
                self._stop.wait(self.rng.uniform(1, 3))  # down for a while
                self.run.server.start()
                self.server_kills += 1
                next_server_kill = time.monotonic() + self.rng.uniform(40, 80)


class Run:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from petiole_redis.testing import RedisServer  # imports pytest: only when run

        self.args = args
        self.workdir = workdir
        self.server = RedisServer(workdir / "redis")
        self.log_path = workdir / "executions.log"
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * args.workers
        self.rss_mb: dict[int, list[float]] = collections.defaultdict(list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
        env.update(
            PETIOLE_BROKER_URL=self.server.url,
            PETIOLE_BACKEND_URL=self.server.url,
            PETIOLE_LEASE_S=str(LEASE_S),
            PETIOLE_MAX_DELIVERIES="50",
            PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            SOAK_LOG=str(self.log_path),
        )
        return env

    def start_worker(self, slot: int) -> None:
        pool = [] if slot % 2 == 0 else ["-P", "threads", "-c", "4"]
        log = (self.workdir / f"worker{slot}.log").open("ab")
        self.workers[slot] = subprocess.Popen(
            [sys.executable, "-m", "petiole", "worker", "-A", "run_soak:app", *pool],
            cwd=HERE,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a kill reaches its pool's processes too
        )
        log.close()

    def kill_worker(self, slot: int) -> None:
        proc = self.workers[slot]
        if proc is not None and proc.poll() is None:
            self.sample_memory()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def sample_memory(self) -> None:
        """Each live worker's resident memory, by slot (its processes summed)."""
        for slot, proc in enumerate(self.workers):
            if proc is None or proc.poll() is not None:
                continue
            total_kb = 0
            for pid in _group(proc.pid):
                try:
                    with open(f"/proc/{pid}/status") as fh:
                        line = next(x for x in fh if x.startswith("VmRSS:"))
                    total_kb += int(line.split()[1])
                except (OSError, StopIteration):
                    continue
            self.rss_mb[slot].append(total_kb / 1024)

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            if proc is None:
                continue
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def send(args: argparse.Namespace, rng: random.Random) -> tuple[list[Any], list[int]]:
    """Send for ``args.minutes`` at ``args.rate`` a second; the results and arguments."""
    results, sent = [], []
    started = time.monotonic()
    ends = started + args.minutes * 60
    i = 0
    while time.monotonic() < ends:
        pause_s = started + i / args.rate - time.monotonic()
        if pause_s > 0:
            time.sleep(pause_s)  # the sending schedule itself
        options: dict[str, Any] = {"priority": rng.randrange(10)}
        if rng.random() < 0.1:
            options["countdown"] = rng.uniform(0.2, 3)
        results.append(double.apply_async((i, rng.random() < 0.02), **options))
        sent.append(i)
        i += 1
    return results, sent


def main() -> int:
    args = parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    budget_ends = time.monotonic() + args.minutes * 60 + 240
    with tempfile.TemporaryDirectory(prefix="petiole-soak-") as tmp:
        run = Run(args, Path(tmp))
        (run.workdir / "redis").mkdir()
        os.environ.update(run.env())  # this process sends with the same settings
        run.server.start()
        chaos = Chaos(run, rng)
        try:
            for slot in range(args.workers):
                run.start_worker(slot)
            chaos.start()
            started = time.monotonic()
            results, sent = send(args, rng)
            send_s = time.monotonic() - started
            chaos.stop()
            run.sample_memory()
            wait_s = max(budget_ends - time.monotonic() - 60, 1)
            found = app.backend.wait([r.id for r in results], timeout_s=wait_s)
            wrong = [i for i, r in zip(sent, results, strict=True) if _value(found, r) != 2 * i]
            missing = [i for i, r in zip(sent, results, strict=True) if r.id not in found]
            drained = _wait(lambda: app.transport.size(QUEUE) == 0, 3 * LEASE_S + 30)
            dead = app.transport.dead_letters(QUEUE)
            run.sample_memory()
            summary = _summary(run, chaos, seed, sent, send_s, wrong, missing, drained, dead)
        finally:
            chaos.stop()
            run.stop_workers()
            app.close()
            run.server.stop()
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def _value(found: dict[str, Any], result: Any) -> Any:
    record = found.get(result.id)
    return None if record is None else result.get()


def _wait(predicate: Any, timeout_s: float) -> bool:
    ends = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= ends:
            return False
        time.sleep(0.2)
    return True


def _summary(
    run: Run,
    chaos: Chaos,
    seed: int,
    sent: list[int],
    send_s: float,
    wrong: list[int],
    missing: list[int],
    drained: bool,
    dead: list[Any],
) -> dict[str, Any]:
    lines = run.log_path.read_text().splitlines() if run.log_path.exists() else []
    # Per (task, retries): a task retried once by design runs once per attempt.
    runs = collections.Counter(tuple(map(int, line.split()[:2])) for line in lines)
    first_runs = {i for i, retries in runs if retries == 0}
    client = run.server.client()
    try:
        consumers = sum(
            len(client.xinfo_consumers(key, "petiole"))
            for key in client.scan_iter(match="petiole:stream*")
        )
        memory_mb = client.info("memory")["used_memory"] / 2**20
    finally:
        client.close()
    rss = {slot: samples for slot, samples in run.rss_mb.items() if samples}
    summary = {
        "seed": seed,
        "tasks": len(sent),
        "send_rate_per_s": round(len(sent) / send_s, 1),
        "worker_kills": chaos.worker_kills,
        "server_kills": chaos.server_kills,
        "executions": sum(runs.values()),
        "ran_more_than_once": sum(1 for n in runs.values() if n > 1),
        "never_ran": len(set(sent) - first_runs),
        "missing_results": len(missing),
        "wrong_results": len(wrong),
        "queue_drained": drained,
        "dead_letters": [d.reason for d in dead][:10],
        "consumers_left": consumers,
        "redis_used_memory_mb": round(memory_mb, 1),
        "worker_rss_mb_median": {s: round(statistics.median(v), 1) for s, v in rss.items()},
        "worker_rss_mb_last": {s: round(v[-1], 1) for s, v in rss.items()},
    }
    summary["ok"] = not missing and not wrong and drained and not dead and summary["never_ran"] == 0
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to send")
    parser.add_argument("--rate", type=float, default=200.0, help="tasks sent a second")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (supervisors)")
    parser.add_argument("--seed", type=int, default=None, help="the chaos's seed (replay)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())

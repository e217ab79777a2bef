"""Petiole's results on a three-node Cassandra cluster; one node stopped mid-run loses nothing.

    nox -s cassandra_cluster      (or: python plugins/petiole-cassandra/cluster/run_cluster.py)

1. Starts three Apache Cassandra 5.0.9 nodes on 127.0.0.1, 127.0.0.2 and
   127.0.0.3 (same ports, seed 127.0.0.1; see ``petiole_cassandra.testing.
   CassandraCluster``), one after another.
2. Creates the results keyspace with a replication factor of 3 (the backend's
   ``replication=3``) and checks that every node sees the other two.
3. Starts two ``petiole worker`` processes (SQLite broker, results on the
   cluster with ``read_consistency=QUORUM&write_consistency=QUORUM``), sends
   ``--tasks`` ``square(i)`` tasks, and once ``--stop-after`` of them are done
   stops one node with SIGTERM (``--stop-node``, default 127.0.0.1: the seed,
   and every client's first contact point).
4. Waits for every result, then reads them all again through a fresh connection
   while the node is still down, and checks each value.

Prints a summary; exits 1 if any result is missing or wrong, 2 if the cluster
could not be started. Every step has a timeout and the whole run is bounded by
``--budget-s``; everything started is stopped on the way out (also on Ctrl-C or
SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from petiole import Petiole

if TYPE_CHECKING:  # the testing helpers import pytest: only when the run starts
    from petiole_cassandra.testing import CassandraCluster

HERE = Path(__file__).resolve().parent
KEYSPACE = "petiole_cluster"
QUEUE = "default"

# Broker and backend come from PETIOLE_* variables: the runner sets them for itself
# and for the worker processes, which import this module (``-A run_cluster:app``).
app = Petiole("petiole-cassandra-cluster", config_file=os.devnull)


@app.task(name="cluster.square")
def square(x: int, sleep_s: float) -> int:
    # The sleep spreads the run over several seconds, so the node goes down mid-run.
    time.sleep(sleep_s)
    return x * x


# -- helpers -----------------------------------------------------------------------------


class Budget(Exception):
    """The whole run took longer than ``--budget-s``."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Budget("the run exceeded its time budget")


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every ``finally``: nothing is left running


def wait_for(
    what: str, condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05
) -> float:
    """Poll ``condition()`` until true; return the seconds it took. Raises on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.monotonic() - started


def cluster_view(address: str, port: int) -> tuple[int, str]:
    """How many peers ``address`` sees up, and the keyspace's replication (from that node)."""
    from cassandra.cluster import Cluster  # type: ignore[import-untyped]

    cluster = Cluster(contact_points=[(address, port)], connect_timeout=10)
    try:
        session = cluster.connect()
        peers = list(session.execute("SELECT peer FROM system.peers_v2", timeout=10))
        row = session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (KEYSPACE,),
            timeout=10,
        ).one()
        return len(peers), str(dict(row.replication) if row else None)
    finally:
        cluster.shutdown()


@contextlib.contextmanager
def workers(env: dict[str, str], logs: Path, count: int) -> Iterator[list[Path]]:
    """``count`` worker processes (threads pool), stopped with SIGTERM (then SIGKILL)."""
    procs: list[subprocess.Popen[bytes]] = []
    paths = [logs / f"worker{i}.log" for i in range(count)]
    try:
        for path in paths:
            with path.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "petiole", "worker", "-A", "run_cluster:app"),
                            *("-P", "threads", "-c", "4", "-l", "INFO"),
                        ],
                        cwd=HERE,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        wait_for(
            "workers ready",
            lambda: all(" ready: " in p.read_text(errors="replace") for p in paths),
            timeout_s=60,
        )
        yield paths
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def read_back(ids: list[str], timeout_s: float) -> dict[str, Any]:
    """Every id's value, through a fresh app (a new connection to the cluster)."""
    reader = Petiole("petiole-cassandra-cluster-check", config_file=os.devnull)
    try:
        found = reader.backend.wait(ids, timeout_s=timeout_s)
        values = {}
        for task_id, record in found.items():
            serializer = reader.serializer_for_content_type(record.content_type)
            values[task_id] = (record.state, serializer.loads(record.payload))
        return values
    finally:
        reader.close()


# -- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> bool:
    from petiole_cassandra.testing import CassandraCluster

    cluster = CassandraCluster(work / "cassandra", size=3)
    started = time.monotonic()
    try:
        for node in cluster.nodes:
            node.start()
            print(f"node {node.address}: ready in {node.started_in_s:.1f} s", flush=True)
        backend_url = cluster.url(
            KEYSPACE,
            replication=3,
            read_consistency="QUORUM",
            write_consistency="QUORUM",
            reconnect_timeout_s=120,
        )
        os.environ.update(
            PETIOLE_BROKER_URL=f"sqlite:///{work / 'broker.db'}", PETIOLE_BACKEND_URL=backend_url
        )
        app.backend  # noqa: B018 - creates the keyspace (RF 3) and tables before the workers
        seed = cluster.nodes[0]
        peers, replication = cluster_view(seed.address, seed.native_port)
        print(
            f"cluster up in {time.monotonic() - started:.1f} s: {seed.address} sees {peers} "
            f"peers; keyspace {KEYSPACE}: {replication}"
        )
        print(f"results: {backend_url}", flush=True)
        if peers != len(cluster.nodes) - 1:
            raise RuntimeError(f"{seed.address} sees {peers} peers, not {len(cluster.nodes) - 1}")
        return workload(args, cluster, work)
    finally:
        app.close()
        cluster.stop()


def workload(args: argparse.Namespace, cluster: CassandraCluster, work: Path) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(
        PETIOLE_BROKER_URL=os.environ["PETIOLE_BROKER_URL"],
        PETIOLE_BACKEND_URL=os.environ["PETIOLE_BACKEND_URL"],
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    )
    victim = cluster.nodes[args.stop_node - 1]
    with workers(env, work, count=2) as logs:
        sent_at = time.monotonic()
        ids = [square.delay(i, args.task_sleep_s).id for i in range(args.tasks)]
        left_at_stop = args.tasks - args.stop_after
        wait_for(
            "tasks under way", lambda: app.transport.size(QUEUE) <= left_at_stop, timeout_s=120
        )
        stop_at = time.monotonic()
        victim.stop()  # SIGTERM: the node drains, flushes and exits
        down_s = time.monotonic() - stop_at
        left_when_down = app.transport.size(QUEUE)
        print(
            f"stopped {victim.address} (SIGTERM) with {left_at_stop} tasks left: "
            f"down {down_s:.1f} s later, {left_when_down} tasks still queued",
            flush=True,
        )
        found = read_back(ids, timeout_s=args.result_timeout_s)
        elapsed = time.monotonic() - sent_at
        worker_logs = [path.read_text(errors="replace") for path in logs]
    correct: int = sum(found.get(t) == ("SUCCESS", i * i) for i, t in enumerate(ids))
    missing = [i for i, t in enumerate(ids) if t not in found]
    wrong = [i for i, t in enumerate(ids) if t in found and found[t] != ("SUCCESS", i * i)]
    outages = sum(log.count("cluster unreachable") for log in worker_logs)
    requeued = sum(log.count("could not store the result") for log in worker_logs)
    print(
        f"\n{args.tasks} tasks in {elapsed:.1f} s, node {victim.address} stopped mid-run; "
        f"read back at QUORUM with it down:\n"
        f"  correct {correct}, missing {len(missing)}, wrong {len(wrong)}\n"
        f"  worker log lines: {outages} 'cluster unreachable', {requeued} requeued stores"
    )
    if missing or wrong:
        print(f"  missing: {missing[:20]}  wrong: {wrong[:20]}")
        print("--- worker log tail ---\n" + "\n".join(log[-3000:] for log in worker_logs))
    return correct == len(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--task-sleep-s", type=float, default=0.15)
    parser.add_argument("--stop-after", type=int, default=300, help="tasks done before the stop")
    parser.add_argument("--stop-node", type=int, choices=(1, 2, 3), default=1)
    parser.add_argument("--result-timeout-s", type=float, default=180.0)
    parser.add_argument("--budget-s", type=int, default=900)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(args.budget_s)
    with tempfile.TemporaryDirectory(prefix="petiole-cassandra-cluster-") as work:
        try:
            ok = run(args, Path(work))
        except BaseException as exc:
            if type(exc).__name__ == "Skipped":  # no Java or Maven: testing.py's hint
                print(f"cannot start Cassandra: {exc}", file=sys.stderr)
                return 2
            raise
    print("OK: no result lost" if ok else "FAILED: results lost")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Real RabbitMQ nodes for tests: this plugin's own, the end-to-end tests and the benchmarks.

Each :class:`RabbitServer` is a node of its own, never the system-wide one a
``rabbitmq-server`` package may have set up: its own node name, its own Erlang
cookie (``HOME`` in the temporary directory), its own ``epmd`` on a free port,
its AMQP listener and its distribution port bound to 127.0.0.1 on free ports,
and its data, logs and configuration under the directory it is given. The
package's wrapper scripts (which switch to the ``rabbitmq`` user and read
``/etc/rabbitmq``) are bypassed: the node runs as the test's user from the
scripts next to them.

A :class:`RabbitCluster` is several such nodes clustered on 127.0.0.1: one
``epmd`` and one cookie for all of them, a data directory and ports for each.

When rabbitmq-server is not installed, the test is skipped with the command to
install it (a failure under ``CI=true``, see :mod:`petiole.testing.servers`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from petiole.plugin_api import ServerProcess, free_port, port_open, require_binary

INSTALL_HINT = "install it with: apt-get install -y rabbitmq-server (or scripts/install-servers)"

# Settings that would make the node read, or write to, something outside its directory.
_INHERITED_PREFIXES = ("RABBITMQ_", "ERL_")
_INHERITED_NAMES = {"NOTIFY_SOCKET", "HOME"}

_T = TypeVar("_T")


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _own_environment() -> dict[str, str]:
    """This process's environment without what would point a node elsewhere."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name not in _INHERITED_NAMES
    }


def _epmd(port: int, log_path: Path) -> ServerProcess:
    """An ``epmd`` on 127.0.0.1:``port``. Started before any node, so that no Erlang VM
    starts one of its own (which would outlive the test, as a daemon)."""
    epmd = require_binary("epmd", install_hint=INSTALL_HINT)
    return ServerProcess(
        "epmd",
        [epmd, "-port", str(port), "-address", "127.0.0.1"],
        port=port,
        log_path=log_path,
        env=_own_environment(),
    )


def _run_each(action: Callable[[_T], object], items: Iterable[_T]) -> None:
    """``action`` on every item at once (each waits on a node, not on the CPU); the first
    error is raised once all have finished."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(action, item) for item in items]
    for future in futures:
        future.result()


class RabbitServer:
    """A RabbitMQ node run as a child process.

    :meth:`stop` stops it gracefully (``rabbitmqctl stop``), :meth:`kill` with
    SIGKILL; :meth:`start` again (or :meth:`restart`) brings it back on the same
    ports with its data. :meth:`close` stops the node and its ``epmd``: call it
    once at the end. ``config`` adds lines to its ``rabbitmq.conf``
    (``{"consumer_timeout": "5000"}``, say).

    A node alone needs nothing else. Nodes that cluster (see :class:`RabbitCluster`)
    share an ``epmd_port`` (an epmd their caller starts and stops: the node leaves it
    alone) and a ``cookie``, and have distinct ``node`` names; ``port`` (AMQP) and
    ``dist_port`` (Erlang distribution) are free ports when not given.
    """

    # RabbitMQ's default user, which it admits from loopback only.
    user = "guest"
    password = "guest"  # noqa: S105

    def __init__(
        self,
        directory: Path,
        *,
        config: Mapping[str, str] | None = None,
        start_timeout_s: float = 60.0,
        node: str | None = None,
        port: int | None = None,
        dist_port: int | None = None,
        epmd_port: int | None = None,
        cookie: str | None = None,
    ) -> None:
        # Debian puts it in /usr/sbin, which a non-root user's PATH often lacks.
        search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        server = shutil.which("rabbitmq-server", path=search_path) or require_binary(
            "rabbitmq-server", install_hint=INSTALL_HINT
        )
        # Debian's /usr/sbin/rabbitmq-server links to a wrapper that su's to the rabbitmq
        # user (which cannot read a test's directory); the real scripts sit next to it.
        scripts = Path(server).resolve().parent
        self.directory = directory
        free = iter(_distinct_free_ports(3))
        self.port = next(free) if port is None else port
        self.dist_port = next(free) if dist_port is None else dist_port
        self.epmd_port = next(free) if epmd_port is None else epmd_port
        self.node = node or f"petiole-{uuid.uuid4().hex[:8]}@localhost"
        self.env = self._environment(config or {}, cookie)
        self._ctl = str(scripts / "rabbitmqctl")
        # A shared epmd (epmd_port given) is its owner's to start and stop.
        self._epmd = (
            None if epmd_port is not None else _epmd(self.epmd_port, directory / "epmd.log")
        )
        self._node = ServerProcess(
            f"rabbitmq-server ({self.node})",
            [str(scripts / "rabbitmq-server")],
            port=self.port,
            log_path=directory / "rabbitmq-server.log",
            ready=self._answers,
            start_timeout_s=start_timeout_s,
            env=self.env,
        )
        self.last_start_s = 0.0

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/%2F"

    @property
    def pid(self) -> int:
        """The node's start script: it leads the process group the Erlang VM is in
        (what a benchmark sums CPU over). Raises when the node was never started."""
        process = self._node.process
        if process is None:
            raise RuntimeError(f"{self.node} was never started")
        return process.pid

    @property
    def running(self) -> bool:
        process = self._node.process
        return process is not None and process.poll() is None

    def start(self) -> RabbitServer:
        """Start the node (and its own epmd, the first time); return once it accepts AMQP
        connections. ``last_start_s`` is how long that took."""
        started = time.monotonic()
        if self._epmd is not None and not self._epmd.running:
            self._epmd.start()
        try:
            self._node.start()
        except RuntimeError:
            self._kill_group()  # ServerProcess kills the start script only, not the VM
            raise
        self.last_start_s = time.monotonic() - started
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the node gracefully: ``rabbitmqctl stop``, then SIGKILL if it lingers."""
        process = self._node.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [self._ctl, "-q", "-n", self.node, "stop"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL the node (the start script and the Erlang VM): a crash. Persistent
        messages confirmed into durable queues survive it, except in a queue created
        moments before (README.md, "A broker crash right after a queue is created")."""
        self._kill_group()

    def restart(self) -> None:
        """Stop gracefully and start again: same node name, ports and data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node, then its own epmd: nothing it started keeps running."""
        self.stop()
        if self._epmd is not None:
            self._epmd.stop()

    def parameters(self) -> pika.ConnectionParameters:
        """pika's connection parameters for this node."""
        return pika.ConnectionParameters(
            "127.0.0.1",
            self.port,
            credentials=pika.PlainCredentials(self.user, self.password),
            connection_attempts=1,
            socket_timeout=5,
        )

    def connection(self) -> BlockingConnection:
        """A pika connection to the node (the caller closes it)."""
        return pika.BlockingConnection(self.parameters())

    def ctl(self, *args: str, timeout_s: float = 30.0) -> str:
        """Run ``rabbitmqctl`` against this node; its standard output."""
        done = subprocess.run(
            [self._ctl, "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return done.stdout

    def _kill_group(self) -> None:
        # start_new_session made the start script a group leader; the Erlang VM is in its
        # group, and killing the script alone would leave the VM running.
        process = self._node.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # The VM is not the script's: it dies a moment later. Waiting for its ports (rather
        # than its PID, which only the reaper of orphans sees go) lets a start reuse them.
        deadline = time.monotonic() + 10.0
        while port_open(self.port) or port_open(self.dist_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node} still listens 10 s after SIGKILL")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """Ready once an AMQP connection opens and a channel on it: the listener starts
        only when the node has booted."""
        if not port_open(self.port):
            return False
        try:
            connection = self.connection()
        except (OSError, pika.exceptions.AMQPError):
            return False
        try:
            connection.channel().close()
        except (OSError, pika.exceptions.AMQPError):
            return False
        finally:
            with contextlib.suppress(OSError, pika.exceptions.AMQPError):
                connection.close()
        return True

    def _environment(self, config: Mapping[str, str], cookie: str | None) -> dict[str, str]:
        base = self.directory
        home = base / "home"
        home.mkdir(exist_ok=True)
        if cookie is not None:
            # Erlang refuses a cookie file that anyone but its owner may read.
            cookie_path = home / ".erlang.cookie"
            cookie_path.unlink(missing_ok=True)
            descriptor = os.open(cookie_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(descriptor, "w") as file:
                file.write(cookie)
        (base / "rabbitmq-env.conf").write_text("# not /etc/rabbitmq/rabbitmq-env.conf\n")
        (base / "enabled_plugins").write_text("[].\n")
        lines = {
            "listeners.tcp.1": f"127.0.0.1:{self.port}",
            "log.console": "true",
            "log.file": "false",
            **config,
        }
        (base / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
        # Erlang distribution on loopback only, on its fixed port (RABBITMQ_DIST_PORT).
        (base / "advanced.config").write_text(
            "[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n"
        )
        env = _own_environment()
        env.update(
            HOME=str(home),  # the Erlang cookie, shared by the node and rabbitmqctl
            LC_ALL="C.UTF-8",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_PLUGINS_EXPAND_DIR=str(base / "plugins-expand"),
        )
        return env


class RabbitCluster:
    """``size`` RabbitMQ nodes clustered on 127.0.0.1 (issue #16's high-availability test).

    The nodes (``nodes``, :class:`RabbitServer` each, named ``petiole-<hex>-1@localhost``,
    ``-2``, ...) share one ``epmd`` and one Erlang cookie; each has its own directory
    (``DIR/node-1``, ...), AMQP port and distribution port. The first node boots alone,
    a cluster of its own; the others then boot at once, find it through RabbitMQ's
    ``classic_config`` peer discovery and join it while they boot (no node restarts to
    join, as ``rabbitmqctl join_cluster`` would need).

    :meth:`start` returns once every node accepts AMQP connections and
    ``rabbitmqctl cluster_status`` lists them all as running. :meth:`stop_node` and
    :meth:`start_node` take one node down gracefully and back (it rejoins with its
    data); :meth:`leader_of` names the node that leads a quorum queue. :meth:`close`
    stops every node, then epmd: call it once at the end (it is also called when
    :meth:`start` fails, so a failed start leaves nothing running).
    """

    def __init__(
        self,
        directory: Path,
        size: int = 3,
        *,
        config: Mapping[str, str] | None = None,
        start_timeout_s: float = 120.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least one node, not {size}")
        self.directory = directory
        self.name = f"petiole-{uuid.uuid4().hex[:8]}"
        # All ports from one draw, so no two of them coincide.
        self.epmd_port, *ports = _distinct_free_ports(1 + 2 * size)
        names = [f"{self.name}-{index}@localhost" for index in range(1, size + 1)]
        cookie = uuid.uuid4().hex
        self.nodes: list[RabbitServer] = []
        for index, node in enumerate(names):
            node_directory = directory / f"node-{index + 1}"
            node_directory.mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                RabbitServer(
                    node_directory,
                    config={**self._discovery(names[0], node), **(config or {})},
                    start_timeout_s=start_timeout_s,
                    node=node,
                    port=ports[2 * index],
                    dist_port=ports[2 * index + 1],
                    epmd_port=self.epmd_port,
                    cookie=cookie,
                )
            )
        self._epmd = _epmd(self.epmd_port, directory / "epmd.log")
        self.start_timeout_s = start_timeout_s
        self.last_start_s = 0.0
        self._formed = False

    @property
    def urls(self) -> list[str]:
        """One ``amqp://`` URL per node, in the order of ``nodes``."""
        return [node.url for node in self.nodes]

    def start(self) -> RabbitCluster:
        """Start every node that is not running; return once all run and are clustered.
        ``last_start_s`` is how long that took. On failure, everything is closed and the
        error raised.

        The first time, the first node boots alone and the others then boot at once and
        join it. Afterwards (its nodes stopped, say), the stopped nodes start at once: each
        waits, while it boots, for the nodes it last ran with."""
        started = time.monotonic()
        try:
            if not self._epmd.running:
                self._epmd.start()
            if not self._formed:
                # A node that joins the first one while the first still initialises its
                # fresh database (enabling every feature flag) can make the first one fail
                # to boot (incompatible_feature_flags, "All replicas on diskfull nodes are
                # not active yet"), as seen here with all three started at once.
                self.nodes[0].start()
            _run_each(RabbitServer.start, [node for node in self.nodes if not node.running])
            self._await_clustered()
        except BaseException:
            self.close()
            raise
        self._formed = True
        self.last_start_s = time.monotonic() - started
        return self

    def stop_node(self, node: RabbitServer) -> None:
        """Stop ``node`` gracefully (``rabbitmqctl stop``); the others keep running."""
        node.stop()

    def start_node(self, node: RabbitServer) -> None:
        """Start ``node`` again with its data; return once the cluster lists it running."""
        node.start()
        self._await_clustered()

    def leader_of(self, queue: str, *, vhost: str = "/", timeout_s: float = 30.0) -> RabbitServer:
        """The running node that leads quorum queue ``queue``. Right after its leader
        stopped, a queue has none until the others elect one: this waits for that
        (polling, up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            leader = self._current_leader(queue, vhost)
            if leader is not None and leader.running:
                return leader
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"quorum queue {queue!r} has no running leader after {timeout_s} s"
                )
            time.sleep(0.1)

    def running_nodes(self) -> set[str]:
        """The node names ``rabbitmqctl cluster_status`` lists as running (asked of the
        first running node)."""
        status = json.loads(self._any_running().ctl("cluster_status", "--formatter", "json"))
        return set(status["running_nodes"])

    def close(self) -> None:
        """Stop every node (gracefully, all at once), then epmd: nothing the cluster
        started keeps running. Calling it again does nothing."""
        try:
            _run_each(RabbitServer.stop, self.nodes)
        finally:
            self._epmd.stop()

    def _any_running(self) -> RabbitServer:
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError(f"no node of cluster {self.name} is running")

    def _current_leader(self, queue: str, vhost: str) -> RabbitServer | None:
        listed = self._any_running().ctl(
            "list_queues", "-p", vhost, "name", "leader", "--formatter", "json"
        )
        by_name = {node.node: node for node in self.nodes}
        for row in json.loads(listed):
            if row["name"] == queue:
                return by_name.get(row["leader"])
        raise RuntimeError(f"no queue {queue!r} in vhost {vhost!r} of cluster {self.name}")

    def _await_clustered(self) -> None:
        # A node that failed to find the first one boots as a cluster of its own and
        # still answers AMQP: only the cluster's own view tells the two apart.
        expected = {node.node for node in self.nodes if node.running}
        deadline = time.monotonic() + self.start_timeout_s
        while (running := self.running_nodes()) != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"cluster {self.name}: running nodes {sorted(running)}, "
                    f"expected {sorted(expected)}"
                )
            time.sleep(0.2)

    @staticmethod
    def _discovery(first: str, node: str) -> dict[str, str]:
        if node == first:
            # With no peers listed, the node starts a cluster of its own at once.
            return {}
        # Only the first node is listed (with the node itself, as RabbitMQ expects): a node
        # that joined a peer still booting could fail as the first one did (see start).
        # Peer discovery locks the listed nodes, so the others join the first one in turn.
        return {
            "cluster_formation.peer_discovery_backend": "classic_config",
            "cluster_formation.classic_config.nodes.1": first,
            "cluster_formation.classic_config.nodes.2": node,
        }

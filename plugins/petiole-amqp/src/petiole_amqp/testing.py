"""A real RabbitMQ node for tests: this plugin's own, the end-to-end tests and the benchmarks.

Each :class:`RabbitServer` is a node of its own, never the system-wide one a
``rabbitmq-server`` package may have set up: its own node name, its own Erlang
cookie (``HOME`` in the temporary directory), its own ``epmd`` on a free port,
its AMQP listener and its distribution port bound to 127.0.0.1 on free ports,
and its data, logs and configuration under the directory it is given. The
package's wrapper scripts (which switch to the ``rabbitmq`` user and read
``/etc/rabbitmq``) are bypassed: the node runs as the test's user from the
scripts next to them.

When rabbitmq-server is not installed, the test is skipped with the command to
install it (a failure under ``CI=true``, see :mod:`petiole.testing.servers`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from petiole.plugin_api import ServerProcess, free_port, port_open, require_binary

INSTALL_HINT = "install it with: apt-get install -y rabbitmq-server (or scripts/install-servers)"

# Settings that would make the node read, or write to, something outside its directory.
_INHERITED_PREFIXES = ("RABBITMQ_", "ERL_")
_INHERITED_NAMES = {"NOTIFY_SOCKET", "HOME"}


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


class RabbitServer:
    """A RabbitMQ node run as a child process.

    :meth:`stop` stops it gracefully (``rabbitmqctl stop``), :meth:`kill` with
    SIGKILL; :meth:`start` again (or :meth:`restart`) brings it back on the same
    ports with its data. :meth:`close` stops the node and its ``epmd``: call it
    once at the end. ``config`` adds lines to its ``rabbitmq.conf``
    (``{"consumer_timeout": "5000"}``, say).
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
    ) -> None:
        # Debian puts it in /usr/sbin, which a non-root user's PATH often lacks.
        search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        server = shutil.which("rabbitmq-server", path=search_path) or require_binary(
            "rabbitmq-server", install_hint=INSTALL_HINT
        )
        epmd = require_binary("epmd", install_hint=INSTALL_HINT)
        # Debian's /usr/sbin/rabbitmq-server links to a wrapper that su's to the rabbitmq
        # user (which cannot read a test's directory); the real scripts sit next to it.
        scripts = Path(server).resolve().parent
        self.directory = directory
        self.port, self.dist_port, self.epmd_port = _distinct_free_ports(3)
        self.node = f"petiole-{uuid.uuid4().hex[:8]}@localhost"
        self.env = self._environment(config or {})
        self._ctl = str(scripts / "rabbitmqctl")
        self._epmd = ServerProcess(
            "epmd",
            [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            port=self.epmd_port,
            log_path=directory / "epmd.log",
            env=self.env,
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
    def running(self) -> bool:
        process = self._node.process
        return process is not None and process.poll() is None

    def start(self) -> RabbitServer:
        """Start the node (and its epmd, the first time); return once it accepts AMQP
        connections. ``last_start_s`` is how long that took."""
        started = time.monotonic()
        if self._epmd.process is None or self._epmd.process.poll() is not None:
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
        messages confirmed into durable classic queues survive it; for single-node quorum
        queues see README.md ("a single-node quorum queue after SIGKILL")."""
        self._kill_group()

    def restart(self) -> None:
        """Stop gracefully and start again: same node name, ports and data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node, then its epmd: nothing it started keeps running."""
        self.stop()
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

    def _environment(self, config: Mapping[str, str]) -> dict[str, str]:
        base = self.directory
        home = base / "home"
        home.mkdir(exist_ok=True)
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
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_INHERITED_PREFIXES) and name not in _INHERITED_NAMES
        }
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

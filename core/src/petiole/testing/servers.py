"""Starting real servers for plugin tests: on 127.0.0.1, a free port, data in a temp dir.

Plugins are tested against the real server they target, never a mock. A test
session starts the server itself (see :class:`ServerProcess`) and stops it by
its PID afterwards; a plugin's server class builds on :class:`ManagedServer`,
and its fixtures use :func:`serve`. When the server is not installed, :func:`require_binary`
skips the tests with a message that says what to install — except when the
environment variable ``CI`` is ``true``, where a missing server is a failure,
so a green CI run always means the tests ran.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, *, install_hint: str) -> str:
    """The path of executable ``name``; skip (or, under CI, fail) when missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install_hint})"
        if in_ci():
            pytest.fail(f"{message}; CI must run these tests", pytrace=False)
        pytest.skip(message)
    return path


def require_module(name: str, *, install_hint: str) -> None:
    """Skip (or, under CI, fail) unless the Python module ``name`` imports."""
    try:
        __import__(name)
    except ImportError:
        message = f"Python module {name} is not installed ({install_hint})"
        if in_ci():
            pytest.fail(f"{message}; CI must run these tests", pytrace=False)
        pytest.skip(message)


#: Where test servers' ports are drawn from: above the well-known ones, below the
#: ephemeral range (read from the kernel where it says).
_LOWEST_PORT = 10000
_EPHEMERAL_LOW = 32768
_PORT_ATTEMPTS = 100
_random = random.SystemRandom()  # forked test processes must not draw the same ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range.

    Not one the kernel would pick for a client: a client retrying a connection to a
    stopped server can be given that very port as its own source port, and so
    connect to itself (a TCP simultaneous open), after which the restarted server
    cannot listen on it (RabbitMQ: ``could_not_start_listener``)."""
    high = _ephemeral_low()
    for _ in range(_PORT_ATTEMPTS):
        port = _random.randrange(_LOWEST_PORT, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The lowest port the kernel gives clients: Linux's setting, or where it cannot
    be read 32768 (Linux's default, below the IANA range other systems use)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _EPHEMERAL_LOW
    return max(low, _LOWEST_PORT + _PORT_ATTEMPTS)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """A server run as a child process, in the foreground, with its output in a log file.

    ``ready`` decides when it accepts work (by default: its port accepts
    connections), asked every ``poll_interval_s`` while it starts. :meth:`stop`
    sends SIGTERM, then SIGKILL after a grace period; :meth:`kill` is SIGKILL at
    once (for crash tests); :meth:`start` again restarts it on the same port and
    data. ``explain_exit`` may say why it exited while starting (read from its
    log, say), ahead of the log's last ``log_lines`` lines.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log_path: Path,
        ready: Callable[[], bool] | None = None,
        start_timeout_s: float = 30.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        poll_interval_s: float = 0.02,
        explain_exit: Callable[[], str] | None = None,
        log_lines: int = 30,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self.ready = ready or (lambda: port_open(port))
        self.start_timeout_s = start_timeout_s
        self.env = env
        self.cwd = cwd
        self.poll_interval_s = poll_interval_s
        self.explain_exit = explain_exit or (lambda: "")
        self.log_lines = log_lines
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} while starting"
                    f"{self.explain_exit()}; log:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} not ready after {self.start_timeout_s} s; log:\n{self.log_tail()}"
                )
            time.sleep(self.poll_interval_s)
        return self

    def log_tail(self, lines: int | None = None) -> str:
        """The log's last ``lines`` lines (default ``log_lines``), each cut to 400 characters."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = text.splitlines()[-(lines or self.log_lines) :]
        return "\n".join(line if len(line) < 400 else line[:400] + " ..." for line in tail)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is None or not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is None or not self.running:
            return
        self.process.kill()
        self.process.wait()


Server = TypeVar("Server", bound="ManagedServer")


class ManagedServer:
    """What a plugin's test server class shares: it sets ``self.process`` (a
    :class:`ServerProcess`) and adds its URLs and clients; starting, stopping,
    killing and restarting are these."""

    process: ServerProcess

    def start(self: Server) -> Server:
        """Start it and return once it is ready (again, after :meth:`kill` or :meth:`stop`)."""
        self.process.start()
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL at once (a crash), waiting for it to exit so its port can be reused."""
        self.process.kill()

    def restart(self) -> None:
        """SIGKILL, then start again on the same port (and data, if it keeps any)."""
        self.kill()
        self.start()


def serve(server: Server) -> Iterator[Server]:
    """Start ``server``, yield it, and stop it after: a fixture's body is
    ``yield from serve(MyServer(tmp_path))``."""
    server.start()
    try:
        yield server
    finally:
        server.stop()

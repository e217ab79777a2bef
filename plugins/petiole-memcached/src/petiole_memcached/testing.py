"""A real ``memcached`` for tests: this plugin's own, and the end-to-end tests.

Started in the foreground (no ``-d``) on 127.0.0.1 with a free port, UDP off
and 64 MB of memory, so the fixture stops it by its PID. When memcached is not
installed, the test is skipped with the command to install it (a failure under
``CI=true``, see :mod:`petiole.testing.servers`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from petiole.testing.servers import ManagedServer, ServerProcess, free_port, require_binary

INSTALL_HINT = "install it with: apt-get install -y memcached"


class MemcachedServer(ManagedServer):
    """A memcached child process; :meth:`restart` keeps its port (not its data:
    memcached keeps nothing on disk)."""

    def __init__(self, directory: Path, *, memory_mb: int = 64, max_item: str = "") -> None:
        binary = require_binary("memcached", install_hint=INSTALL_HINT)
        self.port = free_port()
        argv = [binary, "-p", str(self.port), "-l", "127.0.0.1", "-U", "0", "-m", str(memory_mb)]
        if max_item:
            argv += ["-I", max_item]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without it
        self.process = ServerProcess(
            "memcached",
            argv,
            port=self.port,
            log_path=directory / f"memcached-{self.port}.log",
            ready=self._answers,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"memcached://{self.address}"

    def _answers(self) -> bool:
        """Ready once it answers ``version`` (not merely accepts connections)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION")
        except OSError:
            return False

"""A real ``redis-server`` for tests: this plugin's own, and the end-to-end tests.

Started on 127.0.0.1 with a free port and its data in a temporary directory,
with the append-only file on and ``appendfsync always`` (so a SIGKILLed server
loses no acknowledged write, as the fault tests require). When redis-server is
not installed, the test is skipped with the command to install it (a failure
under ``CI=true``, see :mod:`petiole.testing.servers`).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import redis

from petiole.testing.servers import ManagedServer, ServerProcess, free_port, require_binary

INSTALL_HINT = "install it with: apt-get install -y redis-server"


class RedisServer(ManagedServer):
    """A redis-server child process; :meth:`restart` keeps its port and data."""

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        binary = require_binary("redis-server", install_hint=INSTALL_HINT)
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.socket_path = directory / "redis.sock"
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--dir", str(directory),
            "--daemonize", "no",
        ]  # fmt: skip
        if password:
            argv += ["--requirepass", password]
        self.process = ServerProcess(
            "redis-server",
            argv,
            port=self.port,
            log_path=directory / "redis-server.log",
            ready=self._answers,
        )

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket_path}?db=0"

    def kill(self) -> None:
        """SIGKILL: with ``appendfsync always`` every acknowledged write survives."""
        super().kill()

    def restart(self, *, keep_data: bool = True) -> None:
        """SIGKILL, then start again on the same port. Without ``keep_data`` its
        files are deleted in between: it comes back empty, with a new ``run_id``,
        as a server without persistence does."""
        self.kill()
        if not keep_data:
            for name in ("appendonlydir", "appendonly.aof", "dump.rdb"):
                path = self.directory / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)

    def _answers(self) -> bool:
        """Ready once it answers PING (not merely accepts connections: it may be loading)."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1.0
        )
        with contextlib.closing(client):
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

"""The example store for tests, started and stopped as a real server is.

Plugins are tested against the real server they target, never a mock: a test
session starts one on 127.0.0.1, on a free port, with its data in a temporary
directory, and stops it by its PID afterwards (:class:`ServerProcess`). When
the server is not installed the tests are skipped, saying what to install —
except under ``CI=true``, where a missing server is a failure, so a green CI
run always means the tests ran (:func:`require_binary`).

The template's store lives in the test process, so :class:`ExampleServer` keeps
the shape of a real one and shows its lines as comments where the in-process
store stands in. ``petiole_memcached.testing`` is a real one, in this repository.
"""

from __future__ import annotations

from pathlib import Path

from petiole.plugin_api import unique_name
from petiole_example._store import drop

# What the README tells users to run; require_binary repeats it when skipping.
INSTALL_HINT = "install it with: apt-get install -y example-server"


class ExampleServer:
    """One example server for tests: :meth:`start` it, use :attr:`url`, :meth:`stop` it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # A real server: find the binary (skip when missing, fail under CI=true), take a
        # free port, and keep its data and log in this test's directory:
        #
        #     binary = require_binary("example-server", install_hint=INSTALL_HINT)
        #     self.port = free_port()
        #     self.process = ServerProcess(
        #         "example-server",
        #         [binary, "--bind=127.0.0.1", f"--port={self.port}", f"--dir={directory}"],
        #         port=self.port,
        #         log_path=directory / f"example-server-{self.port}.log",
        #     )
        #
        # The in-process store needs no binary: a fresh name stands in for the address,
        # so each server is empty and private.
        self.name = unique_name("example-server")

    @property
    def url(self) -> str:
        return f"example://{self.name}"  # a real server: f"example://127.0.0.1:{self.port}"

    def start(self) -> ExampleServer:
        # self.process.start()  -- returns once the port accepts connections (or `ready` says
        # the server answers); raises with the log's tail if it exits or takes too long.
        return self

    def stop(self) -> None:
        # self.process.stop()  -- SIGTERM, then SIGKILL after a grace period.
        drop(self.name)

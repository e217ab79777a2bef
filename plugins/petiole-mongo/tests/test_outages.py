"""A change stream lost to a server restart: one warning line, one line when it
reopens, and waiters served meanwhile. The server (SecantusDB, in this process)
is stopped and started again for real, on the same port and data."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from petiole_mongo.testing import INSTALL_HINT
from petiole_mongo.transport import MongoTransport

from petiole.testing import unique_name, wait_until
from petiole.testing.servers import require_module


class RestartableServer:
    """SecantusDB that can stop and start again on the same port and data."""

    def __init__(self, directory: Path) -> None:
        require_module("secantus", install_hint=INSTALL_HINT)
        self._secantus: Any = importlib.import_module("secantus")
        self._directory = directory
        self._port = 0
        self._server: Any = None
        self.start()
        host, self._port = self._server.address
        self.url = f"mongodb://{host}:{self._port}/outages?directConnection=true"

    def start(self) -> None:
        self._server = self._secantus.SecantusDBServer(
            host="127.0.0.1", port=self._port, storage_path=str(self._directory)
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RestartableServer]:
    started = RestartableServer(tmp_path)
    yield started
    started.stop()


def stream_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "petiole_mongo" and "change stream" in r.message]


def test_a_lost_change_stream_is_one_warning_and_its_reopening_one_line_with_how_long(
    server: RestartableServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="petiole_mongo")
    transport = MongoTransport(server.url + "&serverSelectionTimeoutMS=2000", {})
    queue = unique_name()
    try:
        transport.reserve([queue], max_messages=1, wait_s=0.3, lease_s=30)  # opens the stream
        if not transport._feed.live:
            pytest.skip("this server offers no change streams")

        server.stop()
        assert wait_until(lambda: stream_lines(caplog) != [], timeout_s=30)
        server.start()
        assert wait_until(lambda: transport._feed.live, timeout_s=30)
        transport.publish(queue, b"after")

        got = transport.reserve([queue], max_messages=1, wait_s=5, lease_s=30)
        assert [d.payload for d in got] == [b"after"]
    finally:
        transport.close()

    lost, reopened = stream_lines(caplog)
    assert lost.levelno == logging.WARNING
    assert "mongo transport mongodb://127.0.0.1:" in lost.message
    assert "change stream lost (" in lost.message
    assert lost.message.endswith("polling until it reopens")
    assert reopened.levelno == logging.INFO
    assert " change stream reopened after " in reopened.message

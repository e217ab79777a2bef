"""A MongoDB-wire server for tests: this plugin's own, and the end-to-end tests.

By default it is SecantusDB (``pip install 'petiole-mongo[test]'``), run
in-process on 127.0.0.1 with a free port and its data in a temporary directory.
SecantusDB is GPL-licensed: it is a test tool here, never a runtime dependency.
When the environment variable ``PETIOLE_TEST_MONGODB_URL`` is set
(``mongodb://127.0.0.1:27017``, say), that server is used instead and the tests
work in a database of their own, dropped at the end.

When neither is available the test is skipped with what to install (a failure
under ``CI=true``, see :mod:`petiole.testing.servers`).
"""

from __future__ import annotations

import importlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pymongo import MongoClient

from petiole.testing.servers import require_module

URL_VARIABLE = "PETIOLE_TEST_MONGODB_URL"
INSTALL_HINT = f"pip install 'petiole-mongo[test]', or set {URL_VARIABLE} to a mongod's URL"


class MongoServer:
    """SecantusDB in this process, or the server named by ``PETIOLE_TEST_MONGODB_URL``.

    ``url`` names a database unique to this server object, so several test
    sessions can share one real ``mongod``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.external_url = os.environ.get(URL_VARIABLE, "")
        self.database = f"petiole_test_{secrets.token_hex(4)}"
        self._server: Any = None
        self._base_url = ""

    def start(self) -> MongoServer:
        if self.external_url:
            self._base_url = self.external_url
            return self
        require_module("secantus", install_hint=INSTALL_HINT)
        # Imported by name: SecantusDB is untyped, and only the [test] extra installs it.
        secantus = importlib.import_module("secantus")

        # ttl_sweep_seconds=1: the TTL index deletes expired documents within a
        # second (the plugin filters on expiry anyway; this keeps collections small).
        self._server = secantus.SecantusDBServer(
            host="127.0.0.1", port=0, storage_path=str(self.directory), ttl_sweep_seconds=1
        )
        self._server.start()
        host, port = self._server.address
        # SecantusDB reports a replica set ("secantus") of one: talk to it directly.
        self._base_url = f"mongodb://{host}:{port}/?directConnection=true"
        return self

    @property
    def is_secantus(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """A URL of this server with the test database as its path."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        parts = urlsplit(self._base_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    def client(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        elif self._base_url:
            with self.client() as client:
                client.drop_database(self.database)

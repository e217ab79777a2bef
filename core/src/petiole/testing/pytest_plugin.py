"""Pytest fixtures for testing code that uses Petiole (registered automatically).

* ``petiole_config`` — settings for ``petiole_app``; override it in your
  conftest. Defaults to in-memory broker and results, fresh for each test.
* ``petiole_app`` — an app with ``petiole_config`` applied, ignoring the config
  file and ``PETIOLE_*`` variables. Override it to use your own app, test after
  test::

      @pytest.fixture
      def petiole_app(petiole_config):
          with app.override(**petiole_config):
              yield app

* ``petiole_worker`` — a worker for ``petiole_app`` running in threads of the
  test process for the duration of the test.
* ``petiole_eager_app`` — ``petiole_app`` (yours, when you override it) in eager
  mode: its tasks run in the caller at ``delay()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from petiole.app import Petiole
from petiole.testing.in_thread import start_worker
from petiole.worker import Worker


@pytest.fixture
def petiole_config() -> dict[str, Any]:
    # Memory stores are process-wide by name: a fresh name isolates each test.
    store = f"memory://{uuid.uuid4().hex}"
    return {"broker_url": store, "backend_url": store}


@pytest.fixture
def petiole_app(petiole_config: dict[str, Any]) -> Iterator[Petiole]:
    with Petiole("test").override(**petiole_config) as app:
        yield app


@pytest.fixture
def petiole_worker(petiole_app: Petiole) -> Iterator[Worker]:
    with start_worker(petiole_app) as worker:
        yield worker


@pytest.fixture
def petiole_eager_app(petiole_app: Petiole) -> Iterator[Petiole]:
    # Layered over petiole_app's own override: a user's app, with the test's settings.
    with petiole_app.override(eager=True) as app:
        yield app

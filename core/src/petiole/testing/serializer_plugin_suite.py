"""The serializer plugin suite: a serializer as an app finds it and a worker uses it.

:class:`~petiole.testing.SerializerSuite` checks the serializer object; this
suite checks the plugin around it, through the app and a real worker on the
in-process ``memory://`` stores. A serializer plugin subclasses it and names
itself in class attributes::

    class TestMsgpackPlugin(SerializerPluginSuite):
        plugin = "msgpack"                  # its entry point's name
        distribution = "petiole-msgpack"
        package = "petiole_msgpack"
        serializer_name = "msgpack"
        content_type = "application/x-msgpack"
        rich_values = (uuid.UUID(int=1), Decimal("1.10"), b"\\x00\\xff")

It checks that the plugin is listed without importing more than its hook
module (every app imports every plugin's), that its package imports nothing of
the core but :mod:`petiole.plugin_api`, that an app finds the serializer by
name and by content type, that a task's arguments and result round-trip through
a worker with it on the wire (``rich_values``: values JSON cannot carry, which
must come back equal and of the same type), and that a worker whose
``accept_content`` leaves it out dead-letters its messages without handing a
byte of them to it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from petiole import Petiole, states
from petiole.testing._helpers import wait_until
from petiole.testing.in_thread import start_worker
from petiole.testing.plugin_checks import core_imports_beyond
from petiole.transport import DeadLetterAdmin


def _exactly(value: Any) -> tuple[Any, ...]:
    """What must survive the round trip: the value, its type, and for a datetime or
    time its UTC offset (aware datetimes an hour apart in offset compare equal)."""
    offset = value.utcoffset() if isinstance(value, (dt.datetime, dt.time)) else None
    return (value, type(value), offset)


class SerializerPluginSuite:
    """Subclass with the class attributes below (see the module docstring)."""

    plugin: ClassVar[str]
    distribution: ClassVar[str]
    package: ClassVar[str]
    serializer_name: ClassVar[str]
    content_type: ClassVar[str]
    rich_values: ClassVar[tuple[Any, ...]] = ()

    @pytest.fixture
    def stores(self) -> str:
        return f"memory://{uuid.uuid4().hex}"  # memory stores are process-wide by name

    def _app(self, stores: str, **settings: Any) -> Petiole:
        return Petiole(
            "serializer-plugin-suite",
            broker=stores,
            backend=stores,
            config_file=os.devnull,
            task_serializer=self.serializer_name,
            **settings,
        )

    @pytest.fixture
    def app(self, stores: str) -> Iterator[Petiole]:
        app = self._app(
            stores, result_serializer=self.serializer_name, accept_content=[self.serializer_name]
        )
        yield app
        app.close()

    def test_the_plugin_is_listed_without_importing_more_than_its_hooks(self) -> None:
        code = f"""
import sys
from petiole import Petiole

registry = Petiole("t", config_file={os.devnull!r}).plugins
info = registry.infos[{self.plugin!r}]
assert (info.distribution, info.status) == ({self.distribution!r}, "loaded"), info
assert {self.serializer_name!r} in registry.provided("serializer")
loaded = sorted(m for m in sys.modules if m.startswith({self.package + "."!r}))
assert loaded == [{self.package + ".plugin"!r}], loaded
"""
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    def test_the_plugin_imports_only_the_plugin_api_of_the_core(self) -> None:
        """Everything else in the core may change; petiole.plugin_api is the contract."""
        assert core_imports_beyond(importlib.import_module(self.package)) == {}

    def test_an_app_finds_the_serializer_by_name_and_by_content_type(self, app: Petiole) -> None:
        serializer = app.serializer(self.serializer_name)
        assert serializer.name == self.serializer_name
        assert serializer.content_type == self.content_type
        assert app.serializer_for_content_type(self.content_type) is serializer

    def test_a_task_round_trips_rich_values_through_a_worker(self, app: Petiole) -> None:
        echo = app.task(lambda *args: list(args), name="serializer_plugin_suite.echo")
        with start_worker(app):
            result = echo.delay(*self.rich_values)
            got = result.get(timeout=10)
        assert [_exactly(v) for v in got] == [_exactly(v) for v in self.rich_values]
        record = app.backend.get(result.id)
        assert record is not None
        assert (record.state, record.content_type) == (states.SUCCESS, self.content_type)

    def test_a_worker_not_accepting_it_dead_letters_its_messages_unread(
        self, stores: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        app = self._app(stores, result_serializer="json", accept_content=["json"])
        serializer_type = type(app.serializer(self.serializer_name))
        read: list[bytes] = []
        loads = serializer_type.loads

        def spy(self: Any, data: bytes) -> Any:
            read.append(data)
            return loads(self, data)

        monkeypatch.setattr(serializer_type, "loads", spy)
        ran: list[object] = []
        task = app.task(lambda *args: ran.append(args), name="serializer_plugin_suite.refused")
        transport = app.transport
        assert isinstance(transport, DeadLetterAdmin)  # memory:// keeps its dead letters
        try:
            with start_worker(app):
                task.delay(*self.rich_values)
                assert wait_until(lambda: len(transport.dead_letters("default")) == 1, timeout_s=10)
            [letter] = transport.dead_letters("default")
        finally:
            app.close()
        assert f"content type {self.content_type!r} is not accepted" in letter.reason
        assert "accept_content=['json']" in letter.reason
        assert (ran, read) == ([], [])

"""A third-party serializer, found through its entry point and used by name in config.

``petiole-example-serializer`` (beside this file) is a distribution of its own, as a
stranger would publish it: the core has never heard of it. The test run installs it,
and these tests show that installing it is all it takes — ``petiole plugins`` lists
it, the kit's serializer suite passes on it, and a ``petiole.toml`` naming it carries
a task through a worker with its content type on the wire.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from importlib import metadata
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from petiole import Petiole
from petiole.cli import cli
from petiole.envelope import Envelope
from petiole.errors import SerializationError
from petiole.serializers import Serializer
from petiole.testing import RoundTrip, SerializerSuite, core_imports_beyond, wait_until
from petiole.testing.in_thread import start_worker
from petiole.transport import DeadLetterAdmin

DISTRIBUTION = "petiole-example-serializer"
PROJECT = Path(__file__).parent / DISTRIBUTION
PLUGIN = "json-sorted"  # the entry point's name
NAME = "json-sorted"  # the serializer's name in config
CONTENT_TYPE = "application/x-example-sorted-json"
CORE = Path(__file__).resolve().parents[2] / "core" / "src" / "petiole"


@pytest.fixture(autouse=True, scope="module")
def _installed() -> None:
    # Part of the test run, not optional: a missing install is a failure, never a skip.
    if not _is_installed(DISTRIBUTION):
        pytest.fail(
            f"{DISTRIBUTION} is not installed; the test run installs it (noxfile.py, "
            f"session ci). Install it from the repository root with: "
            f"pip install -e tests/thirdparty/{DISTRIBUTION}",
            pytrace=False,
        )


def _is_installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _app(**settings: Any) -> Petiole:
    return Petiole("thirdparty", config_file=os.devnull, **settings)


# -- found through its entry point ---------------------------------------------------------


def test_petiole_plugins_lists_it_with_its_distribution_and_serializer() -> None:
    result = CliRunner().invoke(cli, ["plugins"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = f"{PLUGIN}  ({DISTRIBUTION} {metadata.version(DISTRIBUTION)})  [loaded]"
    assert header in lines, result.output
    details = list(takewhile(lambda line: line.startswith(" "), lines[lines.index(header) + 1 :]))
    assert f"    serializers: {NAME}" in details, result.output


def test_an_app_finds_it_through_its_entry_point_by_name_and_content_type() -> None:
    app = _app()

    provided = app.plugins.provided("serializer")
    info = app.plugins.infos[PLUGIN]
    serializer = app.serializer(NAME)

    assert provided[NAME].plugin == PLUGIN
    assert (info.distribution, info.value) == (DISTRIBUTION, "petiole_example_serializer.plugin")
    assert serializer.content_type == CONTENT_TYPE
    assert app.serializer_for_content_type(CONTENT_TYPE) is serializer


def test_it_uses_only_the_plugin_api_and_the_core_never_names_it() -> None:
    assert core_imports_beyond(PROJECT / "src") == {}
    for path in sorted(CORE.rglob("*.py")):
        text = path.read_text()
        assert NAME not in text, path
        assert CONTENT_TYPE not in text, path


# -- the kit's serializer suite, on the serializer the app found ---------------------------


class TestSortedJsonSerializer(SerializerSuite):
    extra_roundtrip_values = (RoundTrip("tuple-as-list", (1, "a", None), expected=[1, "a", None]),)
    malformed_inputs = (
        *SerializerSuite.malformed_inputs,
        b"[1, NaN]",
        b'{"a": -Infinity}',
        b"[" * 100_000 + b"]" * 100_000,
    )

    @pytest.fixture
    def serializer(self) -> Serializer:
        return _app().serializer(NAME)


def test_equal_values_give_equal_bytes_whatever_their_dicts_order() -> None:
    serializer = _app().serializer(NAME)

    first = serializer.dumps({"b": [1, "é"], "a": {"d": 2, "c": 3}})
    second = serializer.dumps({"a": {"c": 3, "d": 2}, "b": [1, "é"]})

    assert first == second == '{"a":{"c":3,"d":2},"b":[1,"é"]}'.encode()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"a": 1, 2: "b"}, "not supported between instances"),
        ([1.0, float("nan")], "not JSON compliant"),
        ({"x": float("inf")}, "not JSON compliant"),
    ],
    ids=["keys-that-cannot-be-ordered", "nan", "infinity"],
)
def test_values_strict_sorted_json_cannot_hold_are_refused(value: Any, match: str) -> None:
    with pytest.raises(SerializationError, match=f"cannot encode as sorted JSON: .*{match}"):
        _app().serializer(NAME).dumps(value)


# -- used by name in config, end to end ----------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A petiole.toml naming the example serializer, on a memory:// store of its own."""
    for variable in os.environ:  # only the file configures these apps
        if variable.startswith("PETIOLE_") and not variable.startswith("PETIOLE_TEST_"):
            monkeypatch.delenv(variable)
    store = f"memory://thirdparty-{uuid.uuid4().hex}"  # memory stores are process-wide by name
    path = tmp_path / "petiole.toml"
    path.write_text(
        f'broker_url = "{store}"\n'
        f'backend_url = "{store}"\n'
        f'task_serializer = "{NAME}"\n'
        f'result_serializer = "{NAME}"\n'
        f'accept_content = ["{NAME}"]\n'
    )
    return path


@pytest.fixture
def app(config_file: Path) -> Iterator[Petiole]:
    app = Petiole("thirdparty", config_file=config_file)
    yield app
    app.close()


def test_a_task_round_trips_through_a_worker_with_its_content_type_on_the_wire(
    app: Petiole,
) -> None:
    merge = app.task(lambda left, right: {**right, **left}, name="thirdparty.merge")
    serializer = app.serializer(NAME)

    result = merge.delay({"z": 1, "a": 2}, right={"m": [3]})
    # Read the message off the broker before any worker runs, then give it back.
    [delivery] = app.transport.reserve(["default"], max_messages=1, wait_s=5, lease_s=30)
    envelope = Envelope.from_bytes(delivery.payload)
    app.transport.nack(delivery, requeue=True)
    with start_worker(app):
        got = result.get(timeout=10)

    assert envelope.content_type == CONTENT_TYPE
    assert serializer.dumps(serializer.loads(envelope.body)) == envelope.body  # canonical
    assert got == {"z": 1, "a": 2, "m": [3]}
    record = app.backend.get(result.id)
    assert record is not None
    assert (record.state, record.content_type) == ("SUCCESS", CONTENT_TYPE)


def test_a_worker_accepting_only_json_dead_letters_it_naming_its_content_type(
    app: Petiole,
) -> None:
    store = app.settings.broker_url
    worker_app = _app(broker=store, backend=store, accept_content=["json"])
    ran: list[object] = []
    worker_app.task(lambda *args: ran.append(args), name="thirdparty.refused")
    dead_letters = app.transport
    assert isinstance(dead_letters, DeadLetterAdmin)

    app.send_task("thirdparty.refused", args=[{"b": 1, "a": 2}])
    try:
        with start_worker(worker_app):
            assert wait_until(lambda: len(dead_letters.dead_letters("default")) == 1, timeout_s=10)
    finally:
        worker_app.close()

    [letter] = dead_letters.dead_letters("default")
    assert f"content type {CONTENT_TYPE!r} is not accepted" in letter.reason
    assert "accept_content=['json']" in letter.reason
    assert Envelope.from_bytes(letter.payload).content_type == CONTENT_TYPE
    assert ran == []

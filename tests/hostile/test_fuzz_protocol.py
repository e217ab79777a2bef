"""Bounded, reproducible fuzzing of what a worker parses before any task runs:
the envelope's framing and headers, and the built-in serializers' ``loads``.

Each input must either parse or raise the documented error (``ProtocolError``,
``SerializationError``): never a ``RecursionError``, ``KeyError``,
``OverflowError``... that would escape the worker's handling. The number of
inputs tried is printed (``-s``) and listed in the terminal summary.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hostile_kit import FUZZ_COUNTS, count_input
from hostile_strategies import (
    TAGS,
    bodies,
    deep_json_text,
    frame,
    framed_messages,
    header_texts,
    json_text,
    json_values,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.errors import ProtocolError, SerializationError
from petiole.serializers import TAG, Serializer

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same inputs on every run: CI failures reproduce
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
PER_TAG = settings(FUZZ, max_examples=100)


@pytest.fixture(scope="module")
def app() -> Petiole:
    return Petiole("fuzz", broker="memory://fuzz", backend="memory://fuzz", config_file="/dev/null")


def _run(name: str, check: Callable[[], None]) -> None:
    """Run a hypothesis-decorated ``check``; count and print the inputs it tried."""
    before = _tried(name)
    check()
    print(f"\n{name}: {_tried(name) - before} inputs tried")


def _tried(name: str) -> int:
    return FUZZ_COUNTS.get(name, 0)


def _parses_or_protocol_error(name: str, data: bytes) -> None:
    count_input(name)
    try:
        envelope = Envelope.from_bytes(data)
    except ProtocolError:
        return
    assert isinstance(envelope.task_id, str)
    assert isinstance(envelope.task_name, str)
    assert isinstance(envelope.content_type, str)


def _loads_or_serialization_error(name: str, serializer: Serializer, data: bytes) -> Any:
    count_input(name)
    try:
        return serializer.loads(data)
    except SerializationError:
        return None


# -- the envelope ---------------------------------------------------------------------


def test_envelope_from_arbitrary_bytes_parses_or_raises_protocol_error() -> None:
    name = "Envelope.from_bytes, arbitrary bytes and framing"

    @FUZZ
    @given(st.binary(max_size=256) | framed_messages())
    def check(data: bytes) -> None:
        _parses_or_protocol_error(name, data)

    _run(name, check)


def test_envelope_with_structured_but_wrong_headers_parses_or_raises_protocol_error() -> None:
    name = "Envelope.from_bytes, structured but wrong headers"

    @FUZZ
    @given(header_texts(), bodies)
    def check(header: str, body: bytes) -> None:
        _parses_or_protocol_error(name, frame(header.encode("utf-8", "surrogatepass"), body))

    _run(name, check)


def test_envelope_with_headers_nested_deep_parses_or_raises_protocol_error() -> None:
    name = "Envelope.from_bytes, deeply nested headers"

    @FUZZ
    @given(deep_json_text, st.booleans())
    def check(deep: str, as_whole_block: bool) -> None:
        head = deep if as_whole_block else '{"protocol":1,"id":"x","task":"t","x":' + deep + "}"
        _parses_or_protocol_error(name, frame(head.encode(), b"[[],{}]"))

    _run(name, check)


# -- the serializers ---------------------------------------------------------------------


def test_json_loads_of_arbitrary_bytes_returns_or_raises_serialization_error(
    app: Petiole,
) -> None:
    name = "json loads, arbitrary bytes"
    serializer = app.serializer("json")

    @FUZZ
    @given(st.binary(max_size=256) | json_values.map(lambda v: json_text(v).encode()))
    def check(data: bytes) -> None:
        _loads_or_serialization_error(name, serializer, data)

    _run(name, check)


def test_json_loads_of_deep_nesting_returns_or_raises_serialization_error(app: Petiole) -> None:
    name = "json loads, deep nesting"
    serializer = app.serializer("json")

    @FUZZ
    @given(deep_json_text)
    def check(text: str) -> None:
        _loads_or_serialization_error(name, serializer, text.encode())

    _run(name, check)


@pytest.mark.parametrize("tag", TAGS)
def test_json_loads_of_any_tagged_value_returns_or_raises_serialization_error(
    app: Petiole, tag: str
) -> None:
    name = f"json loads, tagged {tag!r} values"
    serializer = app.serializer("json")

    @PER_TAG
    @given(json_values, st.sampled_from(["alone", "in args", "in kwargs", "nested"]))
    def check(value: Any, where: str) -> None:
        tagged = {TAG: tag, "v": value}
        document = {
            "alone": tagged,
            "in args": [[tagged], {}],
            "in kwargs": [[], {"x": tagged}],
            "nested": [[{"a": [tagged, tagged]}], {}],
        }[where]
        _loads_or_serialization_error(name, serializer, json_text(document).encode())

    _run(name, check)


def test_json_loads_of_tagged_values_that_json_cannot_spell_raises_serialization_error(
    app: Petiole,
) -> None:
    # Overflowing numbers parse as infinities; a timedelta or decimal of one is refused.
    name = "json loads, tagged overflowing numbers"
    serializer = app.serializer("json")
    for tag in TAGS:
        for number in ("1e400", "-1e400", "NaN", "Infinity", "1" * 5000):
            data = f'{{"{TAG}":"{tag}","v":{number}}}'.encode()
            _loads_or_serialization_error(name, serializer, data)
    print(f"\n{name}: {_tried(name)} inputs tried")


def test_pickle_loads_of_arbitrary_bytes_returns_or_raises_serialization_error(
    app: Petiole,
) -> None:
    name = "pickle loads, arbitrary and mutated pickles"
    serializer = app.serializer("pickle")

    def mutated(value_and_edit: tuple[Any, int, int]) -> bytes:
        value, position, byte = value_and_edit
        data = bytearray(pickle.dumps([[value], {}]))
        data[position % len(data)] = byte
        return bytes(data)

    edits = st.tuples(json_values, st.integers(min_value=0), st.integers(0, 255)).map(mutated)

    @FUZZ
    @given(st.binary(max_size=256) | edits)
    def check(data: bytes) -> None:
        _loads_or_serialization_error(name, serializer, data)

    _run(name, check)


def test_json_round_trips_what_it_accepted(app: Petiole) -> None:
    # Sanity for the fuzz above: valid documents decode to what they encode.
    serializer = app.serializer("json")
    document = [[1, "two", None, [3.5]], {"k": {"nested": True}}]
    assert serializer.loads(json.dumps(document).encode()) == document

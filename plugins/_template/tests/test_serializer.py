"""What the example serializer does beyond the conformance suite: strict JSON."""

from __future__ import annotations

import pytest
from petiole_example.serializer import ExampleSerializer

from petiole.plugin_api import SerializationError


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"x": -float("inf")}])
def test_nan_and_infinities_are_refused_since_strict_json_has_none(value: object) -> None:
    with pytest.raises(SerializationError, match="strict JSON"):
        ExampleSerializer().dumps(value)


def test_nan_in_a_document_is_refused_on_reading() -> None:
    with pytest.raises(SerializationError, match="NaN is not strict JSON"):
        ExampleSerializer().loads(b"[1, NaN]")


def test_output_is_compact_utf8_json() -> None:
    assert ExampleSerializer().dumps({"k": ["é", 1]}) == '{"k":["é",1]}'.encode()

"""compact_json_encoder: json's C encoder called directly gives JSONEncoder's text,
and tells a cycle apart the way each mode says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from petiole.serializers import compact_json_encoder

VALUES: list[Any] = [
    {"id": "8c1f0d7e", "n": 1, "f": 0.1, "none": None, "t": True, "nested": [1, [2, {"k": "v"}]]},
    [["é", "\u2603", '\n"quoted"'], {}],
    "a top-level string",
    3.5,
    float("nan"),
    [],
]


@pytest.mark.parametrize("catch_cycles", [True, False])
@pytest.mark.parametrize("value", VALUES)
def test_the_text_is_json_encoders_own(value: Any, catch_cycles: bool) -> None:
    expected = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode(value)
    assert compact_json_encoder(catch_cycles=catch_cycles)(value) == expected


def test_a_value_json_cannot_encode_goes_to_default_then_fails_as_json_does() -> None:
    encode = compact_json_encoder(lambda value: sorted(value))
    assert encode({"s": {3, 1, 2}}) == '{"s":[1,2,3]}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json_encoder()(object())


def test_a_cycle_is_a_value_error_when_caught_and_too_deep_when_not() -> None:
    looped: list[Any] = []
    looped.append(looped)
    encode = compact_json_encoder()
    with pytest.raises(ValueError, match="Circular reference"):
        encode(looped)
    assert encode([1]) == "[1]"  # the failed call left nothing behind
    with pytest.raises(RecursionError):
        compact_json_encoder(catch_cycles=False)(looped)

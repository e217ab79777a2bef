"""The example serializer: strict JSON (RFC 8259), readable by any language.

Unlike the core's JSON serializer it adds no tags for dates, bytes or sets, and
refuses NaN and infinities both ways (strict JSON has none), so what it writes
is plain JSON any consumer parses. Tuples are written as arrays and come back as
lists (declared to the conformance suite as an extra round trip).

Every failure is a :class:`~petiole.plugin_api.SerializationError` naming what
went wrong; nothing else escapes ``dumps`` or ``loads``.
"""

from __future__ import annotations

import json
from typing import Any

from petiole.plugin_api import SerializationError


def _refuse_object(value: Any) -> Any:
    kind = type(value)
    raise SerializationError(
        f"the example serializer writes plain JSON data and cannot encode a "
        f"{kind.__module__}.{kind.__qualname__}"
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


class ExampleSerializer:
    """A :class:`~petiole.plugin_api.Serializer` writing strict JSON."""

    name = "example"
    content_type = "application/x-example+json"

    def dumps(self, value: Any) -> bytes:
        try:
            text = json.dumps(
                value,
                default=_refuse_object,
                allow_nan=False,
                ensure_ascii=False,
                separators=(",", ":"),
            )
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:  # a non-string key, a NaN
            raise SerializationError(f"cannot encode as strict JSON: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("cannot encode as strict JSON: nested too deeply") from exc
        return text.encode()

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, TypeError) as exc:  # malformed, truncated, not UTF-8
            raise SerializationError(f"malformed strict JSON: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("malformed strict JSON: nested too deeply") from exc

"""Canonical JSON: ``task_serializer = "json-sorted"``, content type
``application/x-example-sorted-json``.

Keys are sorted and no whitespace is written, so equal values give equal bytes
whatever order their dicts were built in (a body that can be hashed, compared or
cached). It is strict JSON: NaN and infinities are refused both ways, there are no
tags for dates or bytes, and tuples come back as lists. Keys must be strings for the
bytes to be canonical: JSON writes other keys as strings, and a dict mixing key
types that cannot be ordered is refused.

Nothing but :class:`~petiole.plugin_api.SerializationError` escapes ``dumps`` or ``loads``.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from petiole.plugin_api import SerializationError


def _refuse_object(value: Any) -> NoReturn:
    kind = type(value)
    raise SerializationError(
        f"the json-sorted serializer writes plain JSON data and cannot encode a "
        f"{kind.__module__}.{kind.__qualname__}"
    )


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not strict JSON")


class SortedJsonSerializer:
    """A :class:`~petiole.plugin_api.Serializer` writing canonical, sorted-key JSON."""

    name = "json-sorted"
    content_type = "application/x-example-sorted-json"

    def dumps(self, value: Any) -> bytes:
        try:
            text = json.dumps(
                value,
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
                default=_refuse_object,
            )
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:  # keys "a" and 1 (unorderable), NaN, a cycle
            raise SerializationError(f"cannot encode as sorted JSON: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("cannot encode as sorted JSON: nested too deeply") from exc
        return text.encode()

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, TypeError) as exc:  # malformed, truncated, not UTF-8, NaN
            raise SerializationError(f"malformed sorted JSON body: {exc}") from exc
        except RecursionError as exc:
            raise SerializationError("malformed sorted JSON body: nested too deeply") from exc

"""The dumpers: PyYAML's safe dumper, with the ``!petiole/...`` tags.

They subclass ``yaml.SafeDumper`` and ``yaml.CSafeDumper`` (libyaml's emitter,
when PyYAML was built with it) and register their representers on those
subclasses only, never on PyYAML's global classes. They never write anchors or
aliases (the loader refuses them): a value that appears twice is written twice,
and a value that contains itself is too deep to write.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml
from yaml.representer import SafeRepresenter

from petiole.plugin_api import SerializationError
from petiole_yaml import tags


class _Representer(SafeRepresenter):
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_undefined(self, data: Any) -> NoReturn:
        kind = type(data)
        raise SerializationError(
            f"the YAML serializer cannot encode a {kind.__module__}.{kind.__qualname__}"
            " (pass plain data, dates, UUIDs, decimals, bytes or sets)"
        )


def _register(dumper: type[SafeRepresenter]) -> None:
    # add_representer copies the class's table on first use: PyYAML's stay untouched.
    for kind, representer in tags.REPRESENTERS.items():
        dumper.add_representer(kind, representer)
        dumper.add_multi_representer(kind, representer)
    for kind, representer in tags.SUBCLASS_REPRESENTERS.items():
        dumper.add_multi_representer(kind, representer)
    dumper.add_representer(None, _Representer.represent_undefined)  # type: ignore[arg-type]


class PureDumper(_Representer, yaml.SafeDumper):
    """PyYAML's pure-Python safe dumper, with petiole-yaml's tags."""


_register(PureDumper)

CDumper: type[yaml.SafeDumper] | type[yaml.CSafeDumper] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CDumper(_Representer, yaml.CSafeDumper):
        """libyaml's emitter with PyYAML's safe representer, and petiole-yaml's tags."""

    _register(_CDumper)
    CDumper = _CDumper

"""The YAML serializer: ``task_serializer = "yaml"``, content type
``application/x-yaml`` (Celery's, so mixed clusters name it alike).

It round-trips everything the core's JSON serializer does: plain data (dict keys
keep their type), ``datetime`` (naive or aware, to the microsecond, with its UTC
offset), ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal`` (exact),
``bytes``, ``set``, ``frozenset`` and integers of any size, using YAML's safe
types where they fit and ``!petiole/...`` tags for the rest
(:mod:`petiole_yaml.tags` has the table). Tuples come back as lists. Anything
else raises :class:`~petiole.plugin_api.SerializationError` naming its type.

**Safe loader only.** Reading is PyYAML's safe loader, guarded further
(:mod:`petiole_yaml._loader`): a tag that names a Python object
(``!!python/object/apply:os.system``), or any tag without a constructor here,
is refused with an error naming it, and nothing is built from it. Aliases and
merge keys are refused (alias bombs), so are multi-document streams, integers
over :data:`~petiole_yaml.tags.MAX_INT_CHARS` characters, and mappings or sets
whose keys were crafted to share one hash. Whatever the bytes, ``loads``
returns a value or raises ``SerializationError``.

libyaml's C parser and emitter (``CSafeLoader`` / ``CSafeDumper``) are used when
PyYAML has them, pure Python otherwise; both give the same results.

A prefix of a YAML document is often a document itself, so a truncated body is
not always detected: the transport's framing, not YAML, guards against that.
"""

from __future__ import annotations

from typing import Any

import yaml

from petiole.plugin_api import ConfigError, SerializationError
from petiole_yaml._dumper import CDumper, PureDumper
from petiole_yaml._loader import CLoader, PureLoader

_SINGLE_DOCUMENT = "expected a single document in the stream"


class YamlSerializer:
    """A :class:`~petiole.plugin_api.Serializer` writing YAML (see the module doc).

    ``use_libyaml``: ``None`` (the default) uses libyaml's parser and emitter when
    PyYAML has them; ``False`` the pure-Python ones; ``True`` requires libyaml.
    :attr:`implementation` says which is in use.
    """

    name = "yaml"
    content_type = "application/x-yaml"

    def __init__(self, *, use_libyaml: bool | None = None) -> None:
        available = CLoader is not None and CDumper is not None
        if use_libyaml and not available:
            raise ConfigError(
                "this PyYAML was built without libyaml: reinstall PyYAML with libyaml "
                "(its wheels include it), or let petiole-yaml use pure Python"
            )
        if available if use_libyaml is None else use_libyaml:
            self._loader: Any = CLoader
            self._dumper: Any = CDumper
            self.implementation = "libyaml"
        else:
            self._loader = PureLoader
            self._dumper = PureDumper
            self.implementation = "python"

    def __repr__(self) -> str:
        return f"YamlSerializer(implementation={self.implementation!r})"

    def dumps(self, value: Any) -> bytes:
        try:
            text: bytes = yaml.dump(
                value,
                Dumper=self._dumper,
                encoding="utf-8",
                allow_unicode=True,
                sort_keys=False,
            )
        except SerializationError:
            raise
        except RecursionError as exc:
            raise SerializationError(
                "cannot encode as YAML: nested too deeply (or a value contains itself)"
            ) from exc
        except (yaml.YAMLError, ValueError, TypeError) as exc:  # an int over Python's limit
            raise SerializationError(f"cannot encode as YAML: {_describe(exc)}") from exc
        return text

    def loads(self, data: bytes) -> Any:
        loader = None
        try:
            loader = self._loader(data)
            node = loader.get_single_node()
            if node is None:
                raise SerializationError("empty YAML body: the stream holds no document")
            return loader.construct_document(node)
        except SerializationError:
            raise
        except RecursionError as exc:
            raise SerializationError("malformed YAML body: nested too deeply") from exc
        except yaml.MarkedYAMLError as exc:
            if exc.context == _SINGLE_DOCUMENT:
                raise SerializationError(
                    "malformed YAML body: it holds more than one document "
                    "(multi-document streams are refused)"
                ) from exc
            raise SerializationError(f"malformed YAML body: {_describe(exc)}") from exc
        except Exception as exc:  # each constructor fails its own way (ValueError, ...)
            raise SerializationError(f"malformed YAML body: {_describe(exc)}") from exc
        finally:
            if loader is not None:
                loader.dispose()


def _describe(exc: BaseException) -> str:
    """One line: PyYAML's messages span several, with a snippet of the input."""
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = "; ".join(p for p in (exc.context, exc.problem) if p)
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{problem}{where}"
    if isinstance(exc, yaml.YAMLError):
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {exc}"

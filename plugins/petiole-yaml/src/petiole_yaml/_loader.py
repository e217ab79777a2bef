"""The loaders: PyYAML's safe loader, with the ``!petiole/...`` tags and guards.

They subclass ``yaml.SafeLoader`` and ``yaml.CSafeLoader`` (libyaml's parser,
when PyYAML was built with it) and register their constructors on those
subclasses only, never on PyYAML's global classes. On top of the safe loader,
which already constructs no Python objects from tags:

* **No aliases.** The second use of a node (``*name``) is refused, so an alias
  bomb ("billion laughs": anchors of aliases of anchors, each level multiplying
  the size) never becomes a structure to walk, and no self-containing value is
  built. The dumper never writes anchors, so nothing it writes is refused.
* **No merge keys** (``<<``): they exist to reuse anchors, and merging aliases
  doubles a mapping at each level before anything is built.
* **No tag without a constructor**, as the safe loader does, but with an error
  naming the tag; ``!!omap`` and ``!!pairs`` are refused too.
* **Mapping keys and set elements** are checked for shared hashes before the
  dict or set is built, by the core's ``check_hash_collisions`` (YAML integers
  have no size limit, so a producer could send thousands of distinct keys with
  one hash); sequences in those places are read as tuples.
* **Integers** are at most :data:`~petiole_yaml.tags.MAX_INT_CHARS` characters.

libyaml refuses nesting deeper than 1000 levels; the pure-Python parser stops at
Python's recursion limit. Either ends in an error the serializer translates.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node

from petiole.plugin_api import SerializationError, check_hash_collisions
from petiole_yaml import tags

_YAML_TAG = "tag:yaml.org,2002:"
_SET_TAGS = frozenset({f"{_YAML_TAG}set", tags.FROZENSET})  # sets are mappings to null


class _GuardedConstructor(SafeConstructor):
    """The safe constructor's guards (see the module doc); mixed into each loader."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise ConstructorError(
                None,
                None,
                "the node here is used again through an alias (*name): aliases are refused",
                node.start_mark,
            )
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
            # A constructor's own error (a bad date, UUID, !!bool): say where it was.
            raise ConstructorError(
                None,
                None,
                f"bad {short_tag(node.tag)} value: {type(exc).__name__}: {exc}",
                node.start_mark,
            ) from exc

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(
                None, None, f"expected a mapping, not a {node.id}", node.start_mark
            )
        self.flatten_mapping(node)
        keys = [self._key(key_node) for key_node, _ in node.value]
        try:  # before any value is built: a refused mapping costs only its keys
            check_hash_collisions(keys, "set elements" if node.tag in _SET_TAGS else "mapping keys")
        except SerializationError as exc:
            raise ConstructorError(None, None, str(exc), node.start_mark) from exc
        values = [self.construct_object(value_node, deep=deep) for _, value_node in node.value]
        return dict(zip(keys, values, strict=True))

    def flatten_mapping(self, node: MappingNode) -> None:
        """Refuse YAML's merge key instead of merging: ``<<: [*a, *a]`` doubles a
        mapping's entries at each level, before any value is built."""
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConstructorError(
                    None,
                    None,
                    "found a merge key (<<): merge keys are refused, as aliases are",
                    key_node.start_mark,
                )

    def _key(self, node: Node) -> Any:
        # Deep: a sequence key must be complete before it can become a tuple.
        key = self.construct_object(node, deep=True)
        if isinstance(key, list):
            key = _freeze(key)
        try:
            hash(key)
        except TypeError as exc:
            raise ConstructorError(
                None, None, f"a {type(key).__name__} cannot be a key: {exc}", node.start_mark
            ) from exc
        return key


def _refuse_tag(loader: Any, node: Node) -> NoReturn:
    """The constructor of every tag without one here (Python objects, ``!foo``)."""
    raise ConstructorError(
        None,
        None,
        f"refusing the tag {short_tag(node.tag)}: only plain YAML data and petiole-yaml's "
        "own tags are read, so no Python object is built from a message",
        node.start_mark,
    )


def short_tag(tag: str) -> str:
    """A tag as YAML documents are written: ``!!int``, ``!!python/name:os.system``."""
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _freeze(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_freeze(v) if isinstance(v, list) else v for v in value)


def _register(loader: type[SafeConstructor]) -> None:
    # add_constructor copies the class's table on first use: PyYAML's stay untouched.
    for tag, constructor in tags.CONSTRUCTORS.items():
        loader.add_constructor(tag, constructor)
    for refused in (*tags.REFUSED_SAFE_TAGS, None):  # None: every other tag
        loader.add_constructor(refused, _refuse_tag)


class PureLoader(_GuardedConstructor, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader, guarded."""


_register(PureLoader)

CLoader: type[SafeConstructor] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(_GuardedConstructor, yaml.CSafeLoader):
        """libyaml's parser with PyYAML's safe constructor, guarded."""

    _register(_CLoader)
    CLoader = _CLoader

"""Documents from a producer that is not to be trusted: whatever they hold,
loads returns plain data or raises SerializationError naming the problem,
constructs no Python object from a tag, and stays cheap in memory and time."""

from __future__ import annotations

import shlex
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from petiole_yaml.serializer import YamlSerializer
from petiole_yaml.tags import MAX_INT_CHARS

from petiole.plugin_api import MAX_HASH_COLLISIONS, SerializationError


def _refused(serializer: YamlSerializer, text: str | bytes, match: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(SerializationError, match=match):
        serializer.loads(data)


# -- tags that name Python objects -------------------------------------------------------


def _touch(path: Path) -> str:
    return f"!!python/object/apply:os.system [{shlex.quote(f'touch {shlex.quote(str(path))}')}]"


def test_the_python_tag_payload_creates_a_file_when_loaded_unsafely(tmp_path: Path) -> None:
    """The control: the payload of the next test is real."""
    target = tmp_path / "created"

    yaml.load(_touch(target), Loader=yaml.UnsafeLoader)  # the point of the test

    assert target.exists()


def test_a_python_object_apply_payload_is_refused_and_never_run(
    serializer: YamlSerializer, tmp_path: Path
) -> None:
    target = tmp_path / "created"

    _refused(serializer, _touch(target), r"refusing the tag !!python/object/apply:os\.system")
    _refused(serializer, f"task: [1, {_touch(target)}]", "python/object/apply:os.system")

    assert not target.exists()


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!!python/module:os ''", "!!python/module:os"),
        ("!!python/object/new:subprocess.Popen [[touch, x]]", "!!python/object/new:subprocess"),
        ("!!python/object:__main__.Thing {a: 1}", "!!python/object:__main__.Thing"),
        ("!!python/tuple [1, 2]", "!!python/tuple"),
        ("!custom value", "!custom"),
        ("!petiole/unknown value", "!petiole/unknown"),
        ("!<tag:example.com,2000:app/thing> value", "tag:example.com,2000:app/thing"),
        ("%TAG !p! tag:yaml.org,2002:python/\n---\n!p!name:os.system ''", "!!python/name"),
        ("!!omap [a: 1]", "!!omap"),
        ("!!pairs [a: 1]", "!!pairs"),
    ],
    ids=lambda v: v.split()[0][:30] if " " in v else v[:30],
)
def test_a_tag_without_a_constructor_here_is_refused_naming_it(
    serializer: YamlSerializer, text: str, tag: str
) -> None:
    _refused(serializer, text, f"refusing the tag {tag}")


# -- aliases, merges, repeated documents -------------------------------------------------

BILLION_LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_an_alias_bomb_is_refused_at_its_first_alias_cheaply(serializer: YamlSerializer) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        _refused(serializer, BILLION_LAUGHS, r"used again through an alias .* \(line 2, column 4\)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert time.monotonic() - started < 2
    assert peak < 2_000_000  # the expanded document would be 9**9 strings


@pytest.mark.parametrize(
    "text",
    ["a: &x 1\nb: *x", "&x [*x]", "&x {k: *x}", "[&x a, *x]", "? &k a\n: 1\n? *k\n: 2"],
    ids=["scalar", "self-containing-list", "self-containing-map", "in-a-list", "as-a-key"],
)
def test_any_alias_is_refused(serializer: YamlSerializer, text: str) -> None:
    _refused(serializer, text, "aliases are refused")


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {x: 1}\nderived: {<<: *b, y: 2}",
        "{<<: {x: 1}, y: 2}",
        "a: &a {k: v}\nb: &b {<<: [*a, *a]}\nc: {<<: [*b, *b]}",
    ],
    ids=["of-an-alias", "inline", "doubling"],
)
def test_merge_keys_are_refused(serializer: YamlSerializer, text: str) -> None:
    _refused(serializer, text, r"merge key \(<<\)")


def test_an_undefined_alias_is_refused(serializer: YamlSerializer) -> None:
    _refused(serializer, "a: *nowhere", "undefined alias")


@pytest.mark.parametrize(
    "text",
    ["a: 1\n---\nb: 2\n", "--- 1\n--- 2\n", "a: 1\n...\n---\nb: 2\n", "---\n---\n"],
    ids=["two-maps", "two-scalars", "explicit-ends", "two-empty"],
)
def test_a_stream_of_several_documents_is_refused(serializer: YamlSerializer, text: str) -> None:
    _refused(serializer, text, "more than one document")


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "   \n"], ids=["empty", "comment", "blank"]
)
def test_a_stream_with_no_document_is_refused(serializer: YamlSerializer, text: str) -> None:
    _refused(serializer, text, "no document")


# -- size and shape ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "{a: " * 50_000 + "1" + "}" * 50_000, "- " * 100_000 + "x"],
    ids=["flow-sequences", "flow-mappings", "block-sequences"],
)
def test_absurdly_nested_input_is_refused(serializer: YamlSerializer, text: str) -> None:
    _refused(serializer, text, "nest")


def test_an_integer_longer_than_the_limit_is_refused(serializer: YamlSerializer) -> None:
    assert serializer.loads(b"9" * MAX_INT_CHARS) == int("9" * MAX_INT_CHARS)

    _refused(serializer, "9" * (MAX_INT_CHARS + 1), f"at most {MAX_INT_CHARS}")


def test_a_long_base_60_integer_is_refused_before_it_costs_quadratic_time(
    serializer: YamlSerializer,
) -> None:
    # PyYAML reads 1:2:3 as ((1*60)+2)*60+3; 100,000 parts would take seconds.
    started = time.monotonic()

    _refused(serializer, "x: " + "1:" * 100_000 + "1", "integer of 200001 characters")

    assert time.monotonic() - started < 2


# Python hashes an int modulo this prime: these keys are distinct, with one hash.
_HASH_MODULUS = 2**61 - 1


def _colliding_ints(count: int) -> list[int]:
    return [5 + i * _HASH_MODULUS for i in range(count)]


def test_a_mapping_whose_keys_were_crafted_to_share_a_hash_is_refused_fast(
    serializer: YamlSerializer,
) -> None:
    keys = _colliding_ints(20_000)
    assert len({hash(k) for k in keys}) == 1
    text = "".join(f"{k}: 0\n" for k in keys)

    started = time.monotonic()
    _refused(serializer, text, "20000 mapping keys: 20000 of them share one hash")
    assert time.monotonic() - started < 10  # building the dict would take minutes


def test_a_set_whose_elements_share_a_hash_is_refused(serializer: YamlSerializer) -> None:
    members = ", ".join(map(str, _colliding_ints(MAX_HASH_COLLISIONS + 2)))

    _refused(serializer, f"!!set {{{members}}}", "share")


def test_a_few_keys_sharing_a_hash_are_accepted(serializer: YamlSerializer) -> None:
    keys = _colliding_ints(MAX_HASH_COLLISIONS + 1)

    assert serializer.loads("".join(f"{k}: 0\n" for k in keys).encode()) == dict.fromkeys(keys, 0)


# -- malformed values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("!petiole/uuid not-a-uuid", r"bad !petiole/uuid value: ValueError"),
        ("!petiole/decimal 1.2.3", r"bad !petiole/decimal value"),
        ("!petiole/time 25:00", r"bad !petiole/time value"),
        ("!petiole/datetime yesterday", r"bad !petiole/datetime value"),
        ("!petiole/timedelta 1e5", r"'1e5' is not seconds"),
        ("!petiole/timedelta 1" + "0" * 20, r"is not seconds"),
        ("!petiole/timedelta 999999999999999", r"bad !petiole/timedelta value: OverflowError"),
        ("!petiole/uuid [1, 2]", r"must be a scalar, not a sequence"),
        ("!petiole/frozenset [1, 2]", r"must be a mapping, not a sequence"),
        ("!!binary abc", r"failed to decode base64 data"),
        ("!!timestamp 2024-13-45", r"bad !!timestamp value: ValueError: month must be in"),
        ("!!timestamp yesterday", r"bad !!timestamp value: 'yesterday' is not a YAML timestamp"),
        ("!!timestamp [2024]", r"must be a scalar, not a sequence"),
        ("!!bool maybe", r"bad !!bool value: KeyError"),
        ("!!float fast", r"bad !!float value: ValueError"),
        ("? {a: 1}\n: x", r"a dict cannot be a key"),
        ("!!set {[1, {a: 1}]}", r"a tuple cannot be a key"),
        ("!!int 12abc", r"bad !!int value"),
    ],
    ids=lambda v: v[:28],
)
def test_a_bad_value_is_refused_naming_its_tag_and_place(
    serializer: YamlSerializer, text: str, match: str
) -> None:
    _refused(serializer, text, match)


@pytest.mark.parametrize(
    "data",
    [b"\x80abc", b"a: \xff\xfe", b"a: \x00", b"a: \x07bell"],
    ids=["not-utf8", "not-utf8-in-a-value", "nul", "control-character"],
)
def test_bytes_yaml_does_not_allow_are_refused(serializer: YamlSerializer, data: bytes) -> None:
    _refused(serializer, data, "malformed YAML body")


# -- writing -------------------------------------------------------------------------------


def test_a_value_that_contains_itself_cannot_be_written(serializer: YamlSerializer) -> None:
    value: list[Any] = [1]
    value.append(value)

    with pytest.raises(SerializationError, match="nested too deeply"):
        serializer.dumps(value)


def test_an_integer_python_will_not_print_cannot_be_written(serializer: YamlSerializer) -> None:
    with pytest.raises(SerializationError, match="cannot encode as YAML"):
        serializer.dumps(10**5000)


# -- anything at all -----------------------------------------------------------------------

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# The characters YAML gives meaning to, so that the fuzzer builds structure.
_YAML_ALPHABET = st.sampled_from(list("-?:,[]{}#&*!|>'\"%@` \n\t\\.0123456789abexyz<=~+_/"))
_SAMPLE = {"a": [1, "two", 3.5, None], "b": {"c": b"\x00", "d": {1, 2}}, 7: (1, 2)}


def _loads_or_serialization_error(serializer: YamlSerializer, data: bytes) -> None:
    try:
        value = serializer.loads(data)
    except SerializationError:
        return
    serializer.dumps(value)  # whatever it read is plain data it can write


@FUZZ
@given(st.binary(max_size=200) | st.text(_YAML_ALPHABET, max_size=200).map(str.encode))
def test_arbitrary_input_loads_or_raises_serialization_error(
    serializer: YamlSerializer, data: bytes
) -> None:
    _loads_or_serialization_error(serializer, data)


@FUZZ
@given(st.data())
def test_a_document_with_characters_changed_loads_or_raises_serialization_error(
    serializer: YamlSerializer, data: st.DataObject
) -> None:
    document = bytearray(serializer.dumps(_SAMPLE))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(document) - 1))
        document[index] = ord(data.draw(_YAML_ALPHABET))

    _loads_or_serialization_error(serializer, bytes(document))

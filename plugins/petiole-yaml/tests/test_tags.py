"""The YAML petiole-yaml writes for each type, as petiole_yaml.tags and the
README document it, and what it reads from YAML another program wrote."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from petiole_yaml import tags
from petiole_yaml.serializer import YamlSerializer

A_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

# (value, the YAML written for it): the table of the module doc, one example a row.
WRITTEN: list[tuple[str, Any, str]] = [
    ("bytes", b"\x00\xff", "!!binary |\n  AP8=\n"),
    ("date", dt.date(2024, 1, 31), "2024-01-31\n"),
    ("datetime-naive", dt.datetime(2024, 1, 31, 13, 14, 15, 16), "2024-01-31 13:14:15.000016\n"),
    (
        "datetime-aware",
        dt.datetime(2024, 1, 31, 13, 14, 15, tzinfo=IST),
        "2024-01-31 13:14:15+05:30\n",
    ),
    (
        "datetime-offset-with-seconds",
        dt.datetime(2024, 1, 31, tzinfo=dt.timezone(dt.timedelta(seconds=30))),
        "!petiole/datetime 2024-01-31T00:00:00+00:00:30\n",
    ),
    ("time", dt.time(13, 14, 15, 161718), "!petiole/time 13:14:15.161718\n"),
    ("time-aware", dt.time(13, 14, tzinfo=IST), "!petiole/time 13:14:00+05:30\n"),
    ("timedelta", dt.timedelta(days=1, microseconds=3), "!petiole/timedelta 86400.000003\n"),
    ("timedelta-negative", dt.timedelta(seconds=-90), "!petiole/timedelta -90\n"),
    ("uuid", A_UUID, f"!petiole/uuid {A_UUID}\n"),
    ("decimal", Decimal("-1.10"), "!petiole/decimal -1.10\n"),
    ("set", {1}, "!!set\n1: null\n"),
    ("frozenset", frozenset({"a"}), "!petiole/frozenset\na: null\n"),
    ("tuple", (1, "a"), "- 1\n- a\n"),
    ("int-key", {1: "a"}, "1: a\n"),
]


@pytest.mark.parametrize(("name", "value", "text"), WRITTEN, ids=[w[0] for w in WRITTEN])
def test_each_type_is_written_as_documented(
    serializer: YamlSerializer, name: str, value: Any, text: str
) -> None:
    # The emitters differ in quoting and in ending a lone scalar with "...": compare
    # the documents as the pure-Python parser reads them, tags and all.
    written = serializer.dumps(value).decode()

    assert _events(written) == _events(text)


def _events(text: str) -> list[tuple[str, Any, Any]]:
    return [
        (type(e).__name__, getattr(e, "tag", None), getattr(e, "value", None))
        for e in yaml.parse(text, Loader=yaml.SafeLoader)
        if not isinstance(e, (yaml.DocumentEndEvent, yaml.DocumentStartEvent))
    ]


def test_yaml_another_program_wrote_is_read_with_every_type(serializer: YamlSerializer) -> None:
    text = b"""
when: 2001-12-14t21:59:43.10-05:00
day: 2002-12-14
precise: !petiole/datetime 2024-01-31T00:00:00.000001+00:00:30
at: !petiole/time '13:14:15+05:30'
took: !petiole/timedelta 1.5
id: !petiole/uuid 12345678-1234-5678-1234-567812345678
price: !petiole/decimal "9.99"
raw: !!binary aGVsbG8=
tags: !!set {a, b}
frozen: !petiole/frozenset {1, 2}
7: int key
[1, 2]: tuple key
"""
    got = serializer.loads(text)

    assert got == {
        "when": dt.datetime(
            2001, 12, 14, 21, 59, 43, 100000, tzinfo=dt.timezone(-dt.timedelta(hours=5))
        ),
        "day": dt.date(2002, 12, 14),
        "precise": dt.datetime(
            2024, 1, 31, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30))
        ),
        "at": dt.time(13, 14, 15, tzinfo=IST),
        "took": dt.timedelta(seconds=1, microseconds=500000),
        "id": A_UUID,
        "price": Decimal("9.99"),
        "raw": b"hello",
        "tags": {"a", "b"},
        "frozen": frozenset({1, 2}),
        7: "int key",
        (1, 2): "tuple key",
    }
    assert got["when"].utcoffset() == -dt.timedelta(hours=5)
    assert type(got["frozen"]) is frozenset


def test_a_value_used_twice_is_written_twice_without_anchors(serializer: YamlSerializer) -> None:
    shared = {"k": [1, 2]}

    text = serializer.dumps([shared, shared])

    assert b"&" not in text
    assert b"*" not in text
    assert serializer.loads(text) == [shared, shared]


def test_the_tags_are_registered_on_petioles_classes_only() -> None:
    # Importing the plugin (done above) must not teach PyYAML's own classes anything.
    for loader in (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        with pytest.raises(yaml.constructor.ConstructorError, match="petiole/uuid"):
            yaml.load(f"!petiole/uuid {A_UUID}", Loader=loader)
    for dumper in (yaml.SafeDumper, getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
        with pytest.raises(yaml.representer.RepresenterError):
            yaml.dump(A_UUID, Dumper=dumper)
    assert "!petiole/uuid" not in yaml.SafeLoader.yaml_constructors
    assert uuid.UUID not in yaml.SafeDumper.yaml_representers


def test_the_pure_python_and_libyaml_emitters_write_documents_each_other_reads() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    libyaml, python = YamlSerializer(use_libyaml=True), YamlSerializer(use_libyaml=False)
    value = {"id": A_UUID, "at": dt.time(1, 2), (1, 2): {frozenset({3})}, "s": "a\nb: c"}

    assert python.loads(libyaml.dumps(value)) == value
    assert libyaml.loads(python.dumps(value)) == value


@pytest.mark.parametrize(
    "doc",
    [Path(tags.__file__), Path(__file__).parents[1] / "README.md"],
    ids=["module-doc", "readme"],
)
def test_the_documented_tables_name_every_tag(doc: Path) -> None:
    text = doc.read_text()

    for tag in (tags.DATETIME, tags.TIME, tags.TIMEDELTA, tags.UUID, tags.DECIMAL, tags.FROZENSET):
        assert f"{tag} " in text or f"{tag}``" in text or f"{tag}`" in text, tag

"""Every code block of README.md and docs/*.md runs as written, or says why not.

How blocks are annotated and run: tests/docsnippets.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # tests/ is no package (pytest runs with --import-mode=importlib)
    sys.path.insert(0, str(HERE))

import docsnippets  # noqa: E402

DOCS = [docsnippets.ROOT / "README.md", *sorted((docsnippets.ROOT / "docs").glob("*.md"))]
IDS = [docsnippets.display(doc) for doc in DOCS]


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_code_block_is_annotated(doc: Path) -> None:
    try:
        docsnippets.parse_doc(doc)
    except docsnippets.AnnotationError as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(problem, pytrace=False)  # outside the except: the message alone says it all


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_doc_runs_as_written(doc: Path, tmp_path: Path) -> None:
    try:
        docsnippets.run_doc(doc, tmp_path)
    except (docsnippets.AnnotationError, docsnippets.SnippetFailed) as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(problem, pytrace=False)


# -- the machinery itself ------------------------------------------------------------


def test_a_block_without_an_annotation_is_named_by_file_and_line(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("# Guide\n\n```python\nprint(1)\n```\n")
    with pytest.raises(docsnippets.AnnotationError, match=r"(?s)guide\.md:3: .*snippet: skip"):
        docsnippets.parse_doc(doc)


@pytest.mark.parametrize(
    ("comment", "stated"),
    [
        ("5", "5"),
        ("5, computed by the worker", "5"),
        ("(3, 300)", "(3, 300)"),
        ("'PENDING'", "'PENDING'"),
        ("returns at once", None),
        ("not before a minute from now", None),
    ],
)
def test_a_trailing_comment_states_a_value_when_it_starts_with_a_literal(
    comment: str, stated: str | None
) -> None:
    assert docsnippets.stated_value(comment) == stated


def test_a_value_other_than_the_stated_one_fails_with_the_docs_line(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("<!-- snippet: run -->\n```python\nx = 2\nprint(x)  # 3\n```\n")
    with pytest.raises(docsnippets.SnippetFailed) as failed:
        docsnippets.run_doc(doc, tmp_path / "work")
    assert "guide.md:4: the comment says 3, but the value is 2" in str(failed.value)
    assert "    4 | print(x)  # 3" in str(failed.value)

"""Regenerate the generated parts of docs/ from the code (run by `nox -s docs`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from petiole.celery_names import markdown_tables
from petiole.config import reference_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLE = re.compile(r"(<!-- settings-table:start[^>]*-->\n)(.*?)(<!-- settings-table:end -->)", re.S)
CELERY_NAMES = re.compile(
    r"(<!-- generated: celery-names -->\n)(.*?)(<!-- end generated -->)", re.S
)

#: Each generated part: the doc, the markers around it, and what goes between them.
PARTS: list[tuple[str, re.Pattern[str], Callable[[], str]]] = [
    ("configuration.md", TABLE, reference_table),
    ("migrating-from-celery.md", CELERY_NAMES, markdown_tables),
]


def fill(text: str, markers: re.Pattern[str], body: str) -> str:
    """``text`` with ``body`` between its ``markers`` (a function, so a backslash in
    ``body`` is not read as a group reference)."""
    return markers.sub(lambda m: m.group(1) + body + m.group(3), text)


def main() -> None:
    for name, markers, render in PARTS:
        path = DOCS / name
        text = path.read_text()
        if markers.search(text) is None:
            raise SystemExit(f"{path} lost the markers of its generated part")
        path.write_text(fill(text, markers, render()))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Docs that must match the code. (Their examples run in test_doc_snippets.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from petiole.config import reference_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLE = re.compile(r"(<!-- settings-table:start[^>]*-->\n)(.*?)(<!-- settings-table:end -->)", re.S)


def test_configuration_reference_lists_every_setting_as_the_code_defines_it() -> None:
    match = TABLE.search((DOCS / "configuration.md").read_text())
    assert match is not None, "docs/configuration.md lost its settings-table markers"
    assert match.group(2) == reference_table(), "stale settings table: run `nox -s docs`"

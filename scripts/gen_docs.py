"""Regenerate the generated parts of docs/ from the code (run by `nox -s docs`)."""

from __future__ import annotations

import re
from pathlib import Path

from petiole.config import reference_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLE = re.compile(r"(<!-- settings-table:start[^>]*-->\n)(.*?)(<!-- settings-table:end -->)", re.S)


def main() -> None:
    path = DOCS / "configuration.md"
    path.write_text(
        TABLE.sub(lambda m: m.group(1) + reference_table() + m.group(3), path.read_text())
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

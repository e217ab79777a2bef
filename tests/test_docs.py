"""Docs that must match the code."""

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


def test_canvas_guide_examples_run_as_written() -> None:
    """docs/canvas.md's examples, against a worker with the tasks it describes."""
    import doctest
    import uuid

    from petiole import Petiole
    from petiole.testing.in_thread import start_worker

    store = f"memory://{uuid.uuid4().hex}"
    app = Petiole("docs", broker=store, backend=store, config_file="/dev/null")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    with start_worker(app, concurrency=4):
        outcome = doctest.testfile(
            str(DOCS / "canvas.md"),
            module_relative=False,
            globs={"app": app, "add": add, "mul": mul, "tsum": tsum},
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            raise_on_error=False,
            verbose=False,
        )
    app.close()
    assert outcome.attempted > 20
    assert outcome.failed == 0, f"{outcome.failed} example(s) in docs/canvas.md failed (see above)"

"""Did you mean ...? The closest of the names a mistyped one may have meant.

``difflib`` is imported at the first mistake, not before: a worker at work never
loads it (``core/tests/test_import_graph.py`` keeps it so).
"""

from __future__ import annotations

from collections.abc import Iterable


def closest(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The one of ``choices`` most like ``name``, if one is at least ``cutoff`` alike
    (``difflib``'s ratio, 0 to 1); else None."""
    import difflib

    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``" (did you mean 'x'?)"`` for :func:`closest`'s answer, or ``""``."""
    close = closest(name, choices, cutoff=cutoff)
    return f" (did you mean {close!r}?)" if close else ""

"""Checks every plugin's own tests make of the plugin's code.

:func:`core_imports_beyond` lists the modules of the core a plugin's sources import
beyond what it may: a plugin imports the core through :mod:`petiole.plugin_api`
only (everything else in the core may change), and its tests may also drive an
app through ``petiole`` itself::

    def test_the_plugin_uses_only_the_plugin_api() -> None:
        assert core_imports_beyond(petiole_zstd) == {}
        assert core_imports_beyond(Path(__file__).parent, allowed=TESTS_MAY_IMPORT) == {}
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

PLUGINS_MAY_IMPORT = frozenset({"petiole.plugin_api"})
TESTS_MAY_IMPORT = frozenset({"petiole.plugin_api", "petiole"})


def petiole_imports(path: Path) -> set[str]:
    """The modules of the ``petiole`` package a Python file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "petiole"}


def core_imports_beyond(
    where: ModuleType | Path, *, allowed: frozenset[str] = PLUGINS_MAY_IMPORT
) -> dict[str, set[str]]:
    """Each file under ``where`` (a package, or a folder) that imports a module of
    the core not in ``allowed``, with those modules; empty when none does."""
    folder = Path(str(where.__file__)).parent if isinstance(where, ModuleType) else where
    sources = sorted(folder.rglob("*.py"))
    if not sources:
        raise AssertionError(f"no Python files under {folder}")
    beyond = {str(path): petiole_imports(path) - allowed for path in sources}
    return {path: modules for path, modules in beyond.items() if modules}

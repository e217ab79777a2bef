"""The core's import graph has no cycle, and nothing hides one.

Read with ``ast`` from the sources, so every import counts: those inside
functions and inside ``if TYPE_CHECKING:`` blocks too. ``import petiole.a.b``
and ``from petiole.a import b`` (``b`` a module) are edges to ``petiole.a.b``;
``from petiole.a import name`` (not a module) is an edge to ``petiole.a``. An
import also depends on the packages it runs on the way (``petiole.a`` for
``petiole.a.b``), except the importer's own enclosing packages, which Python
has already started importing (``from petiole import states`` inside
``petiole.app`` needs ``petiole.states``, not the whole of ``petiole``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import petiole

SOURCE = Path(petiole.__file__).parent
PACKAGE = "petiole"

#: Modules allowed an ``if TYPE_CHECKING:`` block, each with why (never to break a cycle:
#: its imports still count as edges of the graph).
TYPE_CHECKING_ALLOWED = {
    # Names re-exported lazily by a module ``__getattr__``: the testing helpers need
    # pytest (an optional dependency, ``petiole[testing]``), and plugins subclass
    # them, so mypy must see their types without importing them at run time.
    "petiole.plugin_api": "typed lazy re-exports of helpers that need pytest",
    # click appears only in a hook's return annotation; importing it for real would
    # cost each processes-pool child (which loads the hooks, never the CLI) ~4 MB.
    "petiole.hookspecs": "click, for an annotation only",
}


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    edges: dict[str, int] = field(default_factory=dict)  # target -> first line
    type_checking: list[int] = field(default_factory=list)
    function_imports: list[tuple[int, str]] = field(default_factory=list)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Reader(ast.NodeVisitor):
    def __init__(self, module: Module, known: set[str]) -> None:
        self.module = module
        self.known = known
        self.depth = 0  # inside a function
        parts = module.name.split(".")
        self.package = module.name if module.is_package else ".".join(parts[:-1])
        self.enclosing = {".".join(parts[:i]) for i in range(1, len(parts))}
        if module.is_package:
            self.enclosing.add(module.name)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast's spelling

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.module.type_checking.append(node.lineno)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._edge(alias.name, node.lineno, to_enclosing=False)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.known:
                self._edge(submodule, node.lineno, to_enclosing=False)
            else:
                self._edge(source, node.lineno, to_enclosing=True)

    def _edge(self, target: str, line: int, *, to_enclosing: bool) -> None:
        if target != PACKAGE and not target.startswith(PACKAGE + "."):
            return
        if self.depth:
            self.module.function_imports.append((line, target))
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step not in self.known or step == self.module.name:
                continue
            # The importer's own packages are already being imported, unless a name
            # defined in one is imported from it (which needs it fully imported).
            if step in self.enclosing and not (to_enclosing and step == target):
                continue
            self.module.edges.setdefault(step, line)


def read_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name, is_package = _module_name(path)
        modules[name] = Module(name, path, is_package)
    known = set(modules)
    for module in modules.values():
        _Reader(module, known).visit(ast.parse(module.path.read_text(), str(module.path)))
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in modules[name].edges:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(modules)))
    try:
        for name in modules:
            if name not in index:
                visit(name)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _describe(component: list[str], modules: dict[str, Module]) -> Iterator[str]:
    members = set(component)
    yield f"cycle of {len(component)} modules:"
    for name in component:
        inside = sorted(t for t in modules[name].edges if t in members)
        yield f"  {name} -> {', '.join(inside)}"


def test_the_core_has_no_import_cycle() -> None:
    modules = read_modules()
    found = cycles(modules)
    report = [line for component in found for line in _describe(component, modules)]
    assert not found, "\n".join(report)


def test_no_module_hides_imports_behind_type_checking() -> None:
    offenders = [
        f"{m.name}:{line}"
        for m in read_modules().values()
        if m.name not in TYPE_CHECKING_ALLOWED
        for line in m.type_checking
    ]
    assert not offenders, f"`if TYPE_CHECKING:` blocks: {', '.join(offenders)}"


def test_no_module_imports_petiole_inside_a_function() -> None:
    offenders = [
        f"{m.name}:{line} imports {target}"
        for m in read_modules().values()
        for line, target in m.function_imports
    ]
    assert not offenders, "imports inside functions:\n" + "\n".join(offenders)


def test_the_graph_reader_sees_every_kind_of_import() -> None:
    modules = read_modules()
    assert "petiole.errors" in modules["petiole.envelope"].edges  # from-import of a name
    assert "petiole.states" in modules["petiole.backend"].edges  # from-import of a module
    # The package run on the way to a submodule, unless it encloses the importer.
    assert {"petiole.cli", "petiole.cli.early"} <= set(modules["petiole.__main__"].edges)
    assert "petiole.canvas" not in modules["petiole.canvas.workflows"].edges


# Imports each module with no petiole module loaded before it (third-party ones
# stay, so it is one interpreter rather than one per module), as
# ``python -c "import petiole.<m>"`` would.
_IMPORT_EACH = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k == "petiole" or k.startswith("petiole.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc()
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own() -> None:
    names = sorted(read_modules())
    shares = max(1, min(4, os.cpu_count() or 1))  # each re-imports the package: ~0.1 s a module
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _IMPORT_EACH, json.dumps(names[i::shares])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(shares)
    ]
    failed: dict[str, str] = {}
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        failed.update(json.loads(out.strip().splitlines()[-1]))
    assert not failed, "\n".join(f"import {m} failed:\n{tb}" for m, tb in failed.items())


def test_an_app_with_its_plugins_loads_without_the_cli_or_asyncio() -> None:
    # What a processes-pool child does: load the app and its plugins, run tasks;
    # click (~4 MB) and asyncio (~4 MB, with ssl more) only when used.
    code = (
        "import sys, petiole\n"
        "app = petiole.Petiole('x', broker='memory://', backend='memory://')\n"
        "app.plugins\n"
        "unwanted = ('click', 'petiole.cli', 'asyncio')\n"
        "print(json.dumps(sorted(m for m in unwanted if m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(loaded) == []


def _loaded(code: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has loaded after running ``code``."""
    loaded = f"sorted(m for m in {watched!r} if m in sys.modules)"
    report = f"\nimport json, sys\nprint(json.dumps({loaded}))"
    out = subprocess.run(
        [sys.executable, "-c", code + report], capture_output=True, text=True, check=True
    ).stdout
    found: list[str] = json.loads(out.strip().splitlines()[-1])
    return found


def test_importing_petiole_reads_no_entry_points() -> None:
    # importlib.metadata, with the email and zipfile packages it loads, is ~2 MB: it
    # comes with the first app's plugins, not with the import.
    assert _loaded("import petiole", ("importlib.metadata", "email")) == []


def test_an_app_at_work_loads_no_module_only_errors_or_rare_values_need() -> None:
    # A worker process sends and receives the JSON types every task uses; difflib
    # (a misspelt name's suggestion), decimal (a Decimal value), tomllib (a config
    # file to parse), shlex (a missing plugin's install command) and ctypes (a soft
    # limit off the main thread) each load only when their moment comes.
    code = (
        "import datetime, os, petiole\n"
        "from petiole.serializers import JsonSerializer\n"
        "app = petiole.Petiole('x', broker='memory://', backend='memory://', "
        "config_file=os.devnull, eager=True)\n"
        "@app.task\n"
        "def echo(x):\n"
        "    return x\n"
        "value = {'when': datetime.datetime(2024, 1, 2), 'raw': b'x', 'tags': {1, 2}}\n"
        "assert echo.delay(value).get(timeout=10) == value\n"
        "assert JsonSerializer().loads(JsonSerializer().dumps(value)) == value\n"
    )
    unwanted = ("difflib", "decimal", "tomllib", "shlex", "ctypes")
    assert _loaded(code, unwanted) == []

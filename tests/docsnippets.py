"""Running the code blocks of README.md and docs/*.md the way a reader would.

Every fenced code block carries an annotation: an HTML comment on the line just
before its fence, invisible once rendered and readable in the source::

    <!-- snippet: file proj/tasks.py -->         write the block to that path
    <!-- snippet: file test_tasks.py check="pytest -q" -->
                                                 ... then run that command
    <!-- snippet: run -->                        run it with python, from the project dir
    <!-- snippet: run timeout=120 -->            ... giving up after 120 s (default 60)
    <!-- snippet: shell -->                      run each line with bash
    <!-- snippet: shell input=y -->              ... answering "y" to any prompt
    <!-- snippet: parse reason="..." -->         only check it parses (python, json, toml)
    <!-- snippet: skip reason="..." -->          not run, for the reason given

and a few annotations stand alone, as steps of their own::

    <!-- snippet: project from=getting-started.md -->
                                                 start from the files that doc writes
    <!-- snippet: worker -A proj.tasks -P threads -->
                                                 start `petiole worker ...` in the background
    <!-- snippet: stop -->                       stop the workers started so far
    <!-- snippet: doctest -->                    run the doc's `>>>` examples in one python

The blocks of one doc form a scenario, in order, in a fresh project directory,
with no PETIOLE_* variable set and the test environment's bin directory first on
PATH (so `python`, `petiole` and `pytest` are the ones under test), hence the
default SQLite broker `./petiole.db` shared by everything started there:

- A shell line `petiole worker ...` (also `petiole -A x worker`) starts a worker
  in the background, in its own process group, and waits for its ready line; the
  workers are stopped with SIGTERM at a `stop` annotation or at the end, and must
  exit with 0. Other lines run one at a time with bash (`set -a -o pipefail`);
  variables they set carry over to the next line and block, as in one terminal.
  `pip`, `nox`, `scripts/...` and the like are refused: their blocks are `skip`.
- In a `run` block, a top-level expression on one line whose trailing comment
  starts with a Python literal states its value, and is checked:
  `result.get(timeout=10)  # 5` fails unless the value is 5; for
  `print(x)  # 5, computed by the worker` it is the printed `x`.
- A `file` block whose first line names a file in a comment (`# proj/tasks.py`)
  must be written to that path.

The scenario stops at the first step that fails, with the doc's file and line,
the block, the command's output and the workers' logs (:class:`SnippetFailed`).
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NoReturn

if sys.version_info >= (3, 11):
    import tomllib
else:  # the core depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sysconfig.get_path("scripts"))  # not resolved: a venv's python is a symlink

BLOCK_KINDS = ("file", "run", "shell", "parse", "skip")
STEP_KINDS = ("project", "worker", "stop", "doctest")
GRAMMAR = """annotations, on the line before a fence:
  <!-- snippet: file PATH [check="COMMAND"] -->
  <!-- snippet: run [timeout=SECONDS] -->
  <!-- snippet: shell [input=ANSWER] -->
  <!-- snippet: parse reason="WHY IT IS NOT RUN" -->   (python, json, toml blocks)
  <!-- snippet: skip reason="WHY IT IS NOT RUN" -->
standing alone:
  <!-- snippet: project from=OTHER.md -->
  <!-- snippet: worker WORKER-ARGUMENTS -->
  <!-- snippet: stop -->
  <!-- snippet: doctest -->
(see tests/docsnippets.py)"""

ANNOTATION = re.compile(r"^\s*<!--\s*snippet:(?P<body>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DOCTEST_PROMPT = re.compile(r"^\s*>>> ", re.M)
NAMED_FILE = re.compile(r"^#\s*(?P<path>[\w./-]+\.(?:py|toml|cfg|ini|json|yaml|yml|txt))(?::|\s|$)")

RUN_TIMEOUT_S = 60.0
SHELL_TIMEOUT_S = 60.0
WORKER_READY_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 40.0  # past the default shutdown_timeout_s of 30 s
LOG_TAIL_LINES = 60
# Commands that would change the environment under test, or the machine: their blocks
# are marked `skip` with the reason, and a line of a `shell` block may not run them.
REFUSED = ("pip", "pip3", "nox", "sudo", "apt-get", "git")


class AnnotationError(Exception):
    """A doc's code block has no annotation, or one that does not parse."""


class SnippetFailed(Exception):
    """A step of a doc's scenario did not work; the message says where and why."""


@dataclass(frozen=True)
class Block:
    line: int  # the opening fence's line, 1-based
    info: str  # the info string's first word: "python", "toml", "" ...
    text: str  # the content, its list-item indentation removed

    def numbered(self) -> str:
        return "\n".join(
            f"{self.line + i:5} | {text}" for i, text in enumerate(self.text.splitlines(), 1)
        )


@dataclass(frozen=True)
class Step:
    doc: Path
    line: int  # the annotation's line
    kind: str
    args: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    block: Block | None = None

    @property
    def where(self) -> str:
        return f"{display(self.doc)}:{self.line}"

    @property
    def reason(self) -> str:
        return self.options.get("reason", "")


def display(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# -- reading the annotations ------------------------------------------------------


def parse_doc(doc: Path) -> list[Step]:
    """Every annotated step of ``doc``, in order; raises AnnotationError on the first
    code block that has no valid annotation."""
    lines = doc.read_text().splitlines()
    steps: list[Step] = []
    pending: tuple[int, str] | None = None  # an annotation waiting for the next line
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        fence = FENCE.match(line)
        if fence:
            end, block = _read_block(lines, i, fence)
            if pending is None or pending[0] != number - 1:
                raise _error(doc, number, "no snippet annotation on the line before this fence")
            steps.append(_step(doc, pending[0], pending[1], block))
            pending = None
            i = end + 1
            continue
        if pending is not None:  # it was not followed by a fence: a step of its own
            steps.append(_step(doc, pending[0], pending[1], None))
            pending = None
        annotation = ANNOTATION.match(line)
        if annotation:
            pending = (number, annotation.group("body"))
        i += 1
    if pending is not None:
        steps.append(_step(doc, pending[0], pending[1], None))
    has_examples = DOCTEST_PROMPT.search(_outside_fences(lines)) is not None
    if has_examples != any(step.kind == "doctest" for step in steps):
        raise _error(
            doc,
            1,
            "it has `>>>` examples but no `<!-- snippet: doctest -->`"
            if has_examples
            else "`<!-- snippet: doctest -->` but no `>>>` examples",
        )
    return steps


def _read_block(lines: list[str], start: int, fence: re.Match[str]) -> tuple[int, Block]:
    indent, marker = len(fence.group("indent")), fence.group("fence")
    closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
    end = start + 1
    while end < len(lines) and not closing.match(lines[end]):
        end += 1
    body = [text[indent:] if text[:indent].isspace() else text for text in lines[start + 1 : end]]
    info = fence.group("info").strip().split(maxsplit=1)
    return end, Block(line=start + 1, info=info[0] if info else "", text="\n".join(body) + "\n")


def _outside_fences(lines: list[str]) -> str:
    kept, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            i = _read_block(lines, i, fence)[0] + 1
            continue
        kept.append(lines[i])
        i += 1
    return "\n".join(kept)


def _error(doc: Path, line: int, problem: str) -> AnnotationError:
    return AnnotationError(f"{display(doc)}:{line}: {problem}\n{GRAMMAR}")


def _step(doc: Path, line: int, body: str, block: Block | None) -> Step:
    try:
        words = shlex.split(body)
    except ValueError as exc:
        raise _error(doc, line, f"the annotation does not parse: {exc}") from exc
    if not words:
        raise _error(doc, line, "an empty annotation")
    kind, rest = words[0], words[1:]
    if kind not in BLOCK_KINDS + STEP_KINDS:
        raise _error(doc, line, f"unknown annotation {kind!r}")
    if block is None and kind in BLOCK_KINDS:
        raise _error(doc, line, f"`{kind}` must be on the line just before a code block")
    if block is not None and kind in STEP_KINDS:
        raise _error(doc, line, f"`{kind}` stands alone; the code block after it needs its own")
    if kind == "worker":  # the rest is the worker's command line, as is
        return Step(doc, line, kind, args=tuple(rest))
    args = tuple(word for word in rest if "=" not in word)
    options = dict(word.split("=", 1) for word in rest if "=" in word)
    allowed = {
        "file": ({"check"}, 1),
        "run": ({"timeout"}, 0),
        "shell": ({"input"}, 0),
        "parse": ({"reason"}, 0),
        "skip": ({"reason"}, 0),
        "project": ({"from"}, 0),
        "stop": (set(), 0),
        "doctest": (set(), 0),
    }[kind]
    if set(options) - allowed[0] or len(args) != allowed[1]:
        raise _error(doc, line, f"wrong arguments for `{kind}`: {body.strip()!r}")
    step = Step(doc, line, kind, args=args, options=options, block=block)
    _check_step(step)
    return step


def _check_step(step: Step) -> None:
    doc, line, block = step.doc, step.line, step.block
    if step.kind in ("parse", "skip") and not step.reason.strip():
        raise _error(doc, line, f"`{step.kind}` needs a reason a reader can see is legitimate")
    if step.kind == "parse" and block is not None and block.info not in PARSERS:
        raise _error(doc, line, f"`parse` knows {sorted(PARSERS)}, not {block.info!r}")
    if step.kind == "project" and "from" not in step.options:
        raise _error(doc, line, "`project` needs from=OTHER.md")
    if step.kind == "run" and block is not None and block.info != "python":
        raise _error(doc, line, "`run` is for python blocks")
    if step.kind == "file" and block is not None:
        path = PurePosixPath(step.args[0])
        if path.is_absolute() or ".." in path.parts:
            raise _error(doc, line, f"{path} is not a path inside the project directory")
        named = NAMED_FILE.match(block.text)
        if named and named.group("path") != str(path):
            raise _error(doc, line, f"the block says it is {named.group('path')}, not {path}")


def _parse_python(text: str) -> None:
    ast.parse(text)


PARSERS = {"python": _parse_python, "json": json.loads, "toml": tomllib.loads}


# -- running a doc's scenario -----------------------------------------------------


def run_doc(doc: Path, workdir: Path) -> None:
    """Run ``doc``'s steps in a fresh project directory under ``workdir``."""
    Scenario(doc, workdir).run(parse_doc(doc))


@dataclass
class Worker:
    line: str
    where: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


class Scenario:
    def __init__(self, doc: Path, workdir: Path) -> None:
        self.doc = doc
        self.project = workdir / "project"
        self.logs = workdir / "logs"
        self.project.mkdir(parents=True)
        self.logs.mkdir()
        self.env = reader_environment()
        self.workers: list[Worker] = []
        self.step: Step | None = None

    def run(self, steps: list[Step]) -> None:
        try:
            for step in steps:
                self.step = step
                getattr(self, f"_{step.kind}")(step)
            self.step = None
            self.stop_workers()
        finally:
            self._kill_workers()

    # -- one method per kind; each raises SnippetFailed through fail() ------------

    def _file(self, step: Step) -> None:
        assert step.block is not None
        self.write(step.args[0], step.block.text)
        if "check" in step.options:
            self.shell_line(step.options["check"])

    def _run(self, step: Step) -> None:
        assert step.block is not None
        source = instrument(step.block.text, display(step.doc), step.block.line)
        source = "\n" * step.block.line + source  # so a traceback's line numbers are the doc's
        timeout_s = float(step.options.get("timeout", RUN_TIMEOUT_S))
        self.execute([str(BIN / "python"), "-c", source], what="python", timeout_s=timeout_s)

    def _shell(self, step: Step) -> None:
        assert step.block is not None
        for line in logical_lines(step.block.text):
            argv, _ = command_words(line)
            if argv[:1] == ["petiole"] and "worker" in argv[1:]:
                self.start_worker(line)
            else:
                self.shell_line(line, stdin=step.options.get("input"))

    def _parse(self, step: Step) -> None:
        assert step.block is not None
        try:
            PARSERS[step.block.info](step.block.text)
        except Exception as exc:
            self.fail(f"it does not parse as {step.block.info}: {exc}")

    def _skip(self, step: Step) -> None:
        pass

    def _project(self, step: Step) -> None:
        source = (step.doc.parent / step.options["from"]).resolve()
        if not source.is_file():
            self.fail(f"no such doc: {step.options['from']}")
        for other in parse_doc(source):
            if other.kind == "file" and other.block is not None:
                self.write(other.args[0], other.block.text)

    def _worker(self, step: Step) -> None:
        self.start_worker(shlex.join(["petiole", "worker", *step.args]))

    def _stop(self, step: Step) -> None:
        self.stop_workers()

    def _doctest(self, step: Step) -> None:
        runner = (
            "import doctest, sys\n"
            "flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE\n"
            "outcome = doctest.testfile(sys.argv[1], module_relative=False, optionflags=flags)\n"
            "print(f'{outcome.attempted} examples, {outcome.failed} failed')\n"
            "sys.exit(1 if outcome.failed or not outcome.attempted else 0)\n"
        )
        argv = [str(BIN / "python"), "-c", runner, str(step.doc)]
        self.execute(argv, what="doctest", timeout_s=RUN_TIMEOUT_S)

    # -- processes ----------------------------------------------------------------

    def write(self, relative: str, text: str) -> None:
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def shell_line(self, line: str, stdin: str | None = None) -> None:
        """One line with bash; the variables it leaves set carry over, as in one terminal.
        ``stdin`` is what the reader types at a prompt (nothing, by default)."""
        argv, _ = command_words(line)
        if argv[:1] and (argv[0] in REFUSED or argv[0].startswith("scripts/") or "pip" in argv):
            self.fail(f"`{line}` would change this environment; mark the block skip, with why")
        state = self.logs / "shell-environment"
        script = "\n".join(
            [
                "set -a -o pipefail",  # -a: what the line assigns is exported, so dumped below
                line,
                "__snippet_rc=$?",
                f"env -0 > {shlex.quote(str(state))}",
                "exit $__snippet_rc",
            ]
        )
        self.execute(
            ["bash", "-c", script],
            what=f"$ {line}",
            timeout_s=SHELL_TIMEOUT_S,
            stdin=None if stdin is None else f"{stdin}\n",
        )
        pairs = (item.split("=", 1) for item in state.read_text().split("\0") if "=" in item)
        self.env = {k: v for k, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD")}

    def execute(
        self, argv: list[str], *, what: str, timeout_s: float, stdin: str | None = None
    ) -> None:
        try:
            done = subprocess.run(
                argv,
                input=(stdin or "").encode(),
                cwd=self.project,
                env=self.env,
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            self.fail(f"{what}: still running after {timeout_s} s", exc.stdout, exc.stderr)
        if done.returncode != 0:
            self.fail(f"{what}: exited with {done.returncode}", done.stdout, done.stderr)

    def start_worker(self, line: str) -> None:
        """``petiole worker ...`` in the background; returns once it is ready."""
        argv, assignments = command_words(line)
        log = self.logs / f"worker{len(self.workers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=self.project,
                env={**self.env, **assignments},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a signal reaches its pool too
            )
        assert self.step is not None
        worker = Worker(line, self.step.where, process, log)
        self.workers.append(worker)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while " ready: " not in log.read_text(errors="replace"):
            if process.poll() is not None:
                self.fail(f"`{line}` exited with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                self.fail(f"`{line}` was not ready after {WORKER_READY_TIMEOUT_S} s")
            time.sleep(0.05)

    def stop_workers(self) -> None:
        """SIGTERM every running worker; each must stop in time, with status 0."""
        running = [w for w in self.workers if w.process.poll() is None]
        for worker in running:
            os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in running:
            try:
                worker.process.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.fail(f"`{worker.line}` did not stop within {WORKER_STOP_TIMEOUT_S} s")
        for worker in self.workers:
            if worker.process.returncode not in (0, None):
                self.fail(f"`{worker.line}` exited with {worker.process.returncode}")
        self.workers = [w for w in self.workers if w not in running]

    def _kill_workers(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait()

    # -- failing --------------------------------------------------------------------

    def fail(
        self, problem: str, stdout: bytes | None = None, stderr: bytes | None = None
    ) -> NoReturn:
        step = self.step
        parts = [f"{step.where if step else display(self.doc)}: {problem}"]
        if step is not None and step.block is not None:
            parts.append(f"the block ({step.kind}):\n{step.block.numbered()}")
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data:
                parts.append(f"{name}:\n{data.decode(errors='replace').rstrip()}")
        for worker in self.workers:
            parts.append(f"log of `{worker.line}` (started at {worker.where}):\n{worker.tail()}")
        raise SnippetFailed("\n\n".join(parts))


def reader_environment() -> dict[str, str]:
    """Ours, without PETIOLE_*, PYTEST_* or PYTHONPATH, and the environment under test first
    on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PETIOLE_", "PYTEST_")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def logical_lines(text: str) -> Iterator[str]:
    """A shell block's commands: continued lines joined, blank and comment lines left out."""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            yield line
    if pending.strip():
        yield pending


def command_words(line: str) -> tuple[list[str], dict[str, str]]:
    """A simple command's words, after its leading NAME=value assignments."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return [], {}
    assignments: dict[str, str] = {}
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    return words, assignments


# -- checking the values the comments state -----------------------------------------


def instrument(source: str, doc: str, fence_line: int) -> str:
    """``source`` (a block of ``doc`` after the fence on ``fence_line``), with each
    stated result checked, line for line.

    A top-level expression on one line whose trailing comment starts with a Python
    literal (``# 5``, ``# (3, 300)``, ``# 5, computed by the worker``) must have that
    value; for ``print(x)`` the value is ``x``, and it is still printed.
    """
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError):
        return source  # python itself will say what is wrong with it
    comments = {t.start[0]: t.string[1:].strip() for t in tokens if t.type == tokenize.COMMENT}
    lines = source.splitlines()
    for node in tree.body:
        if not isinstance(node, ast.Expr) or node.lineno != node.end_lineno:
            continue
        if node.lineno not in comments:
            continue
        comment = comments[node.lineno]
        expected = stated_value(comment)
        if expected is None:
            continue
        value, printed = node.value, False
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "print"
            and len(value.args) == 1
            and not value.keywords
        ):
            value, printed = value.args[0], True
        code = ast.get_source_segment(source, value)
        where = f"{doc}:{fence_line + node.lineno}"
        message = f"{where}: the comment says {expected}, but the value is "
        lines[node.lineno - 1] = (
            f"__snippet_value = ({code}); "
            + ("print(__snippet_value); " if printed else "")
            + f"assert __snippet_value == ({expected}), {message!r} + repr(__snippet_value)"
            + f"  # {comment}"
        )
    return "\n".join(lines) + "\n"


def stated_value(comment: str) -> str | None:
    """The longest run of the comment's first words that is a Python literal, if any."""
    words = comment.split()
    for count in range(len(words), 0, -1):
        candidate = " ".join(words[:count]).rstrip(",")
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return candidate
    return None

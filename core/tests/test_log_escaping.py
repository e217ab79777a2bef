"""Logged values cannot forge log lines: control characters in a record's arguments
are escaped by the filter petiole.logs installs, and only there."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from petiole import Petiole, Request
from petiole.logs import (
    FORMAT,
    EscapeControlCharacters,
    Verbatim,
    escape_control_characters,
    setup_logging,
)
from petiole.request import current_request

FORGED = "abc\n[2030-01-01 00:00:00,000 ERROR MainProcess] petiole.worker: forged"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler writes to a string, through the escaping filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(EscapeControlCharacters())
    logger = logging.getLogger("petiole.test_log_escaping")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_a_newline_in_an_argument_is_escaped_onto_one_line(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info("task %s[%s] succeeded", "add", FORGED)
    assert stream.getvalue().splitlines() == [
        "INFO task add[abc\\n[2030-01-01 00:00:00,000 ERROR MainProcess] "
        "petiole.worker: forged] succeeded"
    ]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a\rb", "a\\rb"),
        ("a\x1b[31mred", "a\\x1b[31mred"),
        ("a\tb", "a\\tb"),
        ("a\x00b\x7f", "a\\x00b\\x7f"),
        ("a\x85b\x9b", "a\\x85b\\x9b"),
        ("a\u2028b\u2029", "a\\u2028b\\u2029"),
        ("a\u202eb", "a\\u202eb"),
        ("back\\slash\n", "back\\\\slash\\n"),
        ("héllo wörld", "héllo wörld"),
    ],
)
def test_control_characters_are_written_as_escapes(raw: str, escaped: str) -> None:
    assert escape_control_characters(raw) == escaped


def test_the_format_string_is_not_escaped(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.error("first line\nsecond line %s", "x\ny")
    assert stream.getvalue().splitlines() == ["ERROR first line", "second line x\\ny"]


def test_verbatim_arguments_keep_their_line_breaks(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    traceback = Verbatim("Traceback (most recent call last):\n  File 'x'\nValueError: boom")
    logger.error("task %s[%s] failed\n%s", "t", "id\nforged", traceback)
    assert stream.getvalue().splitlines() == [
        "ERROR task t[id\\nforged] failed",
        "Traceback (most recent call last):",
        "  File 'x'",
        "ValueError: boom",
    ]


def test_exception_arguments_are_escaped_for_str_and_repr(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    exc = KeyError("line\nforged")
    logger.error("failed: %s / %r", ValueError("a\nb"), exc)
    assert stream.getvalue().splitlines() == ["ERROR failed: a\\nb / KeyError('line\\nforged')"]


def test_mapping_arguments_are_escaped(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info("queue %(queue)s", {"queue": "q\nforged"})
    assert stream.getvalue().splitlines() == ["INFO queue q\\nforged"]


def test_the_traceback_of_exc_info_keeps_its_lines(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed %s", "id\nforged")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ERROR failed id\\nforged"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_printable_arguments_leave_the_record_untouched() -> None:
    record = logging.LogRecord("petiole", logging.INFO, __file__, 1, "%s %d", ("ok", 3), None)
    args = record.args
    assert EscapeControlCharacters().filter(record)
    assert record.args is args


def test_escaped_exception_arguments_survive_pickling() -> None:
    record = logging.LogRecord("p", logging.INFO, __file__, 1, "%r", (ValueError("a\nb"),), None)
    EscapeControlCharacters().filter(record)
    assert isinstance(record.args, tuple)
    copy = pickle.loads(pickle.dumps(record.args[0]))
    assert repr(copy) == repr(record.args[0]) == "ValueError('a\\nb')"
    assert str(copy) == "a\\nb"


@contextlib.contextmanager
def on_the_root(log_format: str) -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """A handler on the root logger writing to a string in ``log_format``; the root's
    handlers and level as they were afterwards."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(log_format))
    saved_level = root.level
    root.addHandler(handler)
    try:
        yield handler, stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)


def test_setup_logging_installs_the_filter_on_the_root_handlers_once() -> None:
    with on_the_root(FORMAT) as (handler, _):
        setup_logging("INFO")
        setup_logging("INFO")
        escaping = [f for f in handler.filters if isinstance(f, EscapeControlCharacters)]
        assert len(escaping) == 1


def test_lines_logged_in_a_running_task_name_it_unless_petiole_logs_them() -> None:
    with on_the_root("%(name)s%(running_task)s: %(message)s") as (_, stream):
        setup_logging("INFO")
        logging.getLogger("proj.tasks").info("outside")
        token = current_request.set(Request(id="id-1", task="proj.add"))
        try:
            logging.getLogger("proj.tasks").info("inside")
            logging.getLogger("petiole.worker").info("own line")
            logging.getLogger("petiole_redis.x").info("a plugin's")
        finally:
            current_request.reset(token)
    assert stream.getvalue().splitlines() == [
        "proj.tasks: outside",
        "proj.tasks proj.add[id-1]: inside",
        "petiole.worker: own line",
        "petiole_redis.x: a plugin's",
    ]


def test_user_code_logging_under_petiole_is_escaped_by_the_root_handler() -> None:
    with on_the_root("%(message)s") as (_, stream):
        setup_logging("INFO")
        logging.getLogger("petiole.task.user_code").warning("got %s", FORGED)
    assert len(stream.getvalue().splitlines()) == 1


# -- a real worker ------------------------------------------------------------------------

_TASKS = """
import logging

from petiole import Petiole

app = Petiole("logesc")


@app.task(name="logesc.echo")
def echo(value):
    logging.getLogger("logesc").warning("echoing %s", value)
    return value
"""


def test_a_worker_logs_a_task_id_with_a_line_break_as_one_line(tmp_path: Path) -> None:
    """The worker process (and its processes-pool child, which logs the task)
    escape the id of a message anyone could have written, in its own lines and
    in the tag naming the running task on a line the task's code logs."""
    (tmp_path / "logesc_tasks.py").write_text(_TASKS)
    url = f"sqlite:///{tmp_path / 'petiole.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
    env.update(PETIOLE_BROKER_URL=url, PETIOLE_BACKEND_URL=url, PYTHONPATH=str(tmp_path))
    producer = Petiole("producer", broker=url, backend=url, config_file="/dev/null")
    producer.send_task("logesc.echo", args=[1], task_id=FORGED)
    producer.close()
    worker = subprocess.Popen(
        [sys.executable, "-m", "petiole", "worker", "-A", "logesc_tasks", "-c", "1", "-l", "DEBUG"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in worker.stdout or ()])
    reader.start()
    seen: list[str] = []
    try:
        while not any(" succeeded in " in line for line in seen):
            seen.append(lines.get(timeout=60))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        reader.join(timeout=60)
    while not lines.empty():
        seen.append(lines.get())
    [done] = [line for line in seen if " succeeded in " in line]
    assert "logesc.echo[abc\\n[2030-01-01 00:00:00,000 ERROR MainProcess] petiole.worker" in done
    [own] = [line for line in seen if line.rstrip().endswith(": echoing 1")]
    assert "] logesc logesc.echo[abc\\n[2030-01-01 " in own
    assert own.rstrip().endswith("petiole.worker: forged]: echoing 1")
    assert not [line for line in seen if line.startswith("[2030-01-01")], "".join(seen)

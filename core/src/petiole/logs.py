"""One log format for the CLI, the worker and its pool children, and the filter
that keeps a logged value from forging log lines.

Task ids, task names, queue names and exception messages come from messages
anyone with access to the broker can write. :class:`EscapeControlCharacters`
escapes control characters in the *arguments* of a record (``%s`` values,
never the format string), so a task id holding ``"\\n[... ERROR ...] forged"``
is logged as one line with a visible ``\\n`` in it. Text Petiole composes
itself and means to span lines (a failed task's traceback) is passed as
:class:`Verbatim` and left as it is, as is the traceback of ``exc_info``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from petiole.request import current_request

#: The CLI's and the worker's format. ``running_task`` (set by :class:`NameRunningTask`)
#: is `` name[id]`` of the task a record was logged from, if any and not by Petiole.
FORMAT = "[%(asctime)s %(levelname)s %(processName)s] %(name)s%(running_task)s: %(message)s"

# C0 controls, DEL, C1 controls, the Unicode line and paragraph separators and
# the bidirectional overrides (which reorder what a terminal shows).
_CONTROL = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
_CONTROL += [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES: dict[int, str] = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROL
}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"})


class Verbatim(str):
    """A string :class:`EscapeControlCharacters` logs as it is, line breaks and all.

    Only for text Petiole composes itself, such as a formatted traceback; a
    value that came from a message (an id, a name) must never be wrapped in it.
    """

    __slots__ = ()


class _Escaped(str):
    """An exception argument, escaped: ``%s`` shows its escaped text, ``%r`` its
    escaped ``repr``, as the exception itself would."""

    representation: str

    def __new__(cls, text: str, representation: str = "") -> _Escaped:
        escaped = super().__new__(cls, text)
        escaped.representation = representation
        return escaped

    def __repr__(self) -> str:
        return self.representation


def escape_control_characters(text: str) -> str:
    """``text`` with each control character written as its escape (``\\n``,
    ``\\x1b``, ``\\u2028``) and backslashes doubled, so the result is one line
    that reads back unambiguously; text with none is returned as it is."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class EscapeControlCharacters(logging.Filter):
    """Escapes control characters in the ``%``-arguments of every record it sees.

    Add it to a *handler* (a logger's filters do not apply to records of its
    child loggers): :func:`setup_logging` adds it to the root logger's handlers;
    an application that configures logging itself adds it to its own, e.g. with
    ``logging.config.dictConfig``::

        "filters": {"escape": {"()": "petiole.logs.EscapeControlCharacters"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["escape"]}},

    String arguments (but not :class:`Verbatim` ones) and exceptions are
    escaped; the format string, numbers and other objects are left alone, and
    so is the traceback of ``exc_info``. A record whose arguments are all
    printable is left untouched: the cost is one ``str.isprintable`` per string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            if _any_unprintable(args):
                record.args = tuple(map(_escaped, args))
        elif isinstance(args, Mapping) and _any_unprintable(args.values()):
            record.args = {key: _escaped(value) for key, value in args.items()}
        return True


def _any_unprintable(values: Iterable[Any]) -> bool:
    for value in values:
        if type(value) is str:  # the common case, checked inline: this runs per record
            if not value.isprintable():
                return True
        elif isinstance(value, (str, BaseException)) and _unprintable(value):
            return True
    return False


def _unprintable(value: Any) -> bool:
    if isinstance(value, str):
        return not isinstance(value, Verbatim) and not value.isprintable()
    if isinstance(value, BaseException):
        return not _text(value).isprintable()
    return False


def _escaped(value: Any) -> Any:
    if not _unprintable(value):
        return value
    if isinstance(value, str):
        return escape_control_characters(value)
    return _Escaped(escape_control_characters(_text(value)), _escaped_repr(value))


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__: logging shows its own error for it
        return ""


def _escaped_repr(exc: BaseException) -> str:
    try:
        return escape_control_characters(repr(exc))
    except Exception:
        return f"<{type(exc).__name__}>"


def install_escaping(handlers: list[logging.Handler]) -> None:
    """Add one :class:`EscapeControlCharacters` to each handler that has none."""
    _install(handlers, EscapeControlCharacters)


def _install(handlers: list[logging.Handler], kind: type[logging.Filter]) -> None:
    for handler in handlers:
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())


# Loggers of Petiole and its plugins: their lines name the task they are about.
_OWN_LOGGERS = ("petiole.", "petiole_")


class NameRunningTask(logging.Filter):
    """Sets ``record.running_task`` to `` name[id]`` of the task running in the
    thread that logged it (control characters escaped: both come from the
    message), or to ``""``: a line a task's code (or a library it calls) logs in
    the worker says which task it came from, as Celery's worker format does.
    Records of Petiole's own loggers get ``""``: their lines name what they are
    about themselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.running_task = _running_task(record.name)
        return True


def _running_task(logger_name: str) -> str:
    if logger_name.startswith(_OWN_LOGGERS) or logger_name == "petiole":
        return ""
    running = _task_running_here()
    return "" if running is None else f" {running[0]}[{running[1]}]"


def _task_running_here() -> tuple[str, str] | None:
    """(name, id) of the task running in this thread, control characters escaped
    (both come from its message); None outside a task."""
    request = current_request.get()
    if request is None or not request.id:
        return None
    return escape_control_characters(request.task), escape_control_characters(request.id)


#: The logger of the worker's lines about each task: received, succeeded, will
#: retry, not run (its failures too, at ERROR). A child of ``petiole.worker``, so
#: configuring that one configures it.
TASK_LOGGER = "petiole.worker.tasks"

#: The level with no ``log_level`` set and no ``--loglevel`` given.
DEFAULT_LEVEL = "INFO"


def log_task_lines(on: bool) -> None:
    """Whether the worker logs a line per task received and finished (INFO).

    Off (with no level chosen), only the task logger's warnings and errors pass:
    at thousands of tasks a second two lines per task are a flood nobody reads
    and a quarter of the worker's time (benchmarks/README.md, "Where the time
    goes"). Failures are still logged, with their tracebacks.
    """
    logging.getLogger(TASK_LOGGER).setLevel(logging.NOTSET if on else logging.WARNING)


def setup_logging(level: str | int) -> None:
    """Log to stderr in :data:`FORMAT` at ``level``, every handler of the root
    logger escaping control characters in logged values (so records of any
    logger, a task's own included, cannot forge lines) and naming the running
    task (:class:`NameRunningTask`)."""
    logging.basicConfig(format=FORMAT)
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    install_escaping(root.handlers)
    _install(root.handlers, NameRunningTask)


#: ``task_name`` and ``task_id`` of a record logged outside a running task.
NO_TASK = "???"


class TaskLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger for a module of tasks: each record carries the running task's
    ``task_name`` and ``task_id`` (:data:`NO_TASK` outside a task), control
    characters escaped (both come from messages), for a format that shows them::

        logging.basicConfig(format="%(levelname)s %(task_name)s[%(task_id)s]: %(message)s")
    """

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        name, task_id = _task_running_here() or (NO_TASK, NO_TASK)
        extra = {"task_name": name, "task_id": task_id}
        kwargs["extra"] = {**extra, **(kwargs.get("extra") or {})}
        return msg, kwargs


def get_task_logger(name: str) -> TaskLoggerAdapter:
    """The logger ``name`` (``__name__`` of a tasks module), its records naming the
    running task (Celery's ``celery.utils.log.get_task_logger``). An ordinary
    logger under it: configured, and leveled, as any logger of the application."""
    return TaskLoggerAdapter(logging.getLogger(name), {})

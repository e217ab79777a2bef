"""Settings: one typed, frozen object, built once from every source and validated.

Sources, lowest precedence first (each later one overrides the earlier):

1. defaults (the ``Settings`` fields below), and over them Celery's
   ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` environment variables;
2. a config file: the path in ``--config`` / ``PETIOLE_CONFIG`` if given, else
   ``petiole.toml`` in the current directory, else the ``[tool.petiole]`` table
   of ``pyproject.toml`` in the current directory;
3. environment variables ``PETIOLE_<KEY>`` (``PETIOLE_BROKER_URL``, ...);
4. keyword arguments to ``Petiole(...)`` (and ``app.config_from_object(...)``,
   read by :func:`values_from_object`).

Every source may use Celery's names: an alias is translated, any other Celery
name refused with the Petiole spelling (:mod:`petiole.celery_names`). An unknown
key or a wrong type is a :class:`~petiole.errors.ConfigError` that names the
key, where it came from, and the closest valid key. A refused value
is shown masked by :func:`petiole.urls.mask_value` (credentials in URLs, tables
and free text become ``***``), whichever source it came from.
"""

from __future__ import annotations
import __future__

import importlib
import json
import os
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from petiole import celery_names
from petiole.celery_names import CelerySpellingError
from petiole.errors import ConfigError, SettingTypeError, UnknownSettingError
from petiole.suggestions import closest
from petiole.urls import mask_value

ENV_PREFIX = "PETIOLE_"
CONFIG_ENV = "PETIOLE_CONFIG"
#: The variables Celery reads its broker and result store from, read as Petiole's
#: settings below every Petiole source (a Celery deployment keeps its environment).
CELERY_ENV = {"CELERY_BROKER_URL": "broker_url", "CELERY_RESULT_BACKEND": "backend_url"}
# Environment variables under these prefixes belong to tools around Petiole
# (its own test suite, the command line's patched re-exec), not to the settings.
ENV_RESERVED_PREFIXES = ("PETIOLE_TEST_", "PETIOLE_CONFIG", "PETIOLE_APP", "PETIOLE_PATCHED_")


def _setting(default: Any, doc: str, *, example: str | None = None, secret: bool = False) -> Any:
    metadata = {"doc": doc, "example": example}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    # A secret stays out of the settings' repr (logs, tracebacks, debuggers).
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every setting, its type and default. docs/configuration.md is checked against this."""

    app: str | None = _setting(
        None,
        "The app the command line uses when `-A` is not given (`module` or "
        "`module:attribute`); only read from a config file or `PETIOLE_APP`.",
        example='"proj.tasks:app"',
    )
    broker_url: str = _setting(
        "sqlite://",
        "Where tasks are sent. The URL scheme selects the transport plugin. "
        "The default is an SQLite file `petiole.db` in the current directory.",
        example='"redis://localhost:6379/0"',
    )
    backend_url: str = _setting(
        "sqlite://",
        "Where results are stored. The URL scheme selects the result backend plugin. "
        "`rpc://` alone (petiole-amqp) sends each result back to the task's sender "
        "through the broker's RabbitMQ, storing nothing.",
        example='"sqlite:////var/lib/app/results.db"',
    )
    coordination_url: str | None = _setting(
        None,
        "The store chords, `revoke` and leader election coordinate through. "
        "Unset, the result backend is used, if it can coordinate; a backend that "
        "only delivers results (`rpc://`) needs this. The URL scheme selects a "
        "result backend plugin.",
        example='"redis://localhost:6379/1"',
    )
    coordination_options: dict[str, Any] = _setting(
        {},
        "Options passed to the coordination store named by `coordination_url`.",
        example="{}",
    )
    broker_options: dict[str, Any] = _setting(
        {},
        "Options passed to the transport (see its plugin's README).",
        example="{ poll_interval_ms = 50 }",
    )
    backend_options: dict[str, Any] = _setting(
        {}, "Options passed to the result backend (see its plugin's README).", example="{}"
    )
    default_queue: str = _setting("default", "Queue of tasks that name none.", example='"default"')
    task_serializer: str = _setting(
        "json", "Serializer for task arguments (a name from `petiole plugins`).", example='"json"'
    )
    result_serializer: str = _setting("json", "Serializer for results.", example='"json"')
    accept_content: list[str] = _setting(
        ["json"],
        "Serializers (by name) a worker will deserialize. Anything else is dead-lettered "
        "unread. Add `pickle` only when every producer is trusted.",
        example='["json", "pickle"]',
    )
    result_accept_content: list[str] | None = _setting(
        None,
        "Serializers (by name) a client will deserialize results with (`.get()`, `.result`, "
        "`petiole result`). Unset, it is `accept_content`: a result store anyone else can "
        "write to is as untrusted as a broker.",
        example='["json"]',
    )
    compression: str | None = _setting(
        None,
        "Codec that compresses task bodies (a name from `petiole plugins`: `zlib`, `bzip2`, "
        "`lzma`, or a plugin's, such as `zstd` from petiole-zstd); recorded as the message's "
        "`content_encoding`. Unset, bodies are sent as serialized.",
        example='"zlib"',
    )
    compression_min_bytes: int = _setting(
        1024,
        "Bodies shorter than this are sent uncompressed even when `compression` is set.",
        example="4096",
    )
    max_body_bytes: int = _setting(
        64 * 1024 * 1024,
        "Largest body a worker decodes: a compressed body that would inflate past it "
        "(a decompression bomb) is dead-lettered, refused while inflating.",
        example="16777216",
    )
    signer: str | None = _setting(
        None,
        "Signer that signs every message sent (framing v2) and verifies every signed "
        "message received: `hmac-sha256` (with `signing_key`), or a plugin's.",
        example='"hmac-sha256"',
    )
    signing_key: str | None = _setting(
        None,
        "Secret key of the `hmac-sha256` signer, the same on every producer and worker "
        "(at least 32 bytes). Shown masked.",
        example='"<32 or more random characters>"',
        secret=True,
    )
    signer_options: dict[str, Any] = _setting(
        {},
        "Options of a plugin's signer (keys, certificates, trust store): petiole-auth's "
        "`ed25519` and `x509`, say; see its README. Secret-named entries are shown masked.",
        example='{ private_key = "/etc/petiole/worker.key" }',
    )
    require_signature: bool = _setting(
        False,
        "A worker dead-letters, unread, every message that is unsigned or whose signature "
        "it cannot verify. Set it once every producer signs.",
        example="true",
    )
    sign_results: bool = _setting(
        False,
        "Every result record stored is signed by the `signer` (workers; clients that revoke "
        "tasks), and every record a client reads is verified before its value is "
        "deserialized: an unsigned or forged result raises SignatureError. Set it on "
        "workers and clients alike.",
        example="true",
    )
    result_ttl_s: float = _setting(
        86400.0, "Seconds results are kept; 0 keeps them forever.", example="3600"
    )
    ignore_result: bool = _setting(
        False,
        "Do not store results of tasks (per task: `@app.task(ignore_result=True)`).",
        example="true",
    )
    track_started: bool = _setting(
        False,
        "Store the STARTED state when a task begins (one more backend write per task).",
        example="true",
    )
    lease_s: float = _setting(
        30.0,
        "How long a reserved message stays invisible to other workers. Workers renew "
        "leases of tasks they hold every third of this, so only a dead worker's tasks "
        "come back, after at most this long.",
        example="10",
    )
    max_deliveries: int = _setting(
        10,
        "A message delivered more times than this (it keeps killing its worker) goes to "
        "the dead-letter store instead of running again.",
        example="5",
    )
    worker_concurrency: int = _setting(
        0, "Tasks a worker runs at once; 0 means the number of CPUs.", example="8"
    )
    worker_processes: int = _setting(
        0,
        "Worker processes `petiole worker` starts under a supervisor, each reserving and "
        "running its own tasks with its own pool (`--workers`); the supervisor forks them "
        "after loading the app and replaces any that dies. 0: the `petiole worker` "
        "process is the worker.",
        example="2",
    )
    worker_pool: str = _setting(
        "prefork",
        "Pool that runs tasks: `prefork` (`petiole worker` runs `worker_concurrency` "
        "worker processes, each running its own tasks one at a time; embedded in a "
        "program, the processes pool), `processes`, `threads`, `solo`, `asyncio`, or a "
        "plugin's.",
        example='"threads"',
    )
    imports: list[str] = _setting(
        [],
        "Modules a worker imports as it starts, so the tasks they define are registered: "
        "for tasks the app module does not import itself. A module that fails to import "
        "stops the worker, naming it.",
        example='["proj.tasks", "proj.mail.tasks"]',
    )
    include: list[str] = _setting(
        [],
        "More modules a worker imports as it starts, after `imports` (as Celery's "
        "`include`, often given to the app's constructor while a config module sets "
        "`imports`: both are imported).",
        example='["proj.tasks"]',
    )
    worker_queues: list[str] = _setting(
        [], "Queues a worker consumes; empty means `default_queue`.", example='["default", "mail"]'
    )
    reserve_wait_s: float = _setting(
        1.0,
        "How long a worker's request for messages may wait on the broker when queues are "
        "empty. Longer means fewer empty requests (each one costs money on SQS) but a "
        "slower exit on SIGTERM.",
        example="20",
    )
    prefetch_multiplier: int = _setting(
        4,
        "A worker holds at most concurrency x this many messages (when above 1, each "
        "prefork worker process 4 x this, the processes pool concurrency x 4 x this: "
        "four places per executor). 1 for long tasks: nothing waits behind a running "
        "task.",
        example="1",
    )
    ack_batch_size: int = _setting(
        64,
        "A worker acknowledges finished tasks' messages in batches of up to this many, in "
        "one request, on brokers that can (ack_many: Redis, SQLite, SQS); other brokers, "
        "or 1, acknowledge each at once from the task's thread.",
        example="1",
    )
    ack_batch_window_s: float = _setting(
        0.005,
        "How long a finished task's acknowledgement may wait for others to share its "
        "request; where acks ride on the worker's reserves (Redis, SQLite), up to twice this for "
        "a reserve to carry them. Its message stays leased meanwhile: a worker killed in "
        "this window has those tasks delivered again, as a crash just before a single ack "
        "would.",
        example="0.02",
    )
    shutdown_timeout_s: float = _setting(
        30.0,
        "On SIGTERM, how long running tasks may take to finish before they are "
        "returned to the queue and the worker exits.",
        example="60",
    )
    soft_time_limit_s: float | None = _setting(
        None,
        "Seconds after which SoftTimeLimitExceeded is raised inside a task (per task: "
        "`@app.task(soft_time_limit_s=...)`; per call: `apply_async(soft_time_limit_s=...)`).",
        example="60",
    )
    time_limit_s: float | None = _setting(
        None,
        "Seconds after which a task's process is killed and the task fails with "
        "TimeLimitExceeded (processes pool; per task and per call as above).",
        example="120",
    )
    dead_letter_on_failure: bool = _setting(
        False,
        "Also put a task's message in the dead-letter store when it fails for good, so it "
        "can be requeued once fixed.",
        example="true",
    )
    reject_on_worker_lost: bool = _setting(
        True,
        "When the process running a task dies (signal, OOM kill), return the message to "
        "the queue (true) or mark the task FAILURE with WorkerLostError (false).",
        example="false",
    )
    max_tasks_per_child: int = _setting(
        0, "Replace a processes-pool child after this many tasks; 0 = never.", example="1000"
    )
    max_memory_per_child_mb: float = _setting(
        0.0,
        "Replace a processes-pool child after a task leaves it using more than this "
        "resident memory; 0 = never.",
        example="512",
    )
    eager: bool = _setting(
        False, "Run tasks in the caller's process at `delay()` (for unit tests).", example="true"
    )
    eager_propagates: bool = _setting(
        False,
        "In eager mode (and `task.apply()`), raise a failing task's exception at the call; "
        "false (as Celery's default) returns a FAILURE result whose `get()` raises it.",
        example="true",
    )
    acks_late: bool = _setting(
        True,
        "Acknowledge a task's message after the task ran: at least once, a task whose "
        "worker dies runs again. False acknowledges just before it starts (Celery's default: "
        "at most once, a worker killed mid-task loses it). Per task: "
        "`@app.task(acks_late=...)`.",
        example="false",
    )
    task_routes: Any = _setting(
        None,
        "Which queue (and priority, serializer, compression, time limits) a task goes to, "
        "by its name: patterns (exact names, globs, `re:` regular expressions) mapped to a "
        "queue name or a table of options; in Python also a list of such tables and route "
        "functions (docs/tasks.md, Routing).",
        example='{ "proj.feeds.*" = "feeds" }',
    )
    publish_retry: bool = _setting(
        True,
        "Retry sending a task when the broker stays unreachable past the transport's own "
        "reconnect window, by `publish_retry_policy` (per call: `apply_async(retry=...)`).",
        example="false",
    )
    publish_retry_policy: dict[str, float] = _setting(
        {"max_retries": 3, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.2},
        "How a send is retried (Celery's keys): up to `max_retries` more attempts, the first "
        "after `interval_start` s, each later one `interval_step` s longer, at most "
        "`interval_max` s (per call: `apply_async(retry_policy={...})`).",
        example="{ max_retries = 10, interval_max = 2.0 }",
    )
    plugins_enabled: list[str] | None = _setting(
        None,
        "If set, load only these plugins (by name; `builtins` is always loaded).",
        example='["redis"]',
    )
    plugins_disabled: list[str] = _setting(
        [], "Plugins never to load, by name.", example='["eventlet"]'
    )
    log_level: str | None = _setting(
        None,
        "Log level of the worker and CLI. Unset: INFO, except the worker's line per task "
        "received and finished (at thousands of tasks a second those lines cost a quarter "
        "of its time; failures are still logged). `INFO` logs them too, as Celery's "
        "`-l info` does.",
        example='"INFO"',
    )

    @property
    def task_modules(self) -> list[str]:
        """The modules a worker imports as it starts: ``imports``, then ``include``."""
        return list(dict.fromkeys([*self.imports, *self.include]))

    @property
    def queues(self) -> list[str]:
        return list(self.worker_queues) or [self.default_queue]

    def __repr__(self) -> str:
        # Settings reach logs, tracebacks and debuggers: credentials in URLs and the
        # secret-named entries of option tables (a password, a key's passphrase) are
        # masked, secret settings left out.
        shown = (
            f"{f.name}={mask_value(f.name, getattr(self, f.name))!r}"
            for f in fields(self)
            if f.repr
        )
        return f"Settings({', '.join(shown)})"


# Names people reach for from other task queues, mapped to ours.
_RENAMES = {
    "broker": "broker_url",
    "backend": "backend_url",
    "result_backend": "backend_url",
    "task_always_eager": "eager",
    "task_eager_propagates": "eager_propagates",
    "worker_prefetch_multiplier": "prefetch_multiplier",
    "result_expires": "result_ttl_s",
    "task_track_started": "track_started",
    "task_ignore_result": "ignore_result",
    "visibility_timeout": "lease_s",
}

_HINTS: dict[str, Any] = get_type_hints(Settings)
SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))


def setting_docs() -> dict[str, dict[str, Any]]:
    """Each setting's type, default, description and example, for docs and ``--help``."""
    out: dict[str, dict[str, Any]] = {}
    for f in fields(Settings):
        default = f.default_factory() if callable(f.default_factory) else f.default
        out[f.name] = {
            "type": _type_name(_HINTS[f.name]),
            "default": default,
            "doc": f.metadata["doc"],
            "example": f.metadata["example"],
            "env": ENV_PREFIX + f.name.upper(),
        }
    return out


def suggest(key: str) -> str | None:
    if key in _RENAMES:
        return _RENAMES[key]
    if key.lower() in _HINTS:  # LEASE_S, as a Celery-style settings module spells it
        return key.lower()
    return closest(key, SETTING_NAMES)


def _type_name(tp: Any) -> str:
    if tp is Any:
        return "table, list or function"
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "table"
    if tp is type(None):
        return "null"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any, source: str) -> Any:
    """Check ``value`` against the annotated type; ints are accepted for floats."""
    if tp is Any:
        return value  # checked by whatever reads it (task_routes: petiole.routing)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _coerce(key, value, inner[0], source)
    ok: bool
    if origin is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = list(value) if ok else value
    elif origin is dict:
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise SettingTypeError(
            key, source=source, expected=_type_name(tp), got=mask_value(key, value)
        )
    return value


def _parse_env_value(key: str, raw: str, tp: Any, source: str) -> Any:
    """Environment values are strings: parse them by the setting's type."""
    origin = get_origin(tp)
    if tp is Any:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SettingTypeError(
                key, source=source, expected="JSON", got=mask_value(key, raw)
            ) from exc
    if origin in (Union, types.UnionType):
        if raw.strip().lower() in ("", "none", "null"):
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _parse_env_value(key, raw, inner[0], source)
    try:
        if origin is list:
            return [part.strip() for part in raw.split(",") if part.strip()]
        if origin is dict:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            return parsed
        if tp is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("not a boolean")
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
    except ValueError as exc:
        raise SettingTypeError(
            key, source=source, expected=_type_name(tp), got=mask_value(key, raw)
        ) from exc
    return raw


def validate(values: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Check keys and types of one source's values; return them normalised, under
    Petiole's names (Celery's aliases translated).

    Raises :class:`~petiole.celery_names.CelerySpellingError` for Celery names
    Petiole spells otherwise or lacks, :class:`~petiole.errors.UnknownSettingError`
    for other unknown keys, :class:`~petiole.errors.SettingTypeError` for a wrong type.
    """
    translation = celery_names.translate("setting", values, petiole_names=_HINTS)
    if translation.messages:
        raise CelerySpellingError(translation.messages, source=source)
    out: dict[str, Any] = {}
    for key, value in translation.values.items():
        if key not in _HINTS:
            raise UnknownSettingError(key, source=source, suggestion=suggest(key))
        out[key] = _coerce(_as_written(key, translation.origins), value, _HINTS[key], source)
    return out


def _as_written(key: str, origins: Mapping[str, str]) -> str:
    """How an error names a setting: as the user wrote it, when that was Celery's name."""
    origin = origins.get(key)
    return key if origin is None else f"{origin} (read as {key})"


def values_from_object(
    obj: object, *, namespace: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """The settings an object holds, validated: ``app.config_from_object(obj)``.

    ``obj`` is a module, a class, an instance or a mapping, or the importable path
    of one (``"proj.settings"``, ``"proj.settings:Config"``, ``"proj.settings.Config"``).
    Its public attributes are read as settings under Petiole's names, Celery's
    (aliases translated, others refused with the Petiole spelling) or either in
    capitals (``LEASE_S``, ``BROKER_URL``); what a settings module imports or
    defines besides settings (modules, classes, functions) is skipped. With
    ``namespace="CELERY"``, only the names prefixed ``CELERY_`` are read, without
    the prefix (a Django settings module). One setting given twice is an error.
    """
    if source is None:
        label = obj if isinstance(obj, str) else _label(obj)
        source = f"config_from_object({label})"
    target = _import_object(obj) if isinstance(obj, str) else obj
    prefix = None
    if namespace:
        prefix = namespace.upper() if namespace.endswith("_") else namespace.upper() + "_"
    found: dict[str, Any] = {}
    written: dict[str, str] = {}  # the setting each name sets -> the name that set it
    for name, value in _attributes(target):
        if prefix is not None:
            if not name.upper().startswith(prefix):
                continue
            name = name[len(prefix) :]
        if name.isupper() and name.lower() in _HINTS:
            name = name.lower()
        entry = celery_names.lookup("setting", name) if name not in _HINTS else None
        sets = entry.petiole if entry is not None and entry.how == "alias" else name
        if sets is not None and sets in written:
            raise ConfigError(
                f"{source} sets {sets!r} twice, as {written[sets]!r} and {name!r}: keep one"
            )
        written[sets or name] = name
        found[name] = value
    return validate(found, source=source)


def _label(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return str(name) if name else type(obj).__name__


def _import_object(path: str) -> object:
    """The module or attribute at ``path``: ``a.b``, ``a.b:C`` or ``a.b.C``."""
    module_name, _, attr = path.partition(":")
    try:
        module: object = importlib.import_module(module_name)
    except ImportError as exc:
        head, _, tail = module_name.rpartition(".")
        if attr or not head:
            raise ConfigError(f"config_from_object({path!r}): cannot import it: {exc}") from exc
        try:  # "a.b.C": the attribute C of module a.b
            module, attr = importlib.import_module(head), tail
        except ImportError:
            raise ConfigError(f"config_from_object({path!r}): cannot import it: {exc}") from exc
        module_name = head
    if not attr:
        return module
    if not hasattr(module, attr):
        raise ConfigError(f"config_from_object({path!r}): {module_name} has no {attr!r}")
    return getattr(module, attr)


def _attributes(obj: object) -> list[tuple[str, Any]]:
    """The public, setting-like attributes of ``obj`` (a mapping's items as they are)."""
    if isinstance(obj, Mapping):
        return [(str(k), v) for k, v in obj.items()]
    out = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name)
        if isinstance(value, (types.ModuleType, type, __future__._Feature)) or callable(value):
            continue
        if type(value).__module__ == "typing":  # Any, Optional[...] imported for hints
            continue
        out.append((name, value))
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: the whole file, or its ``[tool.petiole]`` table
    when the file is a ``pyproject.toml``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(path)!r} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    if not raw:  # empty, as os.devnull ("no config file") is: no parser to load
        return {}
    # Imported here: a TOML parser only in the processes that have a file to parse.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        doc = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
    if path.name == "pyproject.toml":
        table = doc.get("tool", {}).get("petiole", {})
        if not isinstance(table, dict):
            raise ConfigError(f"[tool.petiole] in {str(path)!r} must be a table")
        return dict(table)
    return dict(doc)


def find_config_file(environ: Mapping[str, str], cwd: Path) -> Path | None:
    explicit = environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    candidate = cwd / "petiole.toml"
    if candidate.is_file():
        return candidate
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        return pyproject
    return None


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``PETIOLE_<KEY>`` variables; a Celery name after the prefix
    (``PETIOLE_TASK_TIME_LIMIT``) is read as Petiole's or refused as in any source."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_RESERVED_PREFIXES):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        source = f"environment variable {name}"
        if key not in _HINTS:
            entry = celery_names.lookup("setting", key)
            if entry is not None and entry.how == "alias" and entry.petiole in _HINTS:
                target = entry.petiole
                value = _parse_env_value(target, raw, _HINTS[target], source)
                try:
                    out[target] = entry.convert(value) if entry.convert is not None else value
                except ValueError as exc:
                    raise CelerySpellingError({name: f"`{name}`: {exc}"}, source=source) from None
                continue
            if entry is not None:
                raise CelerySpellingError({name: entry.message(key)}, source=source)
            hint = suggest(key)
            raise UnknownSettingError(
                name,
                source="the environment",
                suggestion=ENV_PREFIX + hint.upper() if hint else None,
            )
        out[key] = _parse_env_value(key, raw, _HINTS[key], source)
    return out


def celery_env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Celery's ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``, as Petiole's
    settings: layered below the config file (which names Petiole's own choice)."""
    return {
        key: _parse_env_value(key, environ[name], _HINTS[key], f"environment variable {name}")
        for name, key in CELERY_ENV.items()
        if environ.get(name)
    }


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Build :class:`Settings` from every source, in precedence order."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    merged: dict[str, Any] = celery_env_values(environ)
    path = Path(config_file) if config_file is not None else find_config_file(environ, cwd)
    if path is not None:
        merged.update(validate(read_config_file(path), source=f"config file {str(path)!r}"))
    merged.update(env_values(environ))
    merged.update(validate(overrides or {}, source="keyword arguments"))
    return Settings(**merged)


def reference_table() -> str:
    """The settings table of docs/configuration.md (a test keeps the two equal)."""
    rows = [
        "| Setting | Environment variable | Type | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for name, doc in setting_docs().items():
        default = json.dumps(doc["default"])
        rows.append(
            f"| `{name}` | `{doc['env']}` | {doc['type']} | `{default}` | {doc['doc']} "
            f"Example: `{name} = {doc['example']}` |"
        )
    return "\n".join(rows) + "\n"

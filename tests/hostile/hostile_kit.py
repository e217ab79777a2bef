"""What the hostile-input tests share: the stores they run on, hand-built
messages, the corpus of bad bodies, worker subprocesses and thread checks."""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from petiole import Petiole
from petiole.envelope import Envelope
from petiole.transport import DeadLetter

HERE = Path(__file__).resolve().parent
JSON = "application/json"
PICKLE = "application/x-python-pickle"


# -- stores -------------------------------------------------------------------------------


@dataclass
class Stores:
    """A broker and result store to run a test on: SQLite in a temp dir, or Redis."""

    kind: str  # "sqlite" or "redis"
    url: str  # broker and results share it
    _apps: list[Petiole] = field(default_factory=list)

    def app(self, name: str = "hostile", **settings: Any) -> Petiole:
        """An app on these stores, isolated from config files; closed after the test."""
        app = Petiole(name, broker=self.url, backend=self.url, config_file="/dev/null", **settings)
        self._apps.append(app)
        return app

    def env(self, **settings: str) -> dict[str, str]:
        """The environment of a worker or CLI subprocess on these stores."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PETIOLE_")}
        path = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        env.update(PETIOLE_BROKER_URL=self.url, PETIOLE_BACKEND_URL=self.url, PYTHONPATH=path)
        env.update({f"PETIOLE_{key.upper()}": value for key, value in settings.items()})
        return env

    def close(self) -> None:
        for app in self._apps:
            app.close()


# -- messages -----------------------------------------------------------------------------


def headers_for(task: str, task_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Valid protocol-1 headers for one call of ``task``."""
    return {
        "protocol": 1,
        "id": task_id or str(uuid.uuid4()),
        "task": task,
        "retries": 0,
        "sent_at": time.time(),
        **extra,
    }


def publish_body(
    app: Petiole, queue: str, task: str, body: bytes, *, content_type: str = JSON
) -> str:
    """Publish a well-framed message whose body is ``body``; return its task id."""
    headers = headers_for(task)
    envelope = Envelope(headers, body, content_type)
    app.transport.publish(queue, envelope.to_bytes(), message_id=headers["id"])
    return str(headers["id"])


def framed(header_block: bytes, body: bytes = b"[[],{}]") -> bytes:
    """The canonical framing around a raw header block (valid JSON or not)."""
    return b"PET1" + len(header_block).to_bytes(4, "big") + header_block + body


def deeply_nested_header_block(task: str, task_id: str, depth: int = 100_000) -> bytes:
    """A header block that is valid apart from one user header nested ``depth`` deep
    (about ``2 * depth`` bytes)."""
    head = (
        f'{{"protocol":1,"id":"{task_id}","task":"{task}","retries":0,"sent_at":0,'
        f'"content_type":"{JSON}","content_encoding":"identity","deep":'
    )
    return head.encode() + b"[" * depth + b"]" * depth + b"}"


# Bodies in a valid envelope that no worker can decode: each must be dead-lettered
# as "undecodable body" on its first delivery. Keys name the case in test ids.
UNDECODABLE_BODIES: Mapping[str, bytes] = {
    "decimal-not-a-number": b'[[{"__petiole__":"decimal","v":"abc"}],{}]',
    "decimal-of-an-object": b'[[{"__petiole__":"decimal","v":{"a":1}}],{}]',
    "bytes-of-an-int": b'[[{"__petiole__":"bytes","v":5}],{}]',
    "bytes-not-ascii": b'[[{"__petiole__":"bytes","v":"\xc3\xa9"}],{}]',
    "timedelta-overflow": b'[[{"__petiole__":"timedelta","v":1e400}],{}]',
    "timedelta-of-a-string": b'[[{"__petiole__":"timedelta","v":"x"}],{}]',
    "datetime-of-an-int": b'[[{"__petiole__":"datetime","v":5}],{}]',
    "datetime-bad-iso": b'[[{"__petiole__":"datetime","v":"yesterday"}],{}]',
    "date-of-null": b'[[{"__petiole__":"date","v":null}],{}]',
    "time-of-a-list": b'[[{"__petiole__":"time","v":[1]}],{}]',
    "uuid-of-an-int": b'[[{"__petiole__":"uuid","v":5}],{}]',
    "set-of-lists": b'[[{"__petiole__":"set","v":[[1]]}],{}]',
    "frozenset-of-an-int": b'[[{"__petiole__":"frozenset","v":7}],{}]',
    "tag-in-kwargs": b'[[],{"x":{"__petiole__":"decimal","v":"1.2.3"}}]',
    "nested-100k-deep": b"[[" + b"[" * 100_000 + b"]" * 100_000 + b"],{}]",
}


# -- observing a worker ---------------------------------------------------------------------


def dead_letters(app: Petiole, queue: str) -> list[DeadLetter]:
    return app.transport.dead_letters(queue, limit=10_000)


def petiole_threads() -> collections.Counter[str]:
    """Names of the live threads a worker started (``petiole-*``), with their counts."""
    return collections.Counter(
        t.name for t in threading.enumerate() if t.name.startswith("petiole-")
    )


def missing_threads(before: collections.Counter[str]) -> collections.Counter[str]:
    """The ``petiole-*`` threads alive at ``before`` that are not alive now."""
    return before - petiole_threads()


# -- counting fuzz inputs ---------------------------------------------------------------------

FUZZ_COUNTS: dict[str, int] = collections.defaultdict(int)


def count_input(what: str) -> None:
    """Count one fuzz input tried under ``what`` (reported in the terminal summary)."""
    FUZZ_COUNTS[what] += 1

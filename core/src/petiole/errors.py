"""Every error a user can cause has its own type here, under :class:`PetioleError`.

Plugins translate their client library's exceptions into these at their edge
(``raise TransportError(...) from exc``) so nothing above a plugin ever sees a
``redis.ConnectionError`` or a ``sqlite3.OperationalError``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from petiole.suggestions import did_you_mean


class PetioleError(Exception):
    """Base class of every error Petiole raises on purpose."""


# -- configuration ---------------------------------------------------------


class ConfigError(PetioleError):
    """The configuration is invalid: an unknown key, a wrong type, an unreadable file."""


class UnknownSettingError(ConfigError):
    def __init__(self, key: str, *, source: str, suggestion: str | None = None) -> None:
        self.key = key
        self.source = source
        self.suggestion = suggestion
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown setting {key!r} in {source}{hint}")


class SettingTypeError(ConfigError):
    def __init__(self, key: str, *, source: str, expected: str, got: object) -> None:
        self.key = key
        self.source = source
        super().__init__(
            f"setting {key!r} in {source} must be {expected}, got {type(got).__name__} {got!r}"
        )


# -- plugins ---------------------------------------------------------------


class PluginError(PetioleError):
    """A plugin could not be loaded, or two plugins claim the same component."""


class PluginLoadError(PluginError):
    def __init__(self, plugin: str, distribution: str, error: BaseException) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.error = error
        super().__init__(
            f"plugin {plugin!r} from distribution {distribution!r} failed to load: "
            f"{type(error).__name__}: {error}"
        )


class UnknownComponentError(PluginError):
    """No installed plugin provides the requested transport, backend, serializer or pool."""

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        installed: Iterable[str],
        hint: str | None = None,
        broken: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.installed = sorted(installed)
        self.hint = hint
        parts = [
            f"no {kind} named {name!r} is installed"
            f"{did_you_mean(name, self.installed, cutoff=0.75)}"
        ]
        parts.append(f"installed: {', '.join(self.installed) or 'none'}")
        if broken:
            parts.append(broken)
        if hint:
            parts.append(hint)
        super().__init__("; ".join(parts))


# -- messages --------------------------------------------------------------


class ProtocolError(PetioleError):
    """A message does not follow the Petiole message protocol (bad framing or headers)."""


class ContentDisallowed(ProtocolError):
    """A message's content type is not in the worker's accepted content types."""

    def __init__(
        self, content_type: str, accepted: Iterable[str], *, setting: str = "accept_content"
    ) -> None:
        self.content_type = content_type
        self.accepted = sorted(accepted)
        self.setting = setting
        super().__init__(
            f"refusing to deserialize content type {content_type!r}; accepted: "
            f"{', '.join(self.accepted)} (add its serializer to the {setting} setting "
            "to trust it)"
        )


class SerializationError(PetioleError):
    """A value could not be serialized or deserialized."""


class CodecError(SerializationError):
    """A body could not be decoded by the codec its ``content_encoding`` names
    (corrupt, truncated, or not in that encoding at all)."""


class DecodeLimitExceeded(CodecError):
    """A body would decode to more than the allowed size (a decompression bomb,
    or just too large): refused before the output grew past the limit."""

    def __init__(self, codec: str, limit_bytes: int) -> None:
        self.codec = codec
        self.limit_bytes = limit_bytes
        super().__init__(
            f"the {codec} body decodes to more than {limit_bytes} bytes (max_body_bytes); "
            "refused without decoding the rest"
        )


class SignatureError(ProtocolError):
    """A message is unsigned where a signature is required, or its signature does
    not verify: it was tampered with, or signed with another key or signer."""


class UnknownSerializer(SerializationError):
    pass


# -- transports and result backends -----------------------------------------


class TransportError(PetioleError):
    """The broker failed an operation (connection lost, server error)."""


class MessageTooLarge(TransportError):
    def __init__(self, size_bytes: int, limit_bytes: int, transport: str) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"message of {size_bytes} bytes exceeds the {transport} limit of {limit_bytes} bytes"
        )


class ResultBackendError(PetioleError):
    """The result store failed an operation."""


class ResultTooLarge(ResultBackendError):
    """The store refuses this result for good (over its size limit). The worker
    records the task as failed with this error instead of retrying the store."""

    def __init__(
        self, size_bytes: int, limit_bytes: int | None, backend: str, detail: str = ""
    ) -> None:
        """``size_bytes`` is what was compared with ``limit_bytes``: the payload when the
        limit is ``max_result_bytes``. ``limit_bytes`` is None when the server refused
        the write for its size by a limit of its own (``detail`` then says which)."""
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        if limit_bytes is None:
            summary = f"a result of {size_bytes} bytes is more than the {backend} accepts"
        else:
            summary = (
                f"a result of {size_bytes} bytes exceeds the {backend} limit of {limit_bytes} bytes"
            )
        super().__init__(summary + (f" ({detail})" if detail else ""))


# -- tasks and results -------------------------------------------------------


class ResultTimeout(PetioleError, TimeoutError):
    """``AsyncResult.get()`` waited longer than its timeout (also a builtin ``TimeoutError``)."""


class MessageDeadLettered(PetioleError):
    """The task's message was put in the dead-letter store without running (a task
    the worker does not register, a body it cannot decode, ...): recorded as the
    task's FAILURE so a caller waiting on its result learns why. Requeued
    (``petiole dlq requeue``), the task runs and records its own state."""


class RemoteTaskError(PetioleError):
    """A task failed with an exception that could not be rebuilt safely here.

    Carries the original exception's qualified type name and message, and the
    remote traceback; raised by ``AsyncResult.get()`` in its place.
    """

    def __init__(self, type_name: str, message: str, traceback: str | None = None) -> None:
        self.type_name = type_name
        self.message = message
        self.remote_traceback = traceback
        super().__init__(f"{type_name}: {message}")


class TaskRevoked(PetioleError):
    """The task was revoked or expired before it ran."""


class Retry(PetioleError):
    """Raised by ``self.retry()`` inside a task: the task will run again at ``eta``.

    Control flow, not a failure: the worker records the RETRY state (with the
    exception that caused it) and acknowledges the current message, the retry
    having been sent as a new message already.
    """

    def __init__(self, exc: BaseException | None, eta: float, retries: int) -> None:
        self.exc = exc
        self.eta = eta
        self.retries = retries
        self.args_for_retry: list[object] | None = None  # the next attempt's arguments
        self.kwargs_for_retry: dict[str, object] | None = None
        cause = f"{type(exc).__name__}: {exc}" if exc is not None else "retry requested"
        super().__init__(f"retry {retries} in {max(0.0, eta - time.time()):.1f} s ({cause})")


class MaxRetriesExceededError(PetioleError):
    """A task asked to retry with no retries left and no exception to re-raise."""


class SoftTimeLimitExceeded(PetioleError):
    """Raised inside a task that ran past its soft time limit: clean up and return or raise."""


class TimeLimitExceeded(PetioleError):
    """The task ran past its hard time limit and the process running it was killed."""


class WorkerLostError(PetioleError):
    """The process running the task died (signal, ``os._exit``, out of memory)."""


class ChordError(PetioleError):
    """A chord's callback did not run because a member of its header failed.

    ``failed_task_id`` and ``index`` name the member; its own exception is in
    the message and in its own result.
    """

    def __init__(self, message: str, failed_task_id: str = "", index: int | None = None) -> None:
        self.failed_task_id = failed_task_id
        self.index = index
        super().__init__(message)


class ResultsLost(ResultBackendError):
    """The result store lost its data while a caller waited for results (a Redis
    restarted without persistence, say): results stored before are gone, and so
    is a task that was still queued on the same server, so the wait would never
    end. Raised by ``AsyncResult.get()`` and ``GroupResult.get()`` instead of
    waiting forever."""

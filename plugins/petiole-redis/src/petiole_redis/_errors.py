"""What can go wrong talking to Redis, as this plugin's client raises it.

The plugin speaks the Redis protocol itself (:mod:`petiole_redis._connection`);
these are its errors, named as redis-py names them so the retry policy reads the
same: :class:`RedisConnectionError` and :class:`RedisTimeoutError` are outages
(retried, see :func:`petiole_redis._client.is_outage`) unless the connection was
refused for its credentials (:class:`AuthenticationError`) or the server's
certificate (:class:`CertificateError`); a
:class:`ResponseError` is the server's answer to a command (never retried). They
stay inside the plugin: the transport and backend raise petiole's own
:class:`~petiole.errors.TransportError` / :class:`~petiole.errors.ResultBackendError`.
"""

from __future__ import annotations

from typing import Any


class RedisError(Exception):
    """Any error of the Redis client."""


class RedisConnectionError(RedisError):
    """The connection could not be made, or was lost (an outage)."""


class HostNotFound(RedisConnectionError):
    """The server's host name does not resolve (still an outage: a resolver may be
    down for a moment), told apart so that its error does not ask whether
    redis-server runs there."""


class RedisTimeoutError(RedisError):
    """A connect, read or write took longer than its timeout (an outage)."""


class AuthenticationError(RedisConnectionError):
    """The server refused the credentials: a configuration error, not an outage."""


class CertificateError(RedisConnectionError):
    """The server's TLS certificate failed verification: configuration, not an outage."""


class BusyLoadingError(RedisConnectionError):
    """The server is loading its data and answers nothing else yet (an outage)."""


class ResponseError(RedisError):
    """An error reply: the server refused the command."""


class NoScriptError(ResponseError):
    """``EVALSHA`` of a script the server does not have (after a restart)."""


class ReadOnlyError(ResponseError):
    """A write sent to a read-only replica."""


class DataError(RedisError):
    """An argument of a type the protocol cannot carry (only bytes, str, int, float)."""


class InvalidResponse(RedisError):
    """The server (or whatever answered) does not speak the Redis protocol."""


# Error replies by their first word. A refused AUTH or HELLO (wrong password, no
# such user, no password set) comes with these; anything else is a ResponseError.
_BY_CODE: dict[str, type[RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
    "WRONGPASS": AuthenticationError,
    "NOAUTH": AuthenticationError,
}
_AUTH_MESSAGES = (
    "invalid password",
    "invalid username-password pair",
    "called without any password configured",
    "client sent auth, but no password is set",
)


def raise_first_error(replies: list[Any]) -> list[Any]:
    """A pipeline's replies (error replies stand in place), the first error raised."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def error_reply(message: str) -> RedisError:
    """The exception an error reply (its text, without the leading ``-``) stands for."""
    code = message.split(" ", 1)[0]
    kind = _BY_CODE.get(code)
    if kind is not None:
        return kind(message)
    lowered = message.lower()
    if any(text in lowered for text in _AUTH_MESSAGES):
        return AuthenticationError(message)
    if "max number of clients reached" in lowered:
        return RedisConnectionError(message)  # the server drops the connection after it
    return ResponseError(message)

"""URL helpers shared by the CLI, the worker and plugins."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_password(url: str) -> str:
    """``redis://:secret@host/0`` → ``redis://:***@host/0``, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))

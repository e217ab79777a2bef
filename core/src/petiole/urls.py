"""URL helpers shared by the CLI, the worker and plugins."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_password(url: str) -> str:
    """``redis://:secret@host/0`` → ``redis://:***@host/0``, for logs and errors.

    Works on multi-host URLs too (``mongodb://u:p@h1:1,h2:2/``), which
    ``urlsplit`` can split but not give a port for.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))

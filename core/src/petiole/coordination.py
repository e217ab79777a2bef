"""Which store coordinates the app's workers, and the error when none does.

Chords, ``revoke`` and leader election need a :class:`~petiole.backend.Coordination`
store. It is the store named by the ``coordination_url`` setting when set, and
otherwise the result backend itself when it implements the protocol. A result
backend that only delivers results (``rpc://``) does not, and an app using one
needs ``coordination_url`` — or it gets :class:`CoordinationUnavailable`,
naming what needed coordination, the first time something does. Never silence:
a chord that cannot count its members must not quietly never fire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from petiole.backend import Coordination, ResultBackend
from petiole.errors import ConfigError
from petiole.urls import mask_url

CHORD = "a chord (counting its finished members)"
REVOKE = "revoke (keeping revocation marks workers read)"
LEADER_ELECTION = "leader election (the scheduler's lease)"


class CoordinationUnavailable(ConfigError):
    """The app needs a coordination store and has none: its result backend
    cannot coordinate and ``coordination_url`` is not set."""

    def __init__(self, backend_url: str, backend_type: str, *, needed_for: str | None) -> None:
        self.backend_url = backend_url
        self.backend_type = backend_type
        self.needed_for = needed_for
        what = needed_for or "chords, revoke and leader election"
        super().__init__(
            f"the app needs a coordination store for {what}, but its result backend "
            f"{mask_url(backend_url)} ({backend_type}) only stores results "
            f"and cannot coordinate; set `coordination_url` to a store that can "
            f'(e.g. coordination_url = "redis://localhost:6379/0")'
        )


def open_coordination(
    coordination_url: str | None,
    options: Mapping[str, Any],
    *,
    backend_url: str,
    backend: Callable[[], ResultBackend],
    factory_for: Callable[[str], Callable[[str, Mapping[str, Any]], object]],
) -> Coordination:
    """The coordination store of an app: ``coordination_url``'s, else the backend's.

    ``factory_for(url)`` returns the result backend factory registered for the
    URL's scheme. Raises :class:`CoordinationUnavailable` when the store found
    cannot coordinate.
    """
    if coordination_url is None:
        found: object = backend()
        if isinstance(found, Coordination):
            return found
        raise CoordinationUnavailable(backend_url, type(found).__name__, needed_for=None)
    store = factory_for(coordination_url)(coordination_url, options)
    if not isinstance(store, Coordination):
        close = getattr(store, "close", None)
        if close is not None:
            close()
        raise ConfigError(
            f"coordination_url {mask_url(coordination_url)} names "
            f"{type(store).__name__}, which cannot coordinate (it lacks "
            f"set_add/claim/leases); name a store such as redis:// or sqlite://"
        )
    return store


def required(get: Callable[[], Coordination], needed_for: str) -> Coordination:
    """``get()`` (an app's coordination store), re-raising its absence as an
    error that says what needed it."""
    try:
        return get()
    except CoordinationUnavailable as exc:
        raise CoordinationUnavailable(
            exc.backend_url, exc.backend_type, needed_for=needed_for
        ) from None

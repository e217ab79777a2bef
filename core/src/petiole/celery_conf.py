"""``app.conf``: Celery's settings object, for code that comes from Celery.

Celery projects configure their app with ``app.conf.update(...)`` and
``app.conf.name = value``, and read ``app.conf.name``. Petiole's own way is
``Petiole(...)`` keyword arguments, ``app.configure(...)`` and
``app.config_from_object(...)``; ``app.conf`` is a thin view over them, so that
such code runs unchanged where it can and says what to write where it cannot:

* writes are read as :meth:`~petiole.app.Petiole.config_from_object` reads a
  mapping, so Celery's names are read as Petiole's (``result_expires`` as
  ``result_ttl_s``, its value converted), and a name Petiole spells otherwise or
  lacks is refused with a :class:`~petiole.celery_names.CelerySpellingError`
  that says what to write;
* reads return the current setting, under its Petiole name or a Celery alias
  spelled differently; an alias whose value Petiole holds in other units or
  another form (``result_expires``, a ``timedelta`` or seconds, held as the
  seconds of ``result_ttl_s``) is read by its Petiole name, and the error says so.

Like ``configure``, a write is refused once the app has connected to its broker
or result store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from petiole import celery_names, config


class ConfigurableApp(Protocol):
    """What ``app.conf`` needs of the app (a :class:`~petiole.app.Petiole`)."""

    @property
    def settings(self) -> config.Settings: ...

    def layer_settings(self, values: Mapping[str, Any], what: str) -> None: ...


class CeleryConf:
    """The ``app.conf`` of one app (see the module docstring)."""

    __slots__ = ("_app",)

    def __init__(self, app: ConfigurableApp) -> None:
        object.__setattr__(self, "_app", app)

    def update(
        self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **more: Any
    ) -> None:
        """Set several settings, as Celery's ``app.conf.update(...)``."""
        given = {**dict(values), **more}
        if given:
            found = config.values_from_object(given, source="app.conf")
            self._app.layer_settings(found, "app.conf.update()")

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._read(name, AttributeError)

    def __getitem__(self, name: str) -> Any:
        return self._read(name, KeyError)

    def get(self, name: str, default: Any = None) -> Any:
        """The setting ``name``, or ``default`` for a name that is no setting at all.
        A Celery name Petiole holds under another name or in other units raises the
        ``KeyError`` that ``app.conf[name]`` does, naming where to read it: ``default``
        in its place would be silently wrong (``result_expires`` set to 3600 read
        back as None)."""
        try:
            return self._read(name, KeyError)
        except KeyError:
            if celery_names.lookup("setting", name) is not None:
                raise
            return default

    def _read(self, name: str, error: type[Exception]) -> Any:
        entry = celery_names.lookup("setting", name)
        if entry is not None and entry.how != "alias":
            raise error(entry.message(name))
        if entry is not None and entry.convert is not None:
            # Its value is held in Petiole's units or form: read it by that name.
            raise error(
                f"`{name}` is held as `{entry.petiole}` in Petiole's units: read "
                f"app.conf.{entry.petiole}"
            )
        setting = entry.petiole if entry is not None and entry.petiole else name
        settings = self._app.settings
        if setting.startswith("_") or not hasattr(settings, setting):
            raise error(f"no setting named {name!r} (`petiole` settings: docs/configuration.md)")
        return getattr(settings, setting)

    def __repr__(self) -> str:
        return f"<app.conf of {self._app!r}>"

"""What modules below the app need from it, as Protocols.

:class:`petiole.app.Petiole` satisfies each. Results, revocation, diagnosis
and the hook specifications take one of these instead of importing the app,
so the app can import them and the import graph stays acyclic (see
docs/contracts.md, "Module layers"). Only contracts and values are imported
here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from petiole.backend import Coordination, ResultBackend, ResultRecord
from petiole.config import Settings
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.transport import Transport


class ResultsApp(Protocol):
    """Where results are stored and how they are read back: what a result
    handle, revocation and ``explain()`` use."""

    @property
    def settings(self) -> Settings: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def backend(self) -> ResultBackend: ...

    @property
    def coordination(self) -> Coordination: ...

    @property
    def result_serializer(self) -> Serializer: ...

    def result_serializer_for(self, content_type: str) -> Serializer: ...

    def decode_result(self, record: ResultRecord) -> Any: ...

    def store_result(self, record: ResultRecord) -> None: ...

    def revoke(
        self,
        task_ids: str | Sequence[str],
        *,
        terminate: bool = False,
        reason: str = "revoked",
        **celery_options: Any,
    ) -> dict[str, str]: ...


class AppHandle(ResultsApp, Protocol):
    """The app as hooks receive it: its name, settings, components and stages."""

    @property
    def name(self) -> str: ...

    def serializer(self, name: str) -> Serializer: ...

    def codec(self, name: str) -> Codec: ...

    def signer(self) -> Signer | None: ...


class WorkerHandle(Protocol):
    """A running worker as the worker hooks receive it (:class:`petiole.worker.Worker`)."""

    @property
    def hostname(self) -> str: ...

    @property
    def queues(self) -> list[str]: ...

    @property
    def concurrency(self) -> int: ...

    def info(self) -> dict[str, Any]: ...

"""The core's own components, registered through the same hooks as any plugin's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from petiole.errors import ConfigError
from petiole.hookspecs import hookimpl
from petiole.ports import AppHandle
from petiole.serializers import JsonSerializer, PickleSerializer, Serializer
from petiole.stages import Bzip2Codec, IdentityCodec, LzmaCodec, ZlibCodec


@hookimpl
def petiole_transports() -> Mapping[str, Any]:
    return {
        "sqlite": "petiole._builtins.sqlite_transport:create_transport",
        "memory": "petiole._builtins.memory:create_transport",
    }


@hookimpl
def petiole_result_backends() -> Mapping[str, Any]:
    return {
        "sqlite": "petiole._builtins.sqlite_backend:create_backend",
        "memory": "petiole._builtins.memory:create_backend",
    }


@hookimpl
def petiole_serializers() -> Sequence[Serializer]:
    return [JsonSerializer(), PickleSerializer()]


@hookimpl
def petiole_codecs() -> Mapping[str, Any]:
    # Classes, built on first use: an app that never sees bzip2 or lzma pays nothing.
    return {"identity": IdentityCodec(), "zlib": ZlibCodec, "bzip2": Bzip2Codec, "lzma": LzmaCodec}


@hookimpl
def petiole_signers() -> Mapping[str, Any]:
    return {"hmac-sha256": "petiole.stages:create_hmac_signer"}


@hookimpl
def petiole_pools() -> Mapping[str, Any]:
    return {
        "solo": "petiole.pools.solo:SoloPool",
        "threads": "petiole.pools.threads:ThreadPool",
        "processes": "petiole.pools.processes:ProcessPool",
        # `petiole worker` runs prefork as supervised worker processes (worker.layout);
        # a worker embedded in a program, which cannot fork itself, as the processes pool.
        "prefork": "petiole.pools.processes:ProcessPool",
        "asyncio": "petiole.pools.asyncio_pool:AsyncioPool",
    }


@hookimpl
def petiole_app_configured(app: AppHandle) -> None:
    """The message stages the settings name must exist: a signer without its key,
    or a compression codec not installed, fails the app's first use (a worker's
    start), not each message; so does ``sign_results`` without a signer."""
    if app.signer() is None and app.settings.sign_results:
        raise ConfigError(
            "sign_results is set but no signer is: set the signer setting (and its key)"
        )
    if app.settings.compression:
        app.codec(app.settings.compression)

"""Everything a plugin author implements or uses, importable from one module.

A plugin (docs/plugin-guide.md; ``plugins/_template/`` is a working one) imports
from here only::

    from petiole.plugin_api import (
        ResultTooLarge, ResultBackend, BackendCapabilities, ResultRecord,
        build_options, query_options, mask_url, encode_record, decode_record, hookimpl,
    )

What it holds, by the job it does:

* **Registering**: :data:`hookimpl`; every hook is documented in
  :mod:`petiole.hookspecs`.
* **Contracts** (``typing.Protocol`` classes a component satisfies, the factory
  each registration maps a name to, and the values they exchange):
  :class:`Transport`, :class:`TransportFactory`, :class:`TransportCapabilities`,
  :class:`Delivery`, :class:`DeadLetter`, :class:`DeadLetterAdmin`, :class:`AcksInBatches`,
  :class:`AcksWhileReserving`;
  :class:`ResultBackend`, :class:`BackendFactory`, :class:`BackendCapabilities`,
  :class:`ResultRecord`, and :class:`Coordination` for a backend that can also
  coordinate (chords, revocation marks, leases); :class:`Serializer`, :class:`SerializerFactory`;
  :class:`Codec`, :class:`CodecFactory`, :class:`Signer`, :class:`SignerFactory`
  (the message stages of :mod:`petiole.stages`);
  :class:`Pool`, :class:`PoolFactory`, :class:`Job`, :class:`Outcome`,
  :class:`Runner`, and :class:`GreenPool` / :class:`GreenLibrary` for a
  green-thread library's pool.
* **States** of a task (``SUCCESS``, ``READY_STATES``, ...; the module is
  :mod:`states`).
* **Errors**: every class of :mod:`petiole.errors`, under :class:`PetioleError`.
  A component raises its layer's branch (``TransportError``, ``ResultBackendError``,
  ``SerializationError``, ``ConfigError``) ``from`` its client library's error,
  and ``MessageTooLarge`` / ``ResultTooLarge`` for what its store refuses for size.
  A codec raises ``CodecError`` / ``DecodeLimitExceeded``, a signer ``SignatureError``.
* **Options**: :func:`query_options` and :func:`build_options` read a
  component's options from its URL and config table into a frozen dataclass;
  :func:`closest` is the name an unknown option was most likely meant to be.
* **Secrets in messages**: :func:`mask_url`, :func:`mask_value`, :func:`mask_text`
  (and :func:`is_secret_name`, :func:`quote_part`, :data:`ENCODE_HINT`).
* **Untrusted containers**: :func:`set_from_untrusted`, :func:`frozenset_from_untrusted`,
  :func:`dict_from_untrusted` and :func:`check_hash_collisions` build sets and dicts
  from a message's values, refusing more than :data:`MAX_HASH_COLLISIONS` values
  crafted to share one hash (which makes building quadratic); every serializer
  that builds a set, or a dict with keys other than strings, goes through them.
* **Per call, without a system call**: :func:`current_pid` (``os.getpid()``,
  kept per process and read again after a fork) and :func:`random_hex` (random
  digits from a read-ahead buffer of the kernel's randomness) — for the checks
  and nonces a hot path makes on every call.
* **Record codec**: :func:`encode_record` / :func:`decode_record`, a
  :class:`ResultRecord` as one byte string, for stores that keep one value per key.
* **Testing** (needs ``petiole[testing]``, that is pytest): the conformance
  suites (:class:`TransportSuite`, :class:`ResultBackendSuite`, :class:`CoordinationSuite`,
  :class:`SerializerSuite`, :class:`CodecSuite`, :class:`SignerSuite`,
  :class:`PoolSuite`, :class:`RoundTrip`, :class:`SerializerPluginSuite`, ...),
  :func:`core_imports_beyond` (a plugin imports the core through this module only), the
  test-server helpers (:class:`ServerProcess`, :func:`free_port`,
  :func:`require_binary`, :func:`require_module`, :func:`port_open`,
  :func:`in_ci`) and :func:`unique_name`, :func:`wait_until`.

The testing names, and the green pool, are loaded on first access (a module
``__getattr__``): importing this module never imports pytest, and costs a
plugin's hook module (which every app imports) next to nothing. So a plugin's
runtime code and its tests share one import surface, and only its tests pay
for pytest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from petiole import states
from petiole.backend import (
    BackendCapabilities,
    BackendFactory,
    Coordination,
    PushesToSender,
    RepliesToSender,
    ResultBackend,
    ResultRecord,
)
from petiole.component_options import build_options, query_options, split_server_url
from petiole.errors import (
    ChordError,
    CodecError,
    ConfigError,
    ContentDisallowed,
    DecodeLimitExceeded,
    MaxRetriesExceededError,
    MessageDeadLettered,
    MessageTooLarge,
    PetioleError,
    PluginError,
    PluginLoadError,
    ProtocolError,
    RemoteTaskError,
    ResultBackendError,
    ResultsLost,
    ResultTimeout,
    ResultTooLarge,
    Retry,
    SerializationError,
    SettingTypeError,
    SignatureError,
    SoftTimeLimitExceeded,
    TaskRevoked,
    TimeLimitExceeded,
    TransportError,
    UnknownComponentError,
    UnknownSerializer,
    UnknownSettingError,
    WorkerLostError,
)
from petiole.hash_flooding import (
    MAX_HASH_COLLISIONS,
    check_hash_collisions,
    dict_from_untrusted,
    frozenset_from_untrusted,
    set_from_untrusted,
)
from petiole.hookspecs import CodecFactory, SerializerFactory, SignerFactory, hookimpl
from petiole.ids import current_pid, random_hex
from petiole.outages import (
    Closable,
    Closed,
    DownTooLong,
    OutageTracker,
    StillDown,
    backoff_s,
    call_through_outage,
)
from petiole.pools.base import Job, Outcome, Pool, PoolFactory, Resizable, Runner
from petiole.record_codec import decode_record, encode_record
from petiole.serializers import Serializer
from petiole.stages import Codec, Signer
from petiole.states import (
    ALL_STATES,
    EXCEPTION_STATES,
    FAILURE,
    PENDING,
    READY_STATES,
    RECEIVED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
    UNREADY_STATES,
)
from petiole.suggestions import closest
from petiole.transport import (
    AcksInBatches,
    AcksWhileReserving,
    Broadcast,
    Consumer,
    Consuming,
    DeadLetter,
    DeadLetterAdmin,
    Delivery,
    PublishesInBatches,
    Subscription,
    ThreadedSubscription,
    Transport,
    TransportCapabilities,
    TransportFactory,
    check_queue_names,
    unsettled_return,
)
from petiole.urls import ENCODE_HINT, is_secret_name, mask_text, mask_url, mask_value, quote_part

if TYPE_CHECKING:  # loaded on first access, by __getattr__ below
    from petiole.pools.green import GreenLibrary, GreenPool
    from petiole.testing import (
        JSON_TAGGED_ROUNDTRIPS,
        PLAIN_ROUNDTRIPS,
        TESTS_MAY_IMPORT,
        BroadcastSuite,
        CodecSuite,
        ConsumeSuite,
        CoordinationSuite,
        ResultBackendSuite,
        RoundTrip,
        SerializerPluginSuite,
        SerializerSuite,
        SignerSuite,
        TransportSuite,
        core_imports_beyond,
        unique_name,
        wait_until,
    )
    from petiole.testing.in_thread import InThread
    from petiole.testing.pool_suite import PoolSuite
    from petiole.testing.servers import (
        ManagedServer,
        ServerProcess,
        free_port,
        in_ci,
        port_open,
        require_binary,
        require_module,
        serve,
    )

# Name -> the module that defines it, imported when the name is first used: the
# testing helpers need pytest, and the green pool pulls in the task runner, which
# a plugin's hook module (imported by every app) must not pay for.
_LAZY = {
    "BroadcastSuite": "petiole.testing",
    "CodecSuite": "petiole.testing",
    "ConsumeSuite": "petiole.testing",
    "CoordinationSuite": "petiole.testing",
    "GreenLibrary": "petiole.pools.green",
    "GreenPool": "petiole.pools.green",
    "InThread": "petiole.testing.in_thread",
    "JSON_TAGGED_ROUNDTRIPS": "petiole.testing",
    "ManagedServer": "petiole.testing.servers",
    "PLAIN_ROUNDTRIPS": "petiole.testing",
    "PoolSuite": "petiole.testing.pool_suite",
    "ResultBackendSuite": "petiole.testing",
    "RoundTrip": "petiole.testing",
    "SerializerPluginSuite": "petiole.testing",
    "SerializerSuite": "petiole.testing",
    "SignerSuite": "petiole.testing",
    "TESTS_MAY_IMPORT": "petiole.testing",
    "core_imports_beyond": "petiole.testing",
    "ServerProcess": "petiole.testing.servers",
    "TransportSuite": "petiole.testing",
    "free_port": "petiole.testing.servers",
    "in_ci": "petiole.testing.servers",
    "port_open": "petiole.testing.servers",
    "require_binary": "petiole.testing.servers",
    "require_module": "petiole.testing.servers",
    "serve": "petiole.testing.servers",
    "unique_name": "petiole.testing",
    "wait_until": "petiole.testing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if not module.startswith("petiole.testing"):
            raise
        raise ImportError(
            f"petiole.plugin_api.{name} is a testing helper and needs pytest: "
            f"install petiole[testing] ({exc})"
        ) from exc
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ALL_STATES",
    "ENCODE_HINT",
    "EXCEPTION_STATES",
    "FAILURE",
    "JSON_TAGGED_ROUNDTRIPS",
    "MAX_HASH_COLLISIONS",
    "PENDING",
    "PLAIN_ROUNDTRIPS",
    "READY_STATES",
    "RECEIVED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "TESTS_MAY_IMPORT",
    "UNREADY_STATES",
    "AcksInBatches",
    "AcksWhileReserving",
    "BackendCapabilities",
    "BackendFactory",
    "Broadcast",
    "BroadcastSuite",
    "ChordError",
    "Closable",
    "Closed",
    "Codec",
    "CodecError",
    "CodecFactory",
    "CodecSuite",
    "ConfigError",
    "ConsumeSuite",
    "Consumer",
    "Consuming",
    "ContentDisallowed",
    "Coordination",
    "CoordinationSuite",
    "DeadLetter",
    "DeadLetterAdmin",
    "DecodeLimitExceeded",
    "Delivery",
    "DownTooLong",
    "GreenLibrary",
    "GreenPool",
    "InThread",
    "Job",
    "ManagedServer",
    "MaxRetriesExceededError",
    "MessageDeadLettered",
    "MessageTooLarge",
    "OutageTracker",
    "Outcome",
    "PetioleError",
    "PluginError",
    "PluginLoadError",
    "Pool",
    "PoolFactory",
    "PoolSuite",
    "ProtocolError",
    "PublishesInBatches",
    "PushesToSender",
    "RemoteTaskError",
    "RepliesToSender",
    "Resizable",
    "ResultBackend",
    "ResultBackendError",
    "ResultBackendSuite",
    "ResultRecord",
    "ResultTimeout",
    "ResultTooLarge",
    "ResultsLost",
    "Retry",
    "RoundTrip",
    "Runner",
    "SerializationError",
    "Serializer",
    "SerializerFactory",
    "SerializerPluginSuite",
    "SerializerSuite",
    "ServerProcess",
    "SettingTypeError",
    "SignatureError",
    "Signer",
    "SignerFactory",
    "SignerSuite",
    "SoftTimeLimitExceeded",
    "StillDown",
    "Subscription",
    "TaskRevoked",
    "ThreadedSubscription",
    "TimeLimitExceeded",
    "Transport",
    "TransportCapabilities",
    "TransportError",
    "TransportFactory",
    "TransportSuite",
    "UnknownComponentError",
    "UnknownSerializer",
    "UnknownSettingError",
    "WorkerLostError",
    "backoff_s",
    "build_options",
    "call_through_outage",
    "check_hash_collisions",
    "check_queue_names",
    "closest",
    "core_imports_beyond",
    "current_pid",
    "decode_record",
    "dict_from_untrusted",
    "encode_record",
    "free_port",
    "frozenset_from_untrusted",
    "hookimpl",
    "in_ci",
    "is_secret_name",
    "mask_text",
    "mask_url",
    "mask_value",
    "port_open",
    "query_options",
    "quote_part",
    "random_hex",
    "require_binary",
    "require_module",
    "serve",
    "set_from_untrusted",
    "split_server_url",
    "states",
    "unique_name",
    "unsettled_return",
    "wait_until",
]

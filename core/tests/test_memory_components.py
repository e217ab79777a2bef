"""Behaviour specific to the in-process memory transport and result backend.

The contracts themselves are checked by ``petiole.testing``'s conformance
suites; these tests cover what only the memory components have: stores shared
by URL name within the process, and how waiters are woken.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from core_helpers import drain_in_threads

from petiole import states
from petiole._builtins import memory
from petiole._builtins.memory import MemoryBackend, MemoryTransport
from petiole.backend import ResultRecord
from petiole.errors import ConfigError, ResultBackendError, TransportError
from petiole.testing import wait_until
from petiole.testing.in_thread import InThread


def unique_url() -> str:
    return f"memory://{uuid.uuid4().hex}"


# -- URLs --------------------------------------------------------------------------------


def test_transports_built_from_the_same_url_share_one_broker() -> None:
    url = unique_url()
    producer = memory.create_transport(url, {})
    consumer = memory.create_transport(url, {})
    producer.publish("q", b"shared")
    [delivery] = consumer.reserve(["q"], max_messages=1, wait_s=0, lease_s=60)
    assert delivery.payload == b"shared"


def test_transports_with_different_names_are_isolated() -> None:
    first = memory.create_transport(unique_url(), {})
    second = memory.create_transport(unique_url(), {})
    first.publish("q", b"mine")
    assert second.size("q") == 0


def test_bare_url_is_the_process_default_broker() -> None:
    first = memory.create_transport("memory://", {})
    second = memory.create_transport("memory://default", {})
    assert isinstance(first, MemoryTransport)
    assert isinstance(second, MemoryTransport)
    assert first.broker is second.broker


def test_directly_built_transports_are_private() -> None:
    first, second = MemoryTransport(), MemoryTransport()
    first.publish("q", b"mine")
    assert second.size("q") == 0


def test_backends_built_from_the_same_url_share_one_store() -> None:
    url = unique_url()
    memory.create_backend(url, {}).store(ResultRecord("t-1", states.SUCCESS), ttl_s=None)
    assert memory.create_backend(url, {}).get("t-1") is not None


@pytest.mark.parametrize("url", ["memory:///path", "memory://name?x=1", "redis://localhost"])
def test_url_that_is_not_a_plain_store_name_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        memory.create_transport(url, {})


def test_any_option_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="poll_interval_ms"):
        memory.create_backend("memory://", {"poll_interval_ms": 5})


# -- transport ---------------------------------------------------------------------------


def test_closing_a_handle_keeps_the_brokers_messages() -> None:
    url = unique_url()
    first = memory.create_transport(url, {})
    first.publish("q", b"kept")
    first.close()
    assert memory.create_transport(url, {}).size("q") == 1
    with pytest.raises(TransportError, match="closed"):
        first.size("q")


def test_publish_wakes_a_waiting_reserver_at_once() -> None:
    transport = MemoryTransport()
    waiting = InThread(lambda: transport.reserve(["q"], max_messages=1, wait_s=60, lease_s=60))
    assert wait_until(lambda: transport.broker.waiting == 1, timeout_s=10)
    published_at = time.monotonic()
    transport.publish("q", b"wake up")
    assert [d.payload for d in waiting.result()] == [b"wake up"]
    assert waiting.finished_at - published_at < 2.0


def test_waiting_reserver_wakes_when_a_delayed_message_falls_due() -> None:
    transport = MemoryTransport()
    transport.publish("q", b"later", delay_s=0.3)
    started = time.monotonic()
    [delivery] = transport.reserve(["q"], max_messages=1, wait_s=30, lease_s=60)
    assert delivery.payload == b"later"
    assert 0.25 <= time.monotonic() - started < 3.0


def test_close_wakes_waiting_reservers_with_no_messages() -> None:
    transport = MemoryTransport()
    waiting = InThread(lambda: transport.reserve(["q"], max_messages=1, wait_s=60, lease_s=60))
    assert wait_until(lambda: transport.broker.waiting == 1, timeout_s=10)
    transport.close()
    assert waiting.result() == []


def test_threads_reserving_concurrently_get_distinct_messages() -> None:
    transport = MemoryTransport()
    for i in range(300):
        transport.publish("q", str(i).encode(), priority=i % 10)
    seen = drain_in_threads(transport, threads=6, wait_s=0.05)
    assert sorted(seen) == sorted(str(i).encode() for i in range(300))
    assert max(seen.values()) == 1


def test_many_delayed_messages_do_not_block_a_due_one() -> None:
    transport = MemoryTransport()
    for i in range(1000):
        transport.publish("q", b"later", delay_s=3600, priority=9, message_id=str(i))
    transport.publish("q", b"now", priority=0)
    [delivery] = transport.reserve(["q"], max_messages=5, wait_s=0, lease_s=60)
    assert delivery.payload == b"now"
    assert transport.size("q") == 1001


# -- result backend -----------------------------------------------------------------------


def test_store_wakes_a_waiting_wait_at_once() -> None:
    backend = MemoryBackend()
    waiting = InThread(lambda: backend.wait(["t-1"], timeout_s=60))
    assert wait_until(lambda: backend.results.waiting == 1, timeout_s=10)
    stored_at = time.monotonic()
    backend.store(ResultRecord("t-1", states.SUCCESS, b"1"), ttl_s=None)
    assert waiting.result().keys() == {"t-1"}
    assert waiting.finished_at - stored_at < 2.0


def test_expired_result_reads_as_absent() -> None:
    backend = MemoryBackend()
    backend.store(ResultRecord("t-1", states.SUCCESS), ttl_s=0.05)
    assert wait_until(lambda: backend.get("t-1") is None, timeout_s=10)
    assert backend.get_many(["t-1"]) == {}


def test_stored_meta_is_a_copy_of_the_callers() -> None:
    backend = MemoryBackend()
    meta: dict[str, Any] = {"children": ["a"]}
    backend.store(ResultRecord("t-1", states.SUCCESS, meta=meta), ttl_s=None)
    meta["children"].append("b")
    record = backend.get("t-1")
    assert record is not None
    assert record.meta == {"children": ["a"]}


def test_meta_that_is_not_json_raises_result_backend_error() -> None:
    backend = MemoryBackend()
    with pytest.raises(ResultBackendError, match="t-1"):
        backend.store(ResultRecord("t-1", states.SUCCESS, meta={"x": object()}), ttl_s=None)


def test_expired_set_starts_empty_on_the_next_add() -> None:
    backend = MemoryBackend()
    backend.set_add("chord", "a", ttl_s=0)
    assert backend.set_add("chord", "b", ttl_s=60) == 1


def test_close_wakes_a_waiting_wait_with_what_it_found() -> None:
    backend = MemoryBackend()
    backend.store(ResultRecord("done", states.SUCCESS), ttl_s=None)
    waiting = InThread(lambda: backend.wait(["done", "never"], timeout_s=60))
    assert wait_until(lambda: backend.results.waiting == 1, timeout_s=10)
    backend.close()
    assert waiting.result().keys() == {"done"}

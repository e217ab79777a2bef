"""The streams layout (``layout = "streams"``): the conformance suites against a
real redis-server, and what they do not cover (the option, leases across
transports, the commands each operation costs)."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from petiole_redis.streams import StreamsTransport
from petiole_redis.testing import RedisServer
from petiole_redis.transport import RedisTransport, create_transport

from petiole import Petiole
from petiole.errors import ConfigError, TransportError
from petiole.testing import BroadcastSuite, TransportSuite, unique_name
from petiole.testing.in_thread import start_worker
from petiole.transport import Transport
from petiole.worker import Worker

STREAMS = {"layout": "streams"}
ROUND_TRIPS = 100


class StreamsConnections:
    """Two streams transports on the session's server: the suite's own and a peer."""

    @pytest.fixture
    def transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, STREAMS)
        yield transport
        transport.close()

    @pytest.fixture
    def peer_transport(self, redis_server: RedisServer) -> Iterator[Transport]:
        transport = create_transport(redis_server.url, STREAMS)
        yield transport
        transport.close()


class TestStreamsTransport(StreamsConnections, TransportSuite):
    pass


class TestStreamsBroadcast(StreamsConnections, BroadcastSuite):
    pass


# -- the option ----------------------------------------------------------------------


def test_layout_streams_in_options_selects_the_streams_transport(
    redis_server: RedisServer,
) -> None:
    transport = create_transport(redis_server.url, STREAMS)
    try:
        assert isinstance(transport, StreamsTransport)
    finally:
        transport.close()


def test_layout_streams_in_the_url_selects_the_streams_transport(
    redis_server: RedisServer,
) -> None:
    transport = create_transport(f"{redis_server.url}?layout=streams", {"layout": "lists"})
    try:
        assert isinstance(transport, StreamsTransport)
    finally:
        transport.close()


def test_layout_defaults_to_streams(redis_server: RedisServer) -> None:
    transport = create_transport(redis_server.url, {})
    try:
        assert isinstance(transport, StreamsTransport)
    finally:
        transport.close()


def test_layout_lists_selects_the_list_layout(redis_server: RedisServer) -> None:
    transport = create_transport(f"{redis_server.url}?layout=lists", {})
    try:
        assert type(transport) is RedisTransport
    finally:
        transport.close()


def test_unknown_layout_is_a_config_error_naming_the_allowed_ones(
    redis_server: RedisServer,
) -> None:
    with pytest.raises(ConfigError) as info:
        create_transport(redis_server.url, {"layout": "zsets"})

    message = str(info.value)
    assert "layout" in message
    assert "'lists'" in message
    assert "'streams'" in message
    assert "zsets" in message


# -- leases across transports ----------------------------------------------------------


@pytest.fixture
def streams(redis_server: RedisServer) -> Iterator[StreamsTransport]:
    transport = StreamsTransport(redis_server.url, {})
    yield transport
    transport.close()


@pytest.fixture
def queue(streams: StreamsTransport) -> Iterator[str]:
    name = unique_name()
    yield name
    streams.purge(name)
    streams.purge_dead_letters(name)


def test_message_of_a_closed_transport_is_redelivered_after_its_lease(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    gone = StreamsTransport(redis_server.url, {})
    streams.publish(queue, b"orphaned")
    [first] = gone.reserve([queue], max_messages=1, wait_s=5, lease_s=1.0)
    gone.close()  # its consumer is gone, never acknowledging

    got = streams.reserve([queue], max_messages=1, wait_s=10, lease_s=30)

    assert [(d.payload, d.delivery_count) for d in got] == [(b"orphaned", 2)]
    assert first.delivery_count == 1
    streams.ack(got[0])
    assert streams.size(queue) == 0


def test_stale_receipt_after_another_transport_took_the_lease_over_is_ignored(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    slow = StreamsTransport(redis_server.url, {})
    try:
        streams.publish(queue, b"slow")
        [stale] = slow.reserve([queue], max_messages=1, wait_s=5, lease_s=1.0)
        [current] = streams.reserve([queue], max_messages=1, wait_s=10, lease_s=30)

        slow.ack(stale)
        assert slow.extend(stale, lease_s=30) is False
        slow.dead_letter(stale, reason="stale")
        slow.nack(stale, requeue=True)

        assert streams.size(queue) == 1
        assert streams.dead_letters(queue) == []
        assert streams.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
        assert streams.extend(current, lease_s=30) is True
        streams.ack(current)
        assert streams.size(queue) == 0
    finally:
        slow.close()


def test_extend_keeps_a_lease_whose_first_length_was_shorter(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    """A lease's length lives in its consumer's name; extending to another
    length moves the entry to the consumer for it, and the receipt stays valid."""
    other = StreamsTransport(redis_server.url, {})
    try:
        streams.publish(queue, b"long")
        [held] = streams.reserve([queue], max_messages=1, wait_s=5, lease_s=0.5)
        assert streams.extend(held, lease_s=60)

        assert other.reserve([queue], max_messages=1, wait_s=1.5, lease_s=30) == []
        streams.ack(held)
        assert streams.size(queue) == 0
    finally:
        other.close()


def test_corrupt_entry_goes_to_the_dead_letter_store_with_its_reason(
    streams: StreamsTransport, queue: str, client: redis.Redis
) -> None:
    stream = f"petiole:stream0:{{{queue}}}"
    client.xadd(stream, {"d": b"no message id, no priority"})
    streams.publish(queue, b"good")

    got = streams.reserve([queue], max_messages=5, wait_s=5, lease_s=30)

    assert [d.payload for d in got] == [b"good"]
    [dead] = streams.dead_letters(queue)
    assert dead.payload == b"no message id, no priority"
    assert "p, m are missing" in dead.reason
    streams.ack(got[0])
    assert streams.size(queue) == 0


def test_first_message_of_a_new_priority_wakes_a_blocked_reserve(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    publisher = StreamsTransport(redis_server.url, {})
    try:
        assert streams.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
        timer = _later(0.3, lambda: publisher.publish(queue, b"urgent", priority=7))
        got = streams.reserve([queue], max_messages=1, wait_s=4, lease_s=30)
        timer.join()

        assert [d.payload for d in got] == [b"urgent"]
    finally:
        publisher.close()


def test_a_sooner_delayed_message_wakes_a_blocked_reserve(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    """Published by another transport: the blocked reader learns the due time
    from the wake, not from its own records, and is not left blocked for 5 s."""
    publisher = StreamsTransport(redis_server.url, {})
    try:
        assert streams.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
        timer = _later(0.2, lambda: publisher.publish(queue, b"soon", delay_s=0.5))
        started = time.monotonic()
        got = streams.reserve([queue], max_messages=1, wait_s=4.5, lease_s=30)
        elapsed = time.monotonic() - started
        timer.join()

        assert [d.payload for d in got] == [b"soon"]
        assert 0.6 <= elapsed <= 2.0
    finally:
        publisher.close()


def test_a_purge_under_a_blocked_reserve_is_not_an_error(
    redis_server: RedisServer, streams: StreamsTransport, queue: str
) -> None:
    """A purge deletes the stream a reader blocks on (the server answers the read
    with UNBLOCKED): the reader makes the group again and reads on, as after NOGROUP."""
    admin = StreamsTransport(redis_server.url, {})
    try:
        assert streams.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []

        def purge_then_publish() -> None:
            admin.purge(queue)
            admin.publish(queue, b"after the purge")

        timer = _later(0.3, purge_then_publish)
        got = streams.reserve([queue], max_messages=1, wait_s=4, lease_s=30)
        timer.join()
        got = got or streams.reserve([queue], max_messages=1, wait_s=4, lease_s=30)

        assert [d.payload for d in got] == [b"after the purge"]
    finally:
        admin.close()


# -- commands per operation --------------------------------------------------------------


class Commands:
    """The server's command counts (``INFO commandstats``) since the last reset."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def reset(self) -> None:
        self.client.config_resetstat()

    def counted(self) -> collections.Counter[str]:
        stats: dict[str, Any] = self.client.info("commandstats")
        calls: collections.Counter[str] = collections.Counter()
        for name, values in stats.items():
            command = name.removeprefix("cmdstat_")
            if not command.startswith("config"):
                calls[command] = int(values["calls"])
        return calls


@pytest.fixture
def counting(own_redis_server: RedisServer) -> Iterator[tuple[StreamsTransport, Commands]]:
    """A transport on a server of the test's own (no other client's commands), with
    the upkeep pushed out of the measured window: it runs on a timer, not per call."""
    transport = StreamsTransport(own_redis_server.url, {})
    transport.tend_interval_s = 3600.0
    # Warm up this thread's connection (its set-up asks INFO), the group, the upkeep
    # and the server's script cache (a first EVALSHA costs a SCRIPT LOAD).
    transport.publish("q", b"warm-up")
    transport.ack(transport.reserve(["q"], max_messages=1, wait_s=5, lease_s=30)[0])
    client = own_redis_server.client()
    yield transport, Commands(client)
    client.close()
    transport.close()


def test_publish_is_one_xadd(counting: tuple[StreamsTransport, Commands]) -> None:
    transport, commands = counting
    commands.reset()

    transport.publish("q", b"x", message_id="t1")

    assert commands.counted() == {"xadd": 1}


def test_publish_with_a_priority_is_one_script_of_two_commands(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    transport.publish("q", b"first", priority=5)  # registers the priority (and wakes)
    commands.reset()

    transport.publish("q", b"x", priority=5)

    assert commands.counted() == {"evalsha": 1, "xadd": 1, "sadd": 1}


def test_reserve_of_one_queue_is_one_xreadgroup(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    transport.publish("q", b"x")
    commands.reset()

    got = transport.reserve(["q"], max_messages=4, wait_s=5, lease_s=30)

    assert [d.payload for d in got] == [b"x"]
    assert commands.counted() == {"xreadgroup": 1}


def test_an_idle_reserve_is_one_blocking_xreadgroup_that_returns_the_message(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    commands.reset()
    timer = _later(0.3, lambda: transport.publish("q", b"late"))

    got = transport.reserve(["q"], max_messages=4, wait_s=4, lease_s=30)
    timer.join()

    assert [d.payload for d in got] == [b"late"]
    calls = commands.counted()
    del calls["info"]  # the timer thread's new connection checks the server once
    assert calls == {"xreadgroup": 1, "xadd": 1}


def test_ack_is_one_script_of_three_commands(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    transport.publish("q", b"x")
    [delivery] = transport.reserve(["q"], max_messages=1, wait_s=5, lease_s=30)
    commands.reset()

    transport.ack(delivery)

    assert commands.counted() == {"evalsha": 1, "xpending": 1, "xack": 1, "xdel": 1}
    assert transport.size("q") == 0


def test_ack_many_checks_each_receipt_with_one_xpending_and_settles_them_together(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    for i in range(5):
        transport.publish("q", b"m%d" % i)
    held = transport.reserve(["q"], max_messages=5, wait_s=5, lease_s=30)
    assert len(held) == 5
    commands.reset()

    transport.ack_many(held)

    assert commands.counted() == {"evalsha": 1, "xpending": 1, "xack": 1, "xdel": 1}
    assert transport.size("q") == 0


def test_ack_many_settles_only_its_own_leases_among_other_workers_entries(
    streams: StreamsTransport, redis_server: RedisServer, queue: str
) -> None:
    """One XPENDING answers for the range a batch's ids span, where another worker's
    entries lie too (70 of them here, more than that answer holds: the ids it leaves
    out are asked about alone)."""
    other = StreamsTransport(redis_server.url, {})
    try:
        for i in range(73):
            streams.publish(queue, b"m%d" % i)
        [first] = streams.reserve([queue], max_messages=1, wait_s=5, lease_s=30)
        theirs = other.reserve([queue], max_messages=70, wait_s=5, lease_s=30)
        mine = [first, *streams.reserve([queue], max_messages=2, wait_s=5, lease_s=30)]
        assert len(theirs) == 70
        assert len(mine) == 3

        streams.ack_many(mine)
        assert streams.size(queue) == 70  # theirs stay leased to them
        other.ack_many([*theirs, first])  # first is acknowledged already: stale
        assert streams.size(queue) == 0
    finally:
        other.close()


def test_ack_and_reserve_is_the_ack_script_and_one_xreadgroup(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    transport.publish("q", b"done")
    [done] = transport.reserve(["q"], max_messages=1, wait_s=5, lease_s=30)
    transport.publish("q", b"next")
    commands.reset()

    got = transport.ack_and_reserve([done], ["q"], max_messages=4, wait_s=5, lease_s=30)

    assert [d.payload for d in got] == [b"next"]
    assert commands.counted() == {
        "evalsha": 1,
        "xpending": 1,
        "xack": 1,
        "xdel": 1,
        "xreadgroup": 1,
    }


def test_ack_and_reserve_after_a_restart_loads_the_ack_script_and_still_reads(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    """A server restarted (or ``SCRIPT FLUSH``ed) answers the ack NOSCRIPT, and
    runs the read behind it all the same: the script is loaded, the ack made
    again, and what the read got is handed out."""
    transport, commands = counting
    transport.publish("q", b"done")
    [done] = transport.reserve(["q"], max_messages=1, wait_s=5, lease_s=30)
    transport.publish("q", b"next")
    commands.client.script_flush()

    got = transport.ack_and_reserve([done], ["q"], max_messages=4, wait_s=5, lease_s=30)

    assert [d.payload for d in got] == [b"next"]
    transport.ack(got[0])
    assert transport.size("q") == 0


def test_ack_and_reserve_on_a_closed_transport_says_the_acks_were_not_made(
    redis_server: RedisServer,
) -> None:
    """A reserve of a closed transport returns nothing, as the contract says; acks
    handed to it are not made, and that must not pass in silence: the worker logs
    them as not acknowledged (they come back when their leases end)."""
    transport = StreamsTransport(redis_server.url, {})
    queue = unique_name()
    transport.publish(queue, b"done")
    [done] = transport.reserve([queue], max_messages=1, wait_s=5, lease_s=30)
    transport.close()

    assert transport.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
    with pytest.raises(TransportError, match="acknowledge messages in a reserve's request"):
        transport.ack_and_reserve([done], [queue], max_messages=1, wait_s=0, lease_s=30)

    other = StreamsTransport(redis_server.url, {})
    try:
        assert other.size(queue) == 1  # still there, leased: back when its lease ends
    finally:
        other.purge(queue)
        other.close()


def test_a_busy_workers_acks_ride_on_its_reserves(own_redis_server: RedisServer) -> None:
    """Round trips one after another: each ack batch, once due, goes in the
    request of the worker's next reserve, none in a request of its own (the
    batcher's thread would send one only after a second window without a reserve)."""
    app = Petiole(
        "streams-acks-ride",
        broker=own_redis_server.url,
        backend=own_redis_server.url,
        config_file=os.devnull,
        ack_batch_window_s=0.2,
    )

    @app.task(name="streams_acks_ride.echo")
    def echo(x: int) -> int:
        return x

    transport = app.transport
    assert isinstance(transport, StreamsTransport)
    calls: collections.Counter[str] = collections.Counter()
    for name in ("ack_many", "ack_and_reserve"):  # counted, then run as they are
        method = getattr(transport, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _method(*args, **kw)

        setattr(transport, name, counted)
    client = own_redis_server.client()
    try:
        with start_worker(app, pool="solo", concurrency=1) as worker:
            started = time.monotonic()
            i = 0
            while calls["ack_and_reserve"] < 2 and time.monotonic() - started < 30:
                assert echo.delay(i).get(timeout=10) == i
                i += 1
            assert calls["ack_and_reserve"] >= 2
            rode, sent_alone = calls["ack_and_reserve"], calls["ack_many"]
        assert worker.counts["success"] == i  # every one acknowledged by the stop
        assert client.xlen("petiole:stream0:{default}") == 0
    finally:
        client.close()
        app.close()
    assert rode > sent_alone


def test_send_reserve_ack_costs_the_transport_six_commands(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    transport, commands = counting
    commands.reset()

    transport.publish("q", b"round trip")
    [delivery] = transport.reserve(["q"], max_messages=4, wait_s=5, lease_s=30)
    transport.ack(delivery)

    assert sum(commands.counted().values()) == 6


def _later(delay_s: float, action: Callable[[], object]) -> threading.Timer:
    """Run ``action`` on a timer thread; the caller joins it."""
    timer = threading.Timer(delay_s, action)
    timer.start()
    return timer


def test_messages_read_beyond_max_messages_are_the_next_reserves_first(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    """A read that blocks at once over several streams (the last look found them
    empty) gets up to COUNT from each: the extra stays leased here, in order, and
    the next reserve hands it out without asking the server."""
    transport, commands = counting
    assert transport.reserve(["a", "b"], max_messages=1, wait_s=0, lease_s=30) == []
    transport.publish("b", b"second")
    transport.publish("a", b"first")

    [first] = transport.reserve(["a", "b"], max_messages=1, wait_s=5, lease_s=30)
    commands.reset()
    [second] = transport.reserve(["a", "b"], max_messages=1, wait_s=5, lease_s=30)

    assert (first.queue, first.payload) == ("a", b"first")
    assert (second.queue, second.payload) == ("b", b"second")
    assert commands.counted() == {}
    transport.ack_many([first, second])
    assert transport.size("a") == transport.size("b") == 0


def test_messages_read_ahead_go_back_to_their_queues_when_the_transport_closes(
    redis_server: RedisServer,
) -> None:
    first = StreamsTransport(redis_server.url, {})
    a, b = unique_name(), unique_name()
    try:
        assert first.reserve([a, b], max_messages=1, wait_s=0, lease_s=300) == []
        first.publish(b, b"read ahead")
        first.publish(a, b"handed out")
        [handed] = first.reserve([a, b], max_messages=1, wait_s=5, lease_s=300)
        assert handed.payload == b"handed out"
        first.ack(handed)
    finally:
        first.close()
    second = StreamsTransport(redis_server.url, {})
    try:
        # At once, not after the 300 s lease the first transport took.
        [back] = second.reserve([a, b], max_messages=1, wait_s=0, lease_s=30)
        assert back.payload == b"read ahead"
        second.ack(back)
    finally:
        second.close()


def test_the_upkeep_deletes_the_consumers_of_a_transport_gone_with_nothing_pending(
    redis_server: RedisServer, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from petiole_redis import streams as streams_module

    monkeypatch.setattr(streams_module, "_FORGET_CONSUMER_MS", 0)  # unseen for 5 min
    queue = unique_name()
    # A killed worker's transport: it never closes (which would delete them itself).
    gone = StreamsTransport(redis_server.url, {})
    gone.publish(queue, b"x")
    [delivery] = gone.reserve([queue], max_messages=1, wait_s=0, lease_s=30)
    gone.ack(delivery)
    stream = f"petiole:stream0:{{{queue}}}"

    def names() -> set[str]:
        return {c["name"].decode() for c in client.xinfo_consumers(stream, "petiole")}

    assert any(name.startswith(gone.instance) for name in names())
    live = StreamsTransport(redis_server.url, {})
    try:
        assert live.reserve([queue], max_messages=1, wait_s=0, lease_s=30) == []
        assert not any(name.startswith(gone.instance) for name in names())
    finally:
        live.purge(queue)
        live.close()
        gone.close()


def test_closing_deletes_the_transports_consumers_that_hold_nothing(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    idle, busy = unique_name(), unique_name()
    transport = StreamsTransport(redis_server.url, {})
    transport.publish(idle, b"done")
    transport.publish(busy, b"held")
    [done] = transport.reserve([idle], max_messages=1, wait_s=0, lease_s=30)
    transport.ack(done)
    [held] = transport.reserve([busy], max_messages=1, wait_s=0, lease_s=30)
    assert held.payload == b"held"

    transport.close()

    def consumers(queue: str) -> list[str]:
        stream = f"petiole:stream0:{{{queue}}}"
        return [c["name"].decode() for c in client.xinfo_consumers(stream, "petiole")]

    assert consumers(idle) == []
    # One still holding an entry stays, for another worker to take over.
    assert [name.split("~")[0] for name in consumers(busy)] == [transport.instance]
    client.delete(f"petiole:stream0:{{{idle}}}", f"petiole:stream0:{{{busy}}}")


def test_an_idle_reserve_blocks_past_the_upkeep_interval(
    counting: tuple[StreamsTransport, Commands],
) -> None:
    """The interval paces a working reserver's upkeep; an idle one blocks in one
    read for up to 5 s (or until something comes due), then runs it once."""
    transport, commands = counting
    transport.tend_interval_s = 2.0
    commands.reset()

    assert transport.reserve(["q"], max_messages=4, wait_s=3.0, lease_s=30) == []

    assert commands.counted() == {"xreadgroup": 1}


def test_a_worker_round_trip_costs_at_most_ten_commands(own_redis_server: RedisServer) -> None:
    """Send, run, store the result, wait for it: issue 19's target for W3 (the
    list layout takes about 22). Counts vary with how acks are batched, not timing
    of the assertions: the bound has room for that."""
    app = Petiole(
        "streams-round-trips",
        broker=f"{own_redis_server.url}?layout=streams",
        backend=own_redis_server.url,
        config_file=os.devnull,
    )

    @app.task(name="streams_round_trips.echo")
    def echo(x: int) -> int:
        return x

    worker = Worker(app, pool="threads")
    worker.start()
    client = own_redis_server.client()
    try:
        assert echo.delay(-1).get(timeout=10) == -1  # warm up connections and scripts
        commands = Commands(client)
        commands.reset()
        for i in range(ROUND_TRIPS):
            assert echo.delay(i).get(timeout=10) == i
        per_task = sum(commands.counted().values()) / ROUND_TRIPS
    finally:
        worker.stop()
        client.close()
        app.close()

    assert per_task <= 10.0

"""Which Python AMQP client for petiole-amqp: publish-with-confirms and consume throughput.

    python benchmarks/amqp_clients/run.py      (about 3-5 minutes; every cell has a timeout)

Starts its own RabbitMQ node (``petiole_amqp.testing.RabbitServer``: 127.0.0.1,
free ports, a temporary directory), then, for each repetition, each queue type
(a durable quorum queue, a durable classic queue) and each client in turn
(interleaved, so noise falls on all of them), runs one *cell* in a subprocess of
its own (its own interpreter and, for the asyncio client, its own event loop):

* **confirm 1x1**: ``SINGLE`` persistent messages, each publish waiting for the
  broker's confirm before the next (what a lone ``delay()`` costs);
* **confirm x100**: ``MESSAGES`` persistent messages in batches of 100 published
  back to back, then waiting until the broker confirmed all 100 (a bulk send);
* **consume**: the ``MESSAGES`` + ``SINGLE`` messages now in the queue, consumed
  with manual acknowledgement (one ``basic.ack`` per message) and prefetch 100,
  timed from the first delivery to the last ack.

The candidates: pika (``BlockingConnection``; its confirm mode waits for every
publish, so the batch uses pika's ``SelectConnection``, the callback API the
blocking one is built on), py-amqp (the ``amqp`` package kombu uses) and aio-pika
(over aiormq, asyncio). Bodies are 100 bytes. Figures are messages per second,
the median over the repetitions. Environment: ``BENCH_REPS`` (default 2),
``BENCH_MESSAGES`` (default 20000), ``BENCH_SINGLE`` (default 2000),
``BENCH_CLIENTS`` (default ``pika,py-amqp,aio-pika``), ``BENCH_JSON`` (write the
raw figures there).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

BODY = b"x" * 100
BATCH = 100
PREFETCH = 100
CELL_TIMEOUT_S = 240.0
FIGURES = ("confirm_1x1", "confirm_x100", "consume")
QUEUE_TYPES = ("quorum", "classic")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# -- the cells: one client, one queue type, in a subprocess ----------------------------------


Cell = Callable[[int, str, int, int], dict[str, float]]


def _rate(count: int, elapsed_s: float) -> float:
    return count / elapsed_s if elapsed_s > 0 else float("inf")


def cell_pika(port: int, queue: str, messages: int, single: int) -> dict[str, float]:
    import pika

    params = pika.ConnectionParameters(
        "127.0.0.1", port, credentials=pika.PlainCredentials("guest", "guest")
    )
    props = pika.BasicProperties(delivery_mode=2)
    figures: dict[str, float] = {}

    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()  # every basic_publish now returns once confirmed
    started = time.perf_counter()
    for _ in range(single):
        channel.basic_publish("", queue, BODY, props, mandatory=False)
    figures["confirm_1x1"] = _rate(single, time.perf_counter() - started)
    connection.close()

    # Batches: pika's callback API (SelectConnection), as an I/O thread would run it.
    state = {"sent": 0, "confirmed": 0, "started": 0.0, "elapsed": 0.0}

    def publish_batch(ch: pika.channel.Channel) -> None:
        for _ in range(min(BATCH, messages - state["sent"])):
            ch.basic_publish("", queue, BODY, props)
            state["sent"] += 1

    def on_confirm(frame: pika.frame.Method, ch: pika.channel.Channel, conn: object) -> None:
        tag = frame.method.delivery_tag
        state["confirmed"] = tag if frame.method.multiple else max(state["confirmed"], tag)
        if not isinstance(frame.method, pika.spec.Basic.Ack):
            raise RuntimeError("nacked")
        if state["confirmed"] == state["sent"]:
            if state["sent"] >= messages:
                state["elapsed"] = time.perf_counter() - state["started"]
                conn.close()  # type: ignore[attr-defined]
            else:
                publish_batch(ch)

    def on_channel(ch: pika.channel.Channel) -> None:
        def on_select_ok(_frame: object) -> None:
            state["started"] = time.perf_counter()
            publish_batch(ch)

        ch.confirm_delivery(lambda f: on_confirm(f, ch, ch.connection), callback=on_select_ok)

    select = pika.SelectConnection(
        params,
        on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_close_callback=lambda conn, reason: conn.ioloop.stop(),
    )
    select.ioloop.start()
    if state["confirmed"] != messages:
        raise RuntimeError(f"pika batch: {state['confirmed']} of {messages} confirmed")
    figures["confirm_x100"] = _rate(messages, state["elapsed"])

    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    total = messages + single
    got = {"n": 0, "started": 0.0}

    def on_message(ch: object, method: pika.spec.Basic.Deliver, _p: object, _b: bytes) -> None:
        if got["n"] == 0:
            got["started"] = time.perf_counter()
        channel.basic_ack(method.delivery_tag)
        got["n"] += 1
        if got["n"] == total:
            channel.stop_consuming()

    channel.basic_consume(queue, on_message, auto_ack=False)
    channel.start_consuming()
    figures["consume"] = _rate(total - 1, time.perf_counter() - got["started"])
    connection.close()
    return figures


def cell_py_amqp(port: int, queue: str, messages: int, single: int) -> dict[str, float]:
    import amqp

    figures: dict[str, float] = {}
    connection = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    channel.confirm_select()
    started = time.perf_counter()
    for _ in range(single):
        # The library's own way: publish, then wait for the ack (Connection(confirm_publish=True)).
        channel.basic_publish_confirm(amqp.Message(BODY, delivery_mode=2), "", queue)
    figures["confirm_1x1"] = _rate(single, time.perf_counter() - started)

    confirmed = {"tag": 0}

    def on_ack(tag: int, multiple: bool) -> None:
        confirmed["tag"] = tag if multiple else max(confirmed["tag"], tag)

    def on_nack(tag: int, multiple: bool) -> None:
        raise RuntimeError("nacked")

    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_nack)
    sent = single  # delivery tags count every publish since confirm.select
    started = time.perf_counter()
    for _ in range(0, messages, BATCH):
        for _ in range(BATCH):
            channel.basic_publish(amqp.Message(BODY, delivery_mode=2), "", queue)
            sent += 1
        while confirmed["tag"] < sent:
            connection.drain_events(timeout=30)
    figures["confirm_x100"] = _rate(messages, time.perf_counter() - started)
    connection.close()

    connection = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    channel.basic_qos(0, PREFETCH, False)
    total = messages + single
    got = {"n": 0, "started": 0.0}

    def on_message(message: amqp.Message) -> None:
        if got["n"] == 0:
            got["started"] = time.perf_counter()
        channel.basic_ack(message.delivery_tag)
        got["n"] += 1

    channel.basic_consume(queue, callback=on_message, no_ack=False)
    while got["n"] < total:
        connection.drain_events(timeout=30)
    figures["consume"] = _rate(total - 1, time.perf_counter() - got["started"])
    connection.close()
    return figures


def cell_aio_pika(port: int, queue: str, messages: int, single: int) -> dict[str, float]:
    import asyncio

    import aio_pika

    async def run() -> dict[str, float]:
        figures: dict[str, float] = {}
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        connection = await aio_pika.connect(url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange

        def message() -> aio_pika.Message:
            return aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

        started = time.perf_counter()
        for _ in range(single):
            await exchange.publish(message(), queue)
        figures["confirm_1x1"] = _rate(single, time.perf_counter() - started)

        started = time.perf_counter()
        for _ in range(0, messages, BATCH):
            await asyncio.gather(*(exchange.publish(message(), queue) for _ in range(BATCH)))
        figures["confirm_x100"] = _rate(messages, time.perf_counter() - started)
        await connection.close()

        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        source = await channel.get_queue(queue, ensure=False)
        total = messages + single
        done = asyncio.get_running_loop().create_future()
        got = {"n": 0, "started": 0.0}

        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            if got["n"] == 0:
                got["started"] = time.perf_counter()
            await incoming.ack()
            got["n"] += 1
            if got["n"] == total and not done.done():
                done.set_result(None)

        await source.consume(on_message, no_ack=False)
        await asyncio.wait_for(done, timeout=CELL_TIMEOUT_S)
        figures["consume"] = _rate(total - 1, time.perf_counter() - got["started"])
        await connection.close()
        return figures

    return asyncio.run(run())


CELLS: dict[str, Cell] = {
    "pika": cell_pika,
    "py-amqp": cell_py_amqp,
    "aio-pika": cell_aio_pika,
}
DISTS = {"pika": ("pika",), "py-amqp": ("amqp",), "aio-pika": ("aio-pika", "aiormq")}


def _declare(port: int, queue: str, queue_type: str) -> None:
    import amqp

    connection = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    connection.connect()
    channel = connection.channel()
    channel.queue_declare(
        queue, durable=True, auto_delete=False, arguments={"x-queue-type": queue_type}
    )
    connection.close()


def _delete(port: int, queue: str) -> None:
    import amqp

    connection = amqp.Connection(f"127.0.0.1:{port}", userid="guest", password="guest")
    connection.connect()
    connection.channel().queue_delete(queue)
    connection.close()


def run_cell(argv: list[str]) -> None:
    client, port, queue, queue_type, messages, single = argv
    _declare(int(port), queue, queue_type)
    try:
        figures = CELLS[client](int(port), queue, int(messages), int(single))
    finally:
        _delete(int(port), queue)
    print(json.dumps(figures))


# -- the runner ---------------------------------------------------------------------------


def _version(client: str) -> str:
    found = []
    for dist in DISTS[client]:
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            return ""
    return ", ".join(found)


def main() -> None:
    from petiole_amqp.testing import RabbitServer

    reps = _env_int("BENCH_REPS", 2)
    messages = _env_int("BENCH_MESSAGES", 20000)
    single = _env_int("BENCH_SINGLE", 2000)
    wanted = os.environ.get("BENCH_CLIENTS", ",".join(CELLS)).split(",")
    clients = []
    for client in wanted:
        version = _version(client)
        if not version:
            print(f"{client}: not installed, skipped (pip install {' '.join(DISTS[client])})")
            continue
        print(f"{client}: {version}")
        clients.append(client)
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        q: {c: [] for c in clients} for q in QUEUE_TYPES
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="amqp-bench-") as tmp:
        server = RabbitServer(Path(tmp))
        try:
            server.start()
            version = server.ctl("eval", "rabbit_misc:version().").strip().strip('"')
            print(f"RabbitMQ {version}, node started in {server.last_start_s:.1f} s")
            print(f"{messages} messages (confirm 1x1: {single}), {reps} runs, median\n")
            for rep in range(reps):
                for queue_type in QUEUE_TYPES:
                    for client in clients:
                        queue = f"bench-{client}-{queue_type}-{rep}"
                        argv = [client, str(server.port), queue, queue_type]
                        argv += [str(messages), str(single)]
                        done = subprocess.run(
                            [sys.executable, __file__, "--cell", *argv],
                            capture_output=True,
                            text=True,
                            timeout=CELL_TIMEOUT_S,
                            check=False,
                        )
                        if done.returncode != 0:
                            sys.exit(f"{client} / {queue_type} failed:\n{done.stderr}")
                        figures = json.loads(done.stdout.strip().splitlines()[-1])
                        results[queue_type][client].append(figures)
                        shown = "  ".join(f"{k} {v:,.0f}/s" for k, v in figures.items())
                        print(f"  run {rep + 1} {queue_type:7} {client:9} {shown}", flush=True)
        finally:
            server.close()
    print("\nmessages per second, median of the runs:\n")
    print(table(results))
    print(f"\n{time.monotonic() - began:.0f} s in all")
    if path := os.environ.get("BENCH_JSON"):
        Path(path).write_text(json.dumps(results, indent=2))


def table(results: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    header = "| queue | client | confirm 1x1 | confirm x100 | consume, ack each |"
    lines = [header, "|---|---|---:|---:|---:|"]
    for queue_type, by_client in results.items():
        for client, runs in by_client.items():
            if not runs:
                continue
            medians = [statistics.median(run[f] for run in runs) for f in FIGURES]
            cells = " | ".join(f"{m:,.0f}" for m in medians)
            lines.append(f"| {queue_type} | {client} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"]:
        run_cell(sys.argv[2:])
    else:
        main()

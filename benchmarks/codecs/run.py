"""Serializers x codecs x payloads, and signers: what a message costs to encode
and decode through Petiole's own components, and its bytes on the wire; then the
body size from which compressing pays (``compression_min_bytes``).

    nox -s bench -- codecs        (or: python benchmarks/codecs/run.py; about a minute)

Everything runs in this process, one call at a time; each figure is the best of
up to five rounds within a time budget (``BENCH_BUDGET_MS`` per figure, default
200; ``BENCH_SWEEP_BUDGET_MS`` for the threshold sweep, default 100).
``BENCH_JSON=path`` writes the raw figures.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import benchkit  # noqa: E402
import payloads  # noqa: E402
import signers  # noqa: E402
from pipeline import HEADERS, Pipeline, framer, verifier  # noqa: E402
from systemkit import env_int  # noqa: E402
from timing import best_us  # noqa: E402

from petiole import Petiole  # noqa: E402
from petiole.envelope import IDENTITY, Envelope, Frame  # noqa: E402
from petiole.errors import PetioleError  # noqa: E402
from petiole.stages import Signer  # noqa: E402

SERIALIZERS = ("json", "pickle", "msgpack", "yaml")  # msgpack, yaml: when installed
CODECS = (IDENTITY, "zlib", "bzip2", "lzma", "zstd")  # zstd: when installed
PAYLOADS: dict[str, Callable[[], list[Any]]] = {
    "tiny": payloads.tiny,
    "10 KiB": lambda: payloads.structured(10 * 1024),
    "1 MiB bytes": payloads.random_bytes,
}
SWEEP_BYTES = tuple(128 << i for i in range(10))  # 128 B to 64 KiB of JSON
SIGNED_BODY_BYTES = (1024, 10 * 1024)
# What a byte on the wire is worth, in time: a message crosses the network twice
# (producer to broker, broker to worker), each byte taking 8 bits / link speed.
HOPS = 2
LINKS_BITS_PER_S = {"10 Gbit/s": 10e9, "1 Gbit/s": 1e9, "100 Mbit/s": 100e6}
# The threshold is chosen at this price: someone who sets `compression` values
# bytes (a remote or metered broker, its memory, a message size limit); on a
# faster link only zstd pays at all, and only on large bodies (the crossover table).
REFERENCE_LINK = "100 Mbit/s"
# The general-purpose codecs a default serves; bzip2 and lzma are chosen for their
# ratio on large bodies, and say so in their own figures.
THRESHOLD_CODECS = ("zlib", "zstd")
DISTRIBUTIONS = (
    "petiole",
    "petiole-msgpack",
    "petiole-yaml",
    "petiole-zstd",
    "petiole-auth",
    "msgpack",
    "PyYAML",
    "zstandard",
    "cryptography",
)


@dataclass(frozen=True)
class Cell:
    """One serializer x codec x payload: µs per message and bytes on the wire."""

    serializer: str
    codec: str
    payload: str
    encode_us: float
    decode_us: float
    wire_bytes: int


def main() -> None:
    started = time.monotonic()
    budget_s = env_int("BENCH_BUDGET_MS", 200) / 1000
    sweep_budget_s = env_int("BENCH_SWEEP_BUDGET_MS", 100) / 1000
    app = signers.app()
    names = installed(app.serializer, SERIALIZERS)
    codecs = installed(app.codec, CODECS)
    print("versions:", json.dumps(benchkit.versions(DISTRIBUTIONS)))
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, load {os.getloadavg()}")
    print(f"serializers: {', '.join(names)}; codecs: {', '.join(codecs)}", flush=True)

    cells = measure_matrix(app, names, codecs, budget_s)
    print("\n".join(matrix_table(cells, names, codecs)), flush=True)

    sweep = measure_sweep(app, codecs, sweep_budget_s)
    print("\n".join(sweep_table(sweep, codecs)))
    print("\n".join(crossover_table(sweep, codecs)))
    print(recommendation(sweep, codecs), flush=True)

    with tempfile.TemporaryDirectory(prefix="petiole-bench-keys-") as keys:
        built, missing = signers.build(Path(keys))
        signing = measure_signing(app, built, budget_s)
    if missing:
        print(f"\nsigners of petiole-auth not measured: {missing}")
    print("\n".join(signing_table(signing)))

    print(f"\n(total {time.monotonic() - started:.0f} s; load now {os.getloadavg()})")
    if os.environ.get("BENCH_JSON"):
        raw = {"matrix": [asdict(c) for c in cells], "sweep": sweep, "signing": signing}
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(raw, indent=2))


def installed(lookup: Callable[[str], object], wanted: Iterable[str]) -> list[str]:
    """The components of ``wanted`` this environment has; says which it lacks."""
    found = []
    for name in wanted:
        try:
            lookup(name)
        except PetioleError as exc:
            print(f"not measured, not installed: {name} ({type(exc).__name__})")
            continue
        found.append(name)
    return found


# -- the matrix ---------------------------------------------------------------------------


def measure_matrix(
    app: Petiole, names: Sequence[str], codecs: Sequence[str], budget_s: float
) -> list[Cell]:
    cells = []
    for payload, make in PAYLOADS.items():
        args = make()
        for serializer in names:
            for codec in codecs:
                pipeline = Pipeline(app, serializer, codec)
                cells.append(measure_cell(pipeline, payload, args, budget_s))
    return cells


def measure_cell(pipeline: Pipeline, payload: str, args: list[Any], budget_s: float) -> Cell:
    encode = pipeline.encoder(args)
    message = encode()
    decode = pipeline.decoder(message)
    if decode() != [args, {}]:
        raise AssertionError(f"{pipeline.serializer} + {pipeline.codec} changed the {payload}")
    return Cell(
        pipeline.serializer,
        pipeline.codec,
        payload,
        best_us(encode, budget_s),
        best_us(decode, budget_s),
        len(message),
    )


def matrix_table(cells: Sequence[Cell], names: Sequence[str], codecs: Sequence[str]) -> list[str]:
    """One row per serializer x codec; per payload, encode µs, decode µs, wire bytes."""
    by_key = {(c.serializer, c.codec, c.payload): c for c in cells}
    head = "| serializer | codec |"
    rule = "|---|---|"
    for payload in PAYLOADS:
        head += f" {payload}: encode µs | decode µs | bytes |"
        rule += "---:|---:|---:|"
    lines = [
        "",
        "Per message, encode = serialize + compress + frame; decode = parse + "
        "decompress + deserialize (best of N)",
        "",
        head,
        rule,
    ]
    for serializer in names:
        for codec in codecs:
            row = f"| {serializer} | {'none' if codec == IDENTITY else codec} |"
            for payload in PAYLOADS:
                c = by_key[serializer, codec, payload]
                row += f" {us(c.encode_us)} | {us(c.decode_us)} | {c.wire_bytes:,} |"
            lines.append(row)
    return lines


def us(micros: float) -> str:
    return f"{micros:,.1f}" if micros < 100 else f"{micros:,.0f}"


# -- the threshold sweep ------------------------------------------------------------------


def measure_sweep(app: Petiole, codecs: Sequence[str], budget_s: float) -> list[dict[str, Any]]:
    """JSON bodies from 128 B to 64 KiB (the same document grown): per size and
    codec, the codec's own encode + decode µs and the message's wire bytes.

    The codec is timed alone: what it adds to a message is its own two calls
    (framing fewer bytes is, if anything, cheaper), and the difference of two
    whole-pipeline figures would drown it in the serializer's noise."""
    limit = app.settings.max_body_bytes
    rows: list[dict[str, Any]] = []
    for target in SWEEP_BYTES:
        args = payloads.structured(target)
        body = app.serializer("json").dumps([args, {}])
        if rows and len(body) == rows[-1]["body_bytes"]:  # targets below one line item
            continue
        row: dict[str, Any] = {"body_bytes": len(body)}
        for name in codecs:
            codec = app.codec(name)
            packed = codec.encode(body)
            if codec.decode(packed, max_output_bytes=limit) != body:
                raise AssertionError(f"{name} changed a {len(body)}-byte body")
            if name == IDENTITY:  # no codec: nothing called, nothing added
                micros = 0.0
            else:
                micros = best_us(partial(codec.encode, body), budget_s) + best_us(
                    partial(codec.decode, packed, max_output_bytes=limit), budget_s
                )
            wire = len(Envelope(HEADERS, packed, "application/json", name).to_bytes())
            row[name] = {"us": micros, "wire_bytes": wire}
        rows.append(row)
    return rows


def ns_per_byte_saved(row: dict[str, Any], codec: str) -> float | None:
    """The codec's encode + decode time per byte it saves on the wire; None when
    it saves nothing."""
    saved = row[IDENTITY]["wire_bytes"] - row[codec]["wire_bytes"]
    return None if saved <= 0 else row[codec]["us"] * 1000 / saved


def link_ns_per_byte(bits_per_s: float) -> float:
    """What one byte of a message costs on the wire over ``HOPS`` hops, in ns."""
    return HOPS * 8 / bits_per_s * 1e9


def crossover(sweep: Sequence[dict[str, Any]], codec: str, price_ns: float) -> int | None:
    """The smallest body size from which, at every larger size swept, the codec's
    time per byte saved is at most ``price_ns``; None when it does not pay even at
    the largest size."""
    found = None
    for row in reversed(sweep):
        cost = ns_per_byte_saved(row, codec)
        if cost is None or cost > price_ns:
            break
        found = row["body_bytes"]
    return found


def sweep_table(sweep: Sequence[dict[str, Any]], codecs: Sequence[str]) -> list[str]:
    packers = [c for c in codecs if c != IDENTITY]
    lines = [
        "",
        "JSON body sweep: the codec's encode + decode ns per byte it saves on the wire "
        "(message bytes with the codec / without)",
        "",
        "| body bytes | message bytes | " + " | ".join(packers) + " |",
        "|---:|---:|" + "---:|" * len(packers),
    ]
    for row in sweep:
        cells = []
        for codec in packers:
            cost = ns_per_byte_saved(row, codec)
            ratio = row[codec]["wire_bytes"] / row[IDENTITY]["wire_bytes"]
            cells.append(f"{'saves nothing' if cost is None else f'{cost:,.1f}'} ({ratio:.2f})")
        lines.append(
            f"| {row['body_bytes']:,} | {row[IDENTITY]['wire_bytes']:,} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def crossover_table(sweep: Sequence[dict[str, Any]], codecs: Sequence[str]) -> list[str]:
    packers = [c for c in codecs if c != IDENTITY]
    largest = sweep[-1]["body_bytes"]
    lines = [
        "",
        f"Compressing pays from (body bytes; a byte's price = {HOPS} hops on the link)",
        "",
        "| link | ns per byte | " + " | ".join(packers) + " |",
        "|---|---:|" + "---:|" * len(packers),
    ]
    for link, bits in LINKS_BITS_PER_S.items():
        price = link_ns_per_byte(bits)
        found = [crossover(sweep, codec, price) for codec in packers]
        shown = [f"> {largest:,}" if size is None else f"{size:,}" for size in found]
        lines.append(f"| {link} | {price:.1f} | " + " | ".join(shown) + " |")
    return lines


def recommendation(sweep: Sequence[dict[str, Any]], codecs: Sequence[str]) -> str:
    """The ``compression_min_bytes`` these figures support: the largest crossover of
    :data:`THRESHOLD_CODECS` at :data:`REFERENCE_LINK`, rounded up to a power of two
    (a margin for noise, and the sweep's sizes are coarse below 1 KiB)."""
    price = link_ns_per_byte(LINKS_BITS_PER_S[REFERENCE_LINK])
    found = {c: crossover(sweep, c, price) for c in THRESHOLD_CODECS if c in codecs}
    shown = ", ".join(f"{c} {'never' if n is None else f'{n:,} B'}" for c, n in found.items())
    sizes = [n for n in found.values() if n is not None]
    if not sizes:
        return f"\ncompression_min_bytes: no crossover at {REFERENCE_LINK} ({shown})"
    threshold = 1 << (max(sizes) - 1).bit_length()
    return (
        f"\ncompression_min_bytes = {threshold:,}: compressing pays from {shown} "
        f"(codec encode + decode per byte saved <= {price:.0f} ns, {REFERENCE_LINK} x {HOPS} hops)"
    )


# -- signing ------------------------------------------------------------------------------


def measure_signing(
    app: Petiole, built: dict[str, Signer], budget_s: float
) -> list[dict[str, Any]]:
    """Per signer and JSON body size: frame + sign and cut + verify µs, and what
    each adds over the unsigned framing (frame; cut), which is measured first."""
    rows: list[dict[str, Any]] = []
    for size in SIGNED_BODY_BYTES:
        body = app.serializer("json").dumps([payloads.structured(size), {}])
        base_sign = best_us(framer(body, None), budget_s)
        base_verify = best_us(verifier(framer(body, None)(), None), budget_s)
        rows.append(_signing_row("none (unsigned, framing v1)", size, base_sign, base_verify, 0))
        for label, signer in built.items():
            message = framer(body, signer)()
            sign_us = best_us(framer(body, signer), budget_s)
            verify_us = best_us(verifier(message, signer), budget_s)
            row = _signing_row(label, size, sign_us, verify_us, len(Frame.parse(message).signature))
            row["sign_added_us"] = sign_us - base_sign
            row["verify_added_us"] = verify_us - base_verify
            rows.append(row)
    return rows


def _signing_row(
    label: str, size: int, sign_us: float, verify_us: float, signature_bytes: int
) -> dict[str, Any]:
    return {
        "signer": label,
        "body_bytes": size,
        "sign_us": sign_us,
        "verify_us": verify_us,
        "sign_added_us": 0.0,
        "verify_added_us": 0.0,
        "signature_bytes": signature_bytes,
    }


def signing_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    head = "| signer | signature bytes |"
    rule = "|---|---:|"
    for size in SIGNED_BODY_BYTES:
        head += f" {size // 1024} KiB: sign µs (added) | verify µs (added) |"
        rule += "---:|---:|"
    lines = [
        "",
        "Signing per message: frame + sign, and cut + verify (JSON body, serialized "
        "beforehand); added = over the unsigned framing",
        "",
        head,
        rule,
    ]
    for label in dict.fromkeys(r["signer"] for r in rows):
        mine = [r for r in rows if r["signer"] == label]
        row = f"| {label} | {mine[0]['signature_bytes']} |"
        for r in mine:
            row += (
                f" {us(r['sign_us'])} ({r['sign_added_us']:+,.1f}) |"
                f" {us(r['verify_us'])} ({r['verify_added_us']:+,.1f}) |"
            )
        lines.append(row)
    return lines


if __name__ == "__main__":
    main()

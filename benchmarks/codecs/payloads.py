"""The task bodies measured: deterministic, so every run and every machine sees
the same bytes (a seeded generator, never the clock or ``os.urandom``)."""

from __future__ import annotations

import json
import random
from typing import Any

SEED = 17  # the number: any fixed seed will do
MIB = 1 << 20
_WORDS = (
    *("order", "shipped", "pending", "invoice", "customer", "warehouse", "parcel", "refund"),
    *("express", "standard", "north", "south", "east", "west", "priority", "fragile"),
    *("return", "gift", "note", "label", "carrier", "tracking", "delivered", "delayed"),
    *("address", "street", "city", "postcode", "country", "phone", "email"),
)


def tiny() -> list[Any]:
    """A task's arguments at their smallest: two small ints, ``add(2, 3)``."""
    return [2, 3]


def structured(target_bytes: int, *, seed: int = SEED) -> list[Any]:
    """One argument, a realistic document (an order export: strings, ints, floats,
    booleans, nulls, nested objects and lists) whose compact JSON is about
    ``target_bytes``: a few top-level fields below about 130 bytes, then line items
    of about 250 bytes each, so the sizes a sweep gets are coarse below 1 KiB."""
    rng = random.Random(seed)
    fields: list[tuple[str, Any]] = [
        ("export_id", f"exp-{rng.getrandbits(48):012x}"),
        ("generated_at", "2026-12-02T14:15:48Z"),
        ("source", {"system": "orders", "region": rng.choice(_WORDS), "version": 3}),
    ]
    document: dict[str, Any] = {}
    for key, value in fields:  # the small sizes of a sweep: a few fields only
        document[key] = value
        if _json_size(document) >= target_bytes:
            return [document]
    items: list[Any] = []
    document["items"] = items
    while True:
        items.append(_line_item(rng, len(items)))
        if _json_size(document) >= target_bytes:
            return [document]


def _json_size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def _line_item(rng: random.Random, index: int) -> dict[str, Any]:
    return {
        "id": 100_000 + index,
        "sku": f"SKU-{rng.randrange(10**6):06d}",
        "title": " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 6))),
        "quantity": rng.randrange(1, 20),
        "unit_price": round(rng.uniform(0.5, 500.0), 2),
        "in_stock": rng.random() < 0.8,
        "discount": None if rng.random() < 0.7 else round(rng.random() / 4, 3),
        "tags": [rng.choice(_WORDS) for _ in range(rng.randrange(0, 4))],
        "ship_to": {
            "city": rng.choice(_WORDS).title(),
            "postcode": f"{rng.randrange(10**5):05d}",
            "country": rng.choice(("FR", "DE", "GB", "US", "JP", "BR")),
        },
    }


def random_bytes(size: int = MIB, *, seed: int = SEED) -> list[Any]:
    """One ``bytes`` argument of ``size`` incompressible bytes (a file, an image)."""
    return [random.Random(seed).randbytes(size)]

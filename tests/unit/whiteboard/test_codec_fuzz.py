"""Fuzz: 100,000+ damaged slots derived from valid ones; the decoder only ever raises SlotError.

Seeded, so a failure reproduces. Damage kinds: bit flips anywhere, single bit flips in the
header (crc32 detects every one of those, so each must be refused), truncation (raw and
zero-padded, as a torn or short read gives), random byte overwrites, random bytes, and
valid slots found under the wrong host id.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from he_ha.whiteboard import (
    BLOCK_BYTES,
    SLOT_BYTES,
    CorruptSlot,
    HostSlot,
    SlotError,
    SlotOfAnotherHost,
    decode_global_block,
    decode_host_slot,
    encode_host_slot,
    format_extra,
)
from tests.unit.whiteboard.samples import UP_STATUS, host_slot

ROUNDS = 17_000  # × 6 damage kinds = 102,000 decodes
SEED = 20260303


def valid_slots() -> list[tuple[int, bytes]]:
    plain = host_slot(1)
    with_extra = replace(
        plain, extra=format_extra(plain, state="EngineUp", time_epoch=1_700_000_000, refresh_epoch=1_700_000_000)
    )
    return [
        (1, encode_host_slot(with_extra)),
        (2, encode_host_slot(host_slot(2, hostname="ホスト-2.example", engine_status=UP_STATUS, score=2400))),
        (1999, encode_host_slot(host_slot(1999, maintenance=True, stopped=True, extra="x=1\n" * 300))),
        (7, encode_host_slot(host_slot(7, extra=""))),
    ]


def flip_bits(rng: random.Random, data: bytes, count: int, end: int = SLOT_BYTES) -> bytes:
    damaged = bytearray(data)
    for _ in range(count):
        damaged[rng.randrange(end)] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def decode_outcome(host_id: int, data: bytes) -> str:
    """'empty', 'decoded' or the SlotError subclass name; anything else escapes and fails."""
    try:
        slot = decode_host_slot(host_id, data)
    except SlotError as exc:
        assert exc.slot == host_id and str(exc)
        return type(exc).__name__
    assert slot is None or isinstance(slot, HostSlot)
    return "empty" if slot is None else "decoded"


def test_damaged_slots_only_raise_typed_errors() -> None:
    rng = random.Random(SEED)
    sources = valid_slots()
    outcomes: dict[str, Counter[str]] = {}

    def run(kind: str, make: Callable[[int, bytes], tuple[int, bytes]]) -> None:
        host_id, data = rng.choice(sources)
        outcomes.setdefault(kind, Counter())[decode_outcome(*make(host_id, data))] += 1

    for _ in range(ROUNDS):
        run("bit flips", lambda h, d: (h, flip_bits(rng, d, rng.randint(1, 16))))
        run("header bit flip", lambda h, d: (h, flip_bits(rng, d, 1, BLOCK_BYTES)))
        run("truncated", lambda h, d: (h, d[: rng.randrange(SLOT_BYTES)]))
        run("torn", lambda h, d: (h, d[: rng.randrange(SLOT_BYTES)].ljust(SLOT_BYTES, b"\0")))
        run("overwritten", lambda h, d: (h, overwrite(rng, d)))
        run("wrong id", lambda h, d: (rng.choice([i for i in (1, 2, 7, 1999, 2000) if i != h]), d))

    total = sum(sum(counter.values()) for counter in outcomes.values())
    assert total >= 100_000
    # crc32 detects every single-bit error: a flipped header bit is never accepted.
    assert set(outcomes["header bit flip"]) <= {"CorruptSlot", "MalformedSlot"}
    assert outcomes["header bit flip"]["CorruptSlot"] > 0
    assert set(outcomes["truncated"]) == {"MalformedSlot"}  # a slot is exactly 4096 bytes
    assert set(outcomes["wrong id"]) == {SlotOfAnotherHost.__name__}
    # The fuzz reaches the interesting paths, not just one early rejection.
    seen = Counter[str]()
    for counter in outcomes.values():
        seen.update(counter)
    assert {"decoded", CorruptSlot.__name__, "MalformedSlot", "SlotOfAnotherHost"} <= set(seen)


def overwrite(rng: random.Random, data: bytes) -> bytes:
    """Random bytes over a random span, biased to the header where parsing happens."""
    start = rng.randrange(BLOCK_BYTES if rng.random() < 0.8 else SLOT_BYTES)
    length = rng.randint(1, 64)
    return (data[:start] + rng.randbytes(length) + data[start + length :])[:SLOT_BYTES]


def test_random_and_damaged_global_blocks_only_raise_typed_errors() -> None:
    rng = random.Random(SEED + 1)
    base = b"maintenance=1".ljust(SLOT_BYTES, b"\0")
    kinds = Counter[str]()
    for _ in range(5_000):
        data = flip_bits(rng, base, rng.randint(1, 8), 64) if rng.random() < 0.5 else rng.randbytes(SLOT_BYTES)
        try:
            decode_global_block(data)
        except SlotError as exc:
            assert exc.slot == 0
            kinds[type(exc).__name__] += 1
        else:
            kinds["decoded"] += 1
    assert {"decoded", "MalformedSlot", "CorruptSlot"} <= set(kinds)

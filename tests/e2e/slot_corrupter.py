"""Bit rot in a host's whiteboard slot, kept up while the host rewrites its slot every tick.

``SlotCorrupter`` is a thread that, whenever the slot's owner has rewritten it, flips one
bit of the score field in its header and writes the slot back with O_DIRECT, as a host
writes: a digit stays a digit, so only the crc32 tells readers the slot is damaged.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Self

from he_ha.whiteboard import BLOCK_BYTES, SLOT_BYTES, write_direct
from he_ha.whiteboard.codec import CRC_FIELD

SCORE_FIELD = 4
PERIOD = 0.05  # the owners rewrite once a tick (1 s): readers mostly find the damage


def corrupted(slot: bytes) -> bytes | None:
    """``slot`` with one bit of its score field flipped; None for an empty slot or one
    without a score field (nothing to damage yet)."""
    fields = slot[:BLOCK_BYTES].rstrip(b"\0").split(b"|")
    if len(fields) <= CRC_FIELD or not fields[SCORE_FIELD]:
        return None
    score = fields[SCORE_FIELD]
    fields[SCORE_FIELD] = bytes([score[0] ^ 1]) + score[1:]
    return b"|".join(fields).ljust(BLOCK_BYTES, b"\0") + slot[BLOCK_BYTES:]


class SlotCorrupter:
    """Use as a context manager; ``writes`` counts the damaging writes."""

    def __init__(self, metadata: Path, host_id: int) -> None:
        self.metadata = metadata
        self.host_id = host_id
        self.writes = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"corrupt-slot-{host_id}", daemon=True)

    def _run(self) -> None:
        offset = self.host_id * SLOT_BYTES
        ours: bytes | None = None
        try:
            while not self._stopping.wait(PERIOD):
                with open(self.metadata, "rb") as volume:
                    volume.seek(offset)
                    slot = volume.read(SLOT_BYTES)
                if slot == ours:
                    continue  # still our damage: flipping the bit again would repair it
                damaged = corrupted(slot)
                if damaged is not None:
                    write_direct(str(self.metadata), offset, damaged)
                    ours = damaged
                    self.writes += 1
        except BaseException as error:  # reported by __exit__: a silent corrupter would test nothing
            self.error = error
            raise

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        if self.error is not None:
            raise AssertionError(f"corrupting slot {self.host_id} failed: {self.error!r}")

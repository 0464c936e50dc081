"""The one error hierarchy of the metadata whiteboard (codec and storage I/O).

WhiteboardError
├── SlotError            a slot read from storage cannot be used (names the slot)
│   ├── CorruptSlot      crc mismatch, bytes that are not UTF-8, a non-integer field
│   ├── MalformedSlot    wrong length, too few fields, no version digits, leftover data
│   ├── MetadataTooNew   parse version above 1: written by a newer agent
│   ├── MetadataTooOld   feature version below 1
│   └── SlotOfAnotherHost      the header names another host than the slot it sits in
├── EncodeError          refusing to produce bytes (too long, '|' in a field, bad value)
└── StorageError         an O_DIRECT read or write failed
    ├── WhiteboardTimeout   the call missed its deadline (the thread may still be stuck)
    └── StorageStalled   refused at once: an earlier call of that kind is still stuck
"""

from __future__ import annotations


class WhiteboardError(Exception):
    """Root of every whiteboard error."""


class SlotError(WhiteboardError):
    """One slot's bytes cannot be used; other slots are unaffected."""

    def __init__(self, slot: int, problem: str) -> None:
        self.slot = slot
        self.problem = problem
        where = "global block (slot 0)" if slot == 0 else f"slot of host {slot}"
        super().__init__(f"whiteboard {where}: {problem}")


class CorruptSlot(SlotError):
    """The bytes were damaged or written by a broken writer (crc, UTF-8, integer fields)."""


class MalformedSlot(SlotError):
    """The bytes do not have the shape of the v1 format (length, field count, versions)."""


class MetadataTooNew(SlotError):
    """Written by an agent speaking a newer metadata version than ours (1)."""


class MetadataTooOld(SlotError):
    """Written by an agent older than the oldest metadata version we understand (1)."""


class SlotOfAnotherHost(SlotError):
    """A valid header whose host-id field differs from the slot it was found in."""

    def __init__(self, slot: int, written_id: int) -> None:
        self.written_id = written_id
        super().__init__(slot, f"header says it was written by host {written_id}; the block is misplaced")


class EncodeError(WhiteboardError):
    """A record cannot be written in the v1 format without corrupting it or a neighbour."""


class StorageError(WhiteboardError):
    """Reading or writing the metadata volume failed."""

    def __init__(self, path: str, op: str, problem: str, errno: int | None = None) -> None:
        self.path = path
        self.op = op
        self.errno = errno
        super().__init__(f"whiteboard {op} of {path}: {problem}")


class WhiteboardTimeout(StorageError):
    """The call did not finish before its deadline; its thread may still be blocked."""


class StorageStalled(StorageError):
    """Refused without touching storage: an earlier call of the same kind has not returned."""

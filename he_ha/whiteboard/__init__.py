"""The shared metadata whiteboard: its byte format (codec, extra text) and O_DIRECT slot I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from he_ha.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from he_ha.whiteboard.codec import (
        BLOCK_BYTES,
        SLOT_BYTES,
        SLOT_COUNT,
        WHITEBOARD_BYTES,
        DecodedBoard,
        GlobalBlock,
        HostSlot,
        decode_global_block,
        decode_host_slot,
        decode_whiteboard,
        encode_global_block,
        encode_host_slot,
        global_entries,
        priority_line,
        stored_crc,
    )
    from he_ha.whiteboard.direct_io import read_direct, write_direct
    from he_ha.whiteboard.extra import format_extra
    from he_ha.whiteboard.status_json import engine_status_json
    from he_ha.whiteboard.whiteboard import IoStats, Op, Whiteboard
    from he_ha.whiteboard.whiteboard_errors import (
        CorruptSlot,
        EncodeError,
        MalformedSlot,
        MetadataTooNew,
        MetadataTooOld,
        SlotError,
        SlotOfAnotherHost,
        StorageError,
        StorageStalled,
        WhiteboardError,
        WhiteboardTimeout,
    )

__all__ = [
    "BLOCK_BYTES",
    "SLOT_BYTES",
    "SLOT_COUNT",
    "WHITEBOARD_BYTES",
    "CorruptSlot",
    "DecodedBoard",
    "EncodeError",
    "GlobalBlock",
    "HostSlot",
    "IoStats",
    "MalformedSlot",
    "MetadataTooNew",
    "MetadataTooOld",
    "Op",
    "SlotError",
    "SlotOfAnotherHost",
    "StorageError",
    "StorageStalled",
    "Whiteboard",
    "WhiteboardError",
    "WhiteboardTimeout",
    "decode_global_block",
    "decode_host_slot",
    "decode_whiteboard",
    "encode_global_block",
    "encode_host_slot",
    "engine_status_json",
    "format_extra",
    "global_entries",
    "priority_line",
    "read_direct",
    "stored_crc",
    "write_direct",
]

# Loaded on first use (he_ha/lazy_exports.py): importing one module of this package loads no other.
__getattr__ = lazy_exports(
    __name__,
    {
        "codec": (
            "BLOCK_BYTES",
            "DecodedBoard",
            "GlobalBlock",
            "HostSlot",
            "SLOT_BYTES",
            "SLOT_COUNT",
            "WHITEBOARD_BYTES",
            "decode_global_block",
            "decode_host_slot",
            "decode_whiteboard",
            "encode_global_block",
            "encode_host_slot",
            "global_entries",
            "priority_line",
            "stored_crc",
        ),
        "direct_io": (
            "read_direct",
            "write_direct",
        ),
        "extra": ("format_extra",),
        "status_json": ("engine_status_json",),
        "whiteboard": (
            "IoStats",
            "Op",
            "Whiteboard",
        ),
        "whiteboard_errors": (
            "CorruptSlot",
            "EncodeError",
            "MalformedSlot",
            "MetadataTooNew",
            "MetadataTooOld",
            "SlotError",
            "SlotOfAnotherHost",
            "StorageError",
            "StorageStalled",
            "WhiteboardError",
            "WhiteboardTimeout",
        ),
    },
)

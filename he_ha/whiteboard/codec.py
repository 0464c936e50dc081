"""Pure, byte-compatible codec of the v1 metadata whiteboard (spec §2.2–2.6, §2.9, §12.3).

No I/O, no clock: bytes in, typed records out, and back. Layout of the volume::

    offset          length  content
    0               4096    slot 0: global block, ``maintenance=0|1`` NUL-padded
    host_id*4096    4096    host slot: 512-byte header + extra text, NUL-padded

Deviations from the original reader, each fixing a defect of spec §12:
- slots are decoded from bytes one at a time, never the whole volume as one string (B7);
- the crc32 is verified before any field is converted (B8), so a header with fewer than 10
  fields (no crc32 field) is refused as malformed instead of being trusted;
- the header's host-id field must equal the slot index (B9);
- the encoder counts bytes and refuses a header over 512 bytes or a slot over 4096 (B10);
- a slot whose first byte is NUL but which holds other bytes is reported as leftover data
  (the original skipped it silently; B28 shows where such bytes come from).
"""

from __future__ import annotations

import mmap
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from he_ha.config import MAX_HOST_ID, MAX_PRIORITY, MIN_PRIORITY, to_bool
from he_ha.whiteboard.whiteboard_errors import (
    CorruptSlot,
    EncodeError,
    MalformedSlot,
    MetadataTooNew,
    MetadataTooOld,
    SlotError,
    SlotOfAnotherHost,
)

SLOT_BYTES = 4096
BLOCK_BYTES = 512
SLOT_COUNT = MAX_HOST_ID + 1  # slot 0 (global) + host ids 1..2000
WHITEBOARD_BYTES = SLOT_COUNT * SLOT_BYTES  # 8,196,096: what the original reads every cycle

PARSE_VERSION = 1  # header field 0: readers above this version must refuse the slot
FEATURE_VERSION = 1  # header field 1: readers refuse writers below this version
HEADER_FIELDS = 12
CRC_FIELD = 9
CRC_PLACEHOLDER = "00000000"

_ZERO_SLOT = bytes(SLOT_BYTES)
_LEADING_DIGITS = re.compile(r"[0-9]+")
_FORBIDDEN_IN_FIELD = ("|", "\0")  # the format has no escaping; a NUL would be stripped on read
# he-ha's host priority (issue 14) in the extra text: a ``priority=<n>`` line. The original's
# readers never parse the extra text (spec §2.5, §2.9: it is exposed, and printed, as is).
PRIORITY_KEY = "priority"
_PRIORITY_TEXT = re.compile(r"-?[0-9]{1,4}")


@dataclass(frozen=True, slots=True)
class HostSlot:
    """One host's published status: the 12 header fields plus the human-readable extra text.

    ``conf_on_shared_storage`` and ``local_conf_timestamp`` are None only when decoded from a
    10- or 11-field header (old writers); the encoder requires them. ``crc32`` is the value
    read from storage (None for a record built locally); the encoder always computes it.
    """

    host_id: int
    host_ts: int
    score: int
    engine_status: str
    hostname: str
    maintenance: bool
    stopped: bool
    conf_on_shared_storage: bool | None
    local_conf_timestamp: int | None
    extra: str = ""
    crc32: str | None = field(default=None, compare=False)

    @property
    def priority(self) -> int | None:
        """The host priority the slot's extra text carries, None when it carries none."""
        return extra_priority(self.extra)


@dataclass(frozen=True, slots=True)
class GlobalBlock:
    """Slot 0. Only ``maintenance`` is honoured; other keys are reported, never written back."""

    maintenance: bool = False
    unknown_keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DecodedBoard:
    """A decoded whiteboard: every usable slot and, separately, every unusable one."""

    global_block: GlobalBlock | None  # None: slot 0 empty (or unusable, see global_error)
    global_error: SlotError | None
    hosts: Mapping[int, HostSlot]
    errors: Mapping[int, SlotError]
    # crc32 (8 hex) of each unusable slot's raw bytes: it changes whenever its writer
    # publishes, which is how a peer we cannot parse (e.g. newer metadata) still shows alive.
    fingerprints: Mapping[int, str]
    # The 4096 bytes as stored of every slot whose first byte is not NUL (usable or not; the
    # original broker's rule for which slots exist): what the broker socket's get_stats serves.
    slot_bytes: Mapping[int, bytes] = field(default_factory=dict)
    # Slots 0..scanned_slots-1 were read; a partial read (he_ha.supervisor.board's ScanRange)
    # did not look above them, where the last full scan found only empty slots.
    scanned_slots: int = SLOT_COUNT

    @property
    def highest_used(self) -> int:
        """The highest slot index holding anything (a host, an unusable slot, leftover
        bytes); 0 when no host slot does."""
        return max((*self.hosts, *self.errors, *self.slot_bytes, 0))


# --- host slots ------------------------------------------------------------------------------


def header_crc(fields: list[str]) -> str:
    """crc32 (zlib/IEEE) of the pipe-joined UTF-8 header with field 9 as ``00000000``, %08x."""
    with_placeholder = [*fields[:CRC_FIELD], CRC_PLACEHOLDER, *fields[CRC_FIELD + 1 :]]
    return f"{zlib.crc32('|'.join(with_placeholder).encode('utf-8')):08x}"


def stored_crc(slot: HostSlot) -> str:
    """The crc32 the encoder writes for ``slot``: for a slot known from memory (our own, as
    published) rather than decoded from storage. Raises EncodeError like encode_header."""
    return encode_header(slot).split(b"|")[CRC_FIELD].decode("ascii")


def encode_header(slot: HostSlot) -> bytes:
    """The header line of ``slot`` (12 fields, crc filled in), not yet NUL-padded."""
    _check_record(slot)
    fields = [
        str(PARSE_VERSION),
        str(FEATURE_VERSION),
        str(slot.host_ts),
        str(slot.host_id),
        str(slot.score),
        slot.engine_status,
        slot.hostname,
        _flag(slot.maintenance),
        _flag(slot.stopped),
        CRC_PLACEHOLDER,
        _flag(slot.conf_on_shared_storage is True),
        str(slot.local_conf_timestamp),
    ]
    fields[CRC_FIELD] = header_crc(fields)
    header = _utf8(slot.host_id, "header", "|".join(fields))
    if len(header) > BLOCK_BYTES:
        raise EncodeError(
            f"header of host {slot.host_id} is {len(header)} bytes, over the format's {BLOCK_BYTES} "
            f"(hostname {len(slot.hostname.encode())} bytes, engine status {len(slot.engine_status.encode())} bytes)"
        )
    return header


def encode_host_slot(slot: HostSlot) -> bytes:
    """Exactly 4096 bytes: header NUL-padded to 512, extra NUL-padded to a 512 multiple, NULs."""
    header = encode_header(slot)
    if "\0" in slot.extra:
        raise EncodeError(f"extra text of host {slot.host_id} contains NUL, which readers strip")
    extra = _utf8(slot.host_id, "extra text", slot.extra)
    extra += b"\0" * (-len(extra) % BLOCK_BYTES)
    used = BLOCK_BYTES + len(extra)
    if used > SLOT_BYTES:
        raise EncodeError(
            f"slot of host {slot.host_id} would be {used} bytes, over {SLOT_BYTES}: "
            f"the extra text ({len(slot.extra.encode('utf-8'))} bytes) would overwrite the next host's slot"
        )
    return header.ljust(BLOCK_BYTES, b"\0") + extra + bytes(SLOT_BYTES - used)


def decode_host_slot(host_id: int, slot: bytes) -> HostSlot | None:
    """Decode the 4096 bytes found at ``host_id*4096``; None when the slot is all zero.

    Accepts what old agents accept (spec §2.9) except where that trusted unverified bytes:
    ≥ 10 fields with a matching crc32 are required, fields 10–11 are read when ≥ 12 fields,
    further fields are ignored. Raises a SlotError subclass naming the host and the problem.
    """
    if not 1 <= host_id <= MAX_HOST_ID:
        raise ValueError(f"host id {host_id} is outside 1..{MAX_HOST_ID}")
    if _is_empty(host_id, slot):
        return None
    fields = _verified_fields(host_id, slot)
    version = _LEADING_DIGITS.match(fields[0])
    if version is None:
        raise MalformedSlot(host_id, f"parse version field {_short(fields[0])} does not start with a digit")
    if int(version.group()) > PARSE_VERSION:
        raise MetadataTooNew(host_id, f"metadata parse version {version.group()} is newer than ours ({PARSE_VERSION})")
    if _int_field(host_id, fields, 1, "feature version") < FEATURE_VERSION:
        raise MetadataTooOld(host_id, f"metadata feature version {fields[1]} is older than {FEATURE_VERSION}")
    written_id = _int_field(host_id, fields, 3, "host id")
    if written_id != host_id:
        raise SlotOfAnotherHost(host_id, written_id)
    full = len(fields) >= HEADER_FIELDS
    numbers = _INT_FIELDS if full else _INT_FIELDS[:4]
    try:  # one try for all of them: this runs for every slot of every read
        values = [int(fields[number]) for number, _ in numbers]
    except ValueError:
        for number, name in numbers:  # the first bad one, named
            _int_field(host_id, fields, number, name)
        raise
    return HostSlot(
        host_id=host_id,
        host_ts=values[0],
        score=values[1],
        engine_status=fields[5],
        hostname=fields[6],
        maintenance=values[2] > 0,
        stopped=values[3] > 0,
        conf_on_shared_storage=values[4] > 0 if full else None,
        local_conf_timestamp=values[5] if full else None,
        extra=_text(host_id, "extra text", _strip_padding(slot[BLOCK_BYTES:])),
        crc32=fields[CRC_FIELD],
    )


# The integer header fields a HostSlot carries, in the order they are checked.
_INT_FIELDS = (
    (2, "host timestamp"),
    (4, "score"),
    (7, "maintenance"),
    (8, "stopped"),
    (10, "conf_on_shared_storage"),
    (11, "local_conf_timestamp"),
)


def _verified_fields(host_id: int, slot: bytes) -> list[str]:
    """The header's fields, only after its crc32 matched (nothing is converted before that)."""
    fields = _text(host_id, "header", _strip_padding(slot[:BLOCK_BYTES])).split("|")
    if len(fields) <= CRC_FIELD:
        raise MalformedSlot(
            host_id, f"header has {len(fields)} fields; without the crc32 (field 9) it cannot be trusted"
        )
    computed = header_crc(fields)
    if fields[CRC_FIELD] != computed:
        raise CorruptSlot(host_id, f"crc32 field {_short(fields[CRC_FIELD])} does not match the computed {computed}")
    return fields


def priority_line(priority: int) -> str:
    """The extra-text line publishing a host priority (issue 14)."""
    if not _is_int(priority) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise EncodeError(f"priority {priority!r} is outside {MIN_PRIORITY}..{MAX_PRIORITY}")
    return f"{PRIORITY_KEY}={priority}\n"


def extra_priority(extra: str) -> int | None:
    """A peer's host priority from its extra text: the first ``priority=`` line, when it is an
    integer in range; None when there is none (the original's agents, older he-ha) or it is
    not one (the caller uses the default)."""
    start = 0
    prefix = PRIORITY_KEY + "="
    while True:
        at = extra.find(prefix, start)
        if at < 0:
            return None
        if at == 0 or extra[at - 1] == "\n":
            end = extra.find("\n", at)
            text = extra[at + len(prefix) : end if end >= 0 else len(extra)]
            if _PRIORITY_TEXT.fullmatch(text) is None:
                return None
            value = int(text)
            return value if MIN_PRIORITY <= value <= MAX_PRIORITY else None
        start = at + 1


# --- global block ----------------------------------------------------------------------------


def encode_global_block(block: GlobalBlock) -> bytes:
    """``maintenance=1`` or ``maintenance=0``, NUL-padded to 4096, as the original writes it."""
    return f"maintenance={_flag(block.maintenance)}".encode("ascii").ljust(SLOT_BYTES, b"\0")


def global_entries(slot: bytes) -> list[tuple[str, str]] | None:
    """Slot 0's ``key=value`` lines as (key, value) pairs in order; None when empty.
    Raises MalformedSlot for a line that is not key=value, CorruptSlot for non-UTF-8."""
    if _is_empty(0, slot):
        return None
    entries: list[tuple[str, str]] = []
    for line in _text(0, "text", _strip_padding(slot)).split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MalformedSlot(0, f"line {_short(line)} is not key=value")
        entries.append((key, value))
    return entries


def decode_global_block(slot: bytes) -> GlobalBlock | None:
    """Slot 0: ``key=value`` lines; ``maintenance`` takes any to_bool text; None when empty."""
    entries = global_entries(slot)
    if entries is None:
        return None
    maintenance = False
    unknown: list[tuple[str, str]] = []
    for key, value in entries:
        if key != "maintenance":
            unknown.append((key, value))
            continue
        try:
            maintenance = to_bool(value)
        except ValueError:
            raise MalformedSlot(0, f"maintenance value {_short(value)} is not a boolean") from None
    return GlobalBlock(maintenance=maintenance, unknown_keys=tuple(unknown))


# --- the whole whiteboard ------------------------------------------------------------------------


def decode_whiteboard(
    data: bytes | bytearray | mmap.mmap, length: int | None = None, previous: DecodedBoard | None = None
) -> DecodedBoard:
    """Decode slots 0..2000 from ``data[:length]`` (an mmap is not copied as a whole).

    A short buffer is fine: missing bytes read as zero, as in the original's short read.
    Bytes past slot 2000 are ignored. One bad slot never hides the others: its SlotError
    goes to ``errors`` (or ``global_error``) and decoding continues.

    ``previous``: an earlier view; a slot whose 4096 bytes equal the ones it kept in
    ``slot_bytes`` takes its decoded record (or error) from there instead of being decoded
    again. Decoding is a pure function of (index, bytes), so the result is the same; between
    two reads most slots are unchanged (a host publishes every 10 s, peers poll every 2 s).
    """
    size = len(data) if length is None else length
    if not 0 <= size <= len(data):
        raise ValueError(f"length {size} is outside the buffer's 0..{len(data)} bytes")
    size = min(size, WHITEBOARD_BYTES)
    global_block: GlobalBlock | None = None
    global_error: SlotError | None = None
    hosts: dict[int, HostSlot] = {}
    errors: dict[int, SlotError] = {}
    fingerprints: dict[int, str] = {}
    slot_bytes: dict[int, bytes] = {}
    for index, start in enumerate(range(0, size, SLOT_BYTES)):
        end = start + SLOT_BYTES
        chunk = bytes(data[start:end]) if end <= size else bytes(data[start:size]).ljust(SLOT_BYTES, b"\0")
        if chunk[0] == 0 and chunk == _ZERO_SLOT:  # the common case for most ids: skip cheaply
            continue
        if chunk[0] != 0:
            slot_bytes[index] = chunk  # already a copy: the buffer (an mmap) is reused
            if previous is not None and previous.slot_bytes.get(index) == chunk:
                _reuse(previous, index, hosts, errors, fingerprints)
                if index == 0:
                    global_block, global_error = previous.global_block, previous.global_error
                continue
        try:
            if index == 0:
                global_block = decode_global_block(chunk)
            else:
                host = decode_host_slot(index, chunk)
                if host is not None:
                    hosts[index] = host
        except SlotError as exc:
            if index == 0:
                global_error = exc
            else:
                errors[index] = exc
                fingerprints[index] = f"{zlib.crc32(chunk):08x}"
    return DecodedBoard(
        global_block=global_block,
        global_error=global_error,
        hosts=hosts,
        errors=errors,
        fingerprints=fingerprints,
        slot_bytes=slot_bytes,
    )


def _reuse(
    previous: DecodedBoard,
    index: int,
    hosts: dict[int, HostSlot],
    errors: dict[int, SlotError],
    fingerprints: dict[int, str],
) -> None:
    """Copy slot ``index``'s outcome from ``previous`` (same bytes, same outcome)."""
    if index in previous.hosts:
        hosts[index] = previous.hosts[index]
    elif index in previous.errors:
        errors[index] = previous.errors[index]
        fingerprints[index] = previous.fingerprints[index]


# --- helpers ---------------------------------------------------------------------------------------


def _is_empty(index: int, slot: bytes) -> bool:
    """True for an all-zero slot; refuses a wrong length and data behind a leading NUL."""
    if len(slot) != SLOT_BYTES:
        raise MalformedSlot(index, f"is {len(slot)} bytes; a slot is exactly {SLOT_BYTES}")
    if slot[0] != 0:
        return False
    if slot == _ZERO_SLOT:
        return True
    stray = SLOT_BYTES - slot.count(0)
    raise MalformedSlot(index, f"first byte is NUL but {stray} other bytes are not: leftover data, not a slot")


def _strip_padding(data: bytes) -> bytes:
    """``data.rstrip(NUL)``, fast for the usual shape "text, then only NULs": a find and a
    memcmp instead of a byte-wise rstrip, which was a third of the cost of decoding a slot."""
    cut = data.find(0)
    if cut < 0:
        return data
    if data.endswith(_ZERO_SLOT[: len(data) - cut]):
        return data[:cut]
    return data.rstrip(b"\0")  # NUL inside the text: keep it, as the original reader did


def _text(index: int, what: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptSlot(index, f"{what} is not UTF-8 (byte {exc.start}: {exc.reason})") from None


def _int_field(index: int, fields: list[str], number: int, name: str) -> int:
    try:
        return int(fields[number])
    except ValueError:
        raise CorruptSlot(index, f"field {number} ({name}) is not an integer: {_short(fields[number])}") from None


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _utf8(host_id: int, what: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"{what} of host {host_id} cannot be encoded as UTF-8: {exc.reason}") from None


def _check_record(slot: HostSlot) -> None:
    """Refuse values that would produce bytes old readers mis-parse or that hit a neighbour."""
    hid = slot.host_id
    if not _is_int(hid) or not 1 <= hid <= MAX_HOST_ID:
        raise EncodeError(f"host id {hid!r} is outside 1..{MAX_HOST_ID}")
    for name in ("host_ts", "score", "local_conf_timestamp"):
        value = getattr(slot, name)
        if not _is_int(value):
            raise EncodeError(f"{name} of host {hid} must be an integer, got {value!r}")
    for name in ("maintenance", "stopped", "conf_on_shared_storage"):
        value = getattr(slot, name)
        if not isinstance(value, bool):
            raise EncodeError(f"{name} of host {hid} must be True or False, got {value!r}")
    for name in ("engine_status", "hostname"):
        value = getattr(slot, name)
        if not isinstance(value, str):
            raise EncodeError(f"{name} of host {hid} must be text, got {value!r}")
        for bad in _FORBIDDEN_IN_FIELD:
            if bad in value:
                raise EncodeError(
                    f"{name} of host {hid} contains {bad!r}, which the format cannot carry: {_short(value)}"
                )
        _utf8(hid, name, value)
    if not isinstance(slot.extra, str):
        raise EncodeError(f"extra of host {hid} must be text, got {slot.extra!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

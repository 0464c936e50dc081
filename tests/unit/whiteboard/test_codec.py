"""The v1 whiteboard codec: pinned byte vectors, the crc rule, parse rules and typed errors."""

from __future__ import annotations

import re
import zlib
from dataclasses import replace

import pytest

from he_ha.whiteboard import (
    BLOCK_BYTES,
    SLOT_BYTES,
    WHITEBOARD_BYTES,
    CorruptSlot,
    EncodeError,
    GlobalBlock,
    HostSlot,
    MalformedSlot,
    MetadataTooNew,
    MetadataTooOld,
    SlotError,
    SlotOfAnotherHost,
    decode_global_block,
    decode_host_slot,
    decode_whiteboard,
    encode_global_block,
    encode_host_slot,
    global_entries,
    priority_line,
)
from he_ha.whiteboard.codec import encode_header, extra_priority
from tests.unit.whiteboard.samples import DOWN_STATUS, host_slot

# The spec §2.3 example header (host 2) with its crc field set to 00000000.
EXAMPLE_UNSIGNED = (
    '1|1|873412|2|3400|{"vm": "down", "health": "bad", "detail": "unknown", '
    '"reason": "vm not running on this host"}|host2.example.com|0|0|00000000|1|873405'
)
# Derived once by hand, outside this code base, in two independent ways that agreed:
#   python3 -c "import zlib,sys; print('%08x' % zlib.crc32(sys.argv[1].encode()))" "$H"
#   printf '%s' "$H" | gzip -c | tail -c8 | head -c4 | od -An -tx4   (gzip's CRC-32 trailer)
# with H = EXAMPLE_UNSIGNED.
EXAMPLE_CRC = "e5b8b113"
EXAMPLE_HEADER = EXAMPLE_UNSIGNED.replace("00000000", EXAMPLE_CRC)


def sign(fields: list[str]) -> str:
    """A header with a correct crc, computed here with zlib independently of the codec."""
    unsigned = list(fields)
    unsigned[9] = "00000000"
    crc = zlib.crc32("|".join(unsigned).encode("utf-8")) & 0xFFFFFFFF
    return "|".join([*unsigned[:9], f"{crc:08x}", *unsigned[10:]])


def raw_slot(header: str | bytes, extra: bytes = b"") -> bytes:
    head = header.encode("utf-8") if isinstance(header, str) else header
    return (head.ljust(BLOCK_BYTES, b"\0") + extra).ljust(SLOT_BYTES, b"\0")


def example_fields(**overrides: str) -> list[str]:
    fields = EXAMPLE_UNSIGNED.split("|")
    names = {"parse": 0, "feature": 1, "ts": 2, "id": 3, "score": 4, "maint": 7, "stopped": 8, "conf": 10, "lcts": 11}
    for name, value in overrides.items():
        fields[names[name]] = value
    return fields


# --- pinned vectors ------------------------------------------------------------------------------


def test_header_vector_pins_field_order_and_crc() -> None:
    slot = host_slot(2, extra="")
    assert encode_header(slot) == EXAMPLE_HEADER.encode()


def test_crc_is_zlib_over_header_with_placeholder() -> None:
    header = encode_header(host_slot(7, hostname="hôte-7", score=1234, maintenance=True)).decode()
    fields = header.split("|")
    assert len(fields) == 12
    assert fields[9] == f"{zlib.crc32(header.replace(fields[9], '00000000').encode()):08x}"
    assert fields[9] == sign(fields).split("|")[9]


def test_slot_byte_layout() -> None:
    extra = "metadata_parse_version=1\nstate=EngineUp\n"
    data = encode_host_slot(host_slot(2, extra=extra))
    assert len(data) == SLOT_BYTES
    assert data[:BLOCK_BYTES] == EXAMPLE_HEADER.encode().ljust(BLOCK_BYTES, b"\0")
    assert data[BLOCK_BYTES : 2 * BLOCK_BYTES] == extra.encode().ljust(BLOCK_BYTES, b"\0")
    assert data[2 * BLOCK_BYTES :] == bytes(SLOT_BYTES - 2 * BLOCK_BYTES)


def test_extra_longer_than_one_block_pads_to_the_next_block() -> None:
    extra = "x" * 700 + "\n"
    data = encode_host_slot(host_slot(2, extra=extra))
    assert data[BLOCK_BYTES : 3 * BLOCK_BYTES] == extra.encode().ljust(2 * BLOCK_BYTES, b"\0")
    assert data[3 * BLOCK_BYTES :] == bytes(SLOT_BYTES - 3 * BLOCK_BYTES)
    assert decode_host_slot(2, data) == host_slot(2, extra=extra)


def test_global_block_bytes() -> None:
    assert encode_global_block(GlobalBlock(maintenance=True)) == b"maintenance=1".ljust(SLOT_BYTES, b"\0")
    assert encode_global_block(GlobalBlock(maintenance=False)) == b"maintenance=0".ljust(SLOT_BYTES, b"\0")


# --- decoding host slots ---------------------------------------------------------------------------


def test_decode_example_slot_written_by_an_old_agent() -> None:
    slot = decode_host_slot(2, raw_slot(EXAMPLE_HEADER, b"state=EngineDown\n"))
    assert slot == HostSlot(
        host_id=2,
        host_ts=873412,
        score=3400,
        engine_status=DOWN_STATUS,
        hostname="host2.example.com",
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=873405,
        extra="state=EngineDown\n",
    )
    assert slot is not None and slot.crc32 == EXAMPLE_CRC


def test_round_trip_keeps_every_field() -> None:
    original = host_slot(1999, host_ts=-5, score=0, maintenance=True, stopped=True, conf_on_shared_storage=False)
    decoded = decode_host_slot(1999, encode_host_slot(original))
    assert decoded == original
    assert decoded is not None and decoded.crc32 == encode_header(original).split(b"|")[9].decode()


def test_all_zero_slot_means_no_host() -> None:
    assert decode_host_slot(5, bytes(SLOT_BYTES)) is None


def test_leading_nul_with_leftover_bytes_is_reported() -> None:
    data = bytearray(SLOT_BYTES)
    data[1000] = 0x41
    with pytest.raises(MalformedSlot, match="host 5: first byte is NUL but 1 other bytes"):
        decode_host_slot(5, bytes(data))


@pytest.mark.parametrize("length", [0, 511, 512, 4095, 4097])
def test_slot_of_wrong_length_is_malformed(length: int) -> None:
    with pytest.raises(MalformedSlot, match=f"host 3: is {length} bytes"):
        decode_host_slot(3, encode_host_slot(host_slot(3)).ljust(length, b"\0")[:length])


def test_host_id_outside_range_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match=re.escape("outside 1..2000")):
        decode_host_slot(2001, bytes(SLOT_BYTES))


def test_non_ascii_hostname_round_trips() -> None:
    original = host_slot(4, hostname="wärts-ホスト.example")
    assert decode_host_slot(4, encode_host_slot(original)) == original


def test_too_new_parse_version() -> None:
    with pytest.raises(MetadataTooNew, match="host 2: metadata parse version 2 is newer than ours"):
        decode_host_slot(2, raw_slot(sign(example_fields(parse="2"))))


def test_parse_version_is_its_leading_digits_like_old_agents() -> None:
    slot = decode_host_slot(2, raw_slot(sign(example_fields(parse="1rc"))))
    assert slot is not None and slot.host_ts == 873412


def test_parse_version_without_digits_is_malformed() -> None:
    with pytest.raises(MalformedSlot, match="parse version field 'v1' does not start with a digit"):
        decode_host_slot(2, raw_slot(sign(example_fields(parse="v1"))))


def test_too_old_feature_version() -> None:
    with pytest.raises(MetadataTooOld, match="host 2: metadata feature version 0 is older than 1"):
        decode_host_slot(2, raw_slot(sign(example_fields(feature="0"))))


def test_newer_feature_version_is_accepted() -> None:
    assert decode_host_slot(2, raw_slot(sign(example_fields(feature="3")))) is not None


def test_header_written_for_another_host_is_refused() -> None:
    with pytest.raises(SlotOfAnotherHost, match="slot of host 4: header says it was written by host 3") as caught:
        decode_host_slot(4, encode_host_slot(host_slot(3)))
    assert caught.value.slot == 4 and caught.value.written_id == 3


def test_crc_mismatch() -> None:
    tampered = EXAMPLE_HEADER.replace("|3400|", "|3401|")
    with pytest.raises(CorruptSlot, match=f"host 2: crc32 field '{EXAMPLE_CRC}' does not match the computed"):
        decode_host_slot(2, raw_slot(tampered))


def test_uppercase_crc_does_not_match_like_old_agents() -> None:
    with pytest.raises(CorruptSlot, match="crc32"):
        decode_host_slot(2, raw_slot(EXAMPLE_HEADER.replace(EXAMPLE_CRC, EXAMPLE_CRC.upper())))


@pytest.mark.parametrize(
    ("field", "number", "name"),
    [
        ("ts", 2, "host timestamp"),
        ("id", 3, "host id"),
        ("score", 4, "score"),
        ("maint", 7, "maintenance"),
        ("stopped", 8, "stopped"),
        ("conf", 10, "conf_on_shared_storage"),
        ("lcts", 11, "local_conf_timestamp"),
        ("feature", 1, "feature version"),
    ],
)
def test_non_integer_field_with_valid_crc_is_corrupt(field: str, number: int, name: str) -> None:
    header = sign(example_fields(**{field: "12x"}))
    with pytest.raises(CorruptSlot, match=rf"host 2: field {number} \({name}\) is not an integer: '12x'"):
        decode_host_slot(2, raw_slot(header))


def test_header_that_is_not_utf8_is_corrupt() -> None:
    header = EXAMPLE_HEADER.encode().replace(b"host2", b"h\xffst2")
    with pytest.raises(CorruptSlot, match="host 2: header is not UTF-8"):
        decode_host_slot(2, raw_slot(header))


def test_extra_that_is_not_utf8_is_corrupt() -> None:
    with pytest.raises(CorruptSlot, match="host 2: extra text is not UTF-8"):
        decode_host_slot(2, raw_slot(EXAMPLE_HEADER, b"state=\xc3(\n"))


@pytest.mark.parametrize("count", [1, 7, 9])
def test_header_without_crc_field_is_not_trusted(count: int) -> None:
    header = "|".join(EXAMPLE_UNSIGNED.split("|")[:count])
    with pytest.raises(MalformedSlot, match=f"host 2: header has {count} fields; without the crc32"):
        decode_host_slot(2, raw_slot(header))


@pytest.mark.parametrize("count", [10, 11])
def test_ten_or_eleven_fields_lack_the_last_two(count: int) -> None:
    slot = decode_host_slot(2, raw_slot(sign(EXAMPLE_UNSIGNED.split("|")[:count])))
    assert slot is not None
    assert (slot.conf_on_shared_storage, slot.local_conf_timestamp) == (None, None)
    assert (slot.score, slot.maintenance, slot.stopped) == (3400, False, False)


def test_fields_after_the_twelfth_are_ignored() -> None:
    slot = decode_host_slot(2, raw_slot(sign([*EXAMPLE_UNSIGNED.split("|"), "future", "fields"])))
    assert slot == host_slot(2, extra="")


def test_flags_are_integers_above_zero_like_old_agents() -> None:
    slot = decode_host_slot(2, raw_slot(sign(example_fields(maint="2", stopped="-1", conf="0"))))
    assert slot is not None
    assert (slot.maintenance, slot.stopped, slot.conf_on_shared_storage) == (True, False, False)


def test_nul_inside_text_is_kept_like_old_readers() -> None:
    # Old readers strip only trailing NULs; a NUL inside the header is covered by the crc.
    fields = example_fields()
    fields[6] = "ho\0st2.example.com"
    slot = decode_host_slot(2, raw_slot(sign(fields), b"a=1\n\0\0b=2\n"))
    assert slot is not None
    assert slot.hostname == "ho\0st2.example.com" and slot.extra == "a=1\n\0\0b=2\n"


def test_every_error_is_a_slot_error_naming_the_slot() -> None:
    with pytest.raises(SlotError) as caught:
        decode_host_slot(17, raw_slot("garbage"))
    assert caught.value.slot == 17 and "host 17" in str(caught.value)


# --- encoding refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hostname": "a|b"}, "hostname of host 2 contains '|'"),
        ({"engine_status": '{"vm": "a|b"}'}, "engine_status of host 2 contains '|'"),
        ({"hostname": "a\0b"}, "hostname of host 2 contains '\\\\x00'"),
        ({"host_id": 0}, "host id 0 is outside 1..2000"),
        ({"host_id": 2001}, "host id 2001 is outside 1..2000"),
        ({"score": True}, "score of host 2 must be an integer"),
        ({"host_ts": "5"}, "host_ts of host 2 must be an integer"),
        ({"local_conf_timestamp": None}, "local_conf_timestamp of host 2 must be an integer"),
        ({"conf_on_shared_storage": None}, "conf_on_shared_storage of host 2 must be True or False"),
        ({"maintenance": 1}, "maintenance of host 2 must be True or False"),
        ({"extra": "a\0b"}, "extra text of host 2 contains NUL"),
        ({"hostname": "\udc80"}, "hostname of host 2 cannot be encoded as UTF-8"),
    ],
)
def test_encode_refuses_values_the_format_cannot_carry(changes: dict[str, object], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_host_slot(replace(host_slot(2), **changes))  # type: ignore[arg-type]


def test_header_limit_counts_bytes_not_characters() -> None:
    base = len(encode_header(host_slot(2, hostname="")))
    fits = "é" * ((BLOCK_BYTES - base) // 2)  # 2 bytes each: exactly at or just under 512 bytes
    assert len(encode_header(host_slot(2, hostname=fits))) <= BLOCK_BYTES
    too_long = fits + "é"  # still < 512 characters, but > 512 bytes
    assert base + len(too_long) < BLOCK_BYTES
    with pytest.raises(EncodeError, match=r"header of host 2 is \d+ bytes, over the format's 512"):
        encode_header(host_slot(2, hostname=too_long))


def test_header_of_exactly_512_bytes_round_trips() -> None:
    base = len(encode_header(host_slot(2, hostname="")))
    slot = host_slot(2, hostname="h" * (BLOCK_BYTES - base))
    data = encode_host_slot(slot)
    assert data[BLOCK_BYTES - 1] != 0
    assert decode_host_slot(2, data) == slot


def test_slot_over_4096_bytes_is_refused() -> None:
    assert len(encode_host_slot(host_slot(2, extra="x" * (SLOT_BYTES - BLOCK_BYTES)))) == SLOT_BYTES
    with pytest.raises(EncodeError, match=r"would be 4608 bytes, over 4096.*next host's slot"):
        encode_host_slot(host_slot(2, extra="x" * (SLOT_BYTES - BLOCK_BYTES + 1)))


# --- global block ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "maintenance"),
    [
        ("maintenance=1", True),
        ("maintenance=0", False),
        ("maintenance=True", True),
        ("maintenance=no\n", False),
        ("maintenance = yes", True),
        ("maintenance=1foo=bar", True),  # what B11's missing separator would produce
    ],
)
def test_global_block_accepts_any_to_bool_text(text: str, maintenance: bool) -> None:
    assert decode_global_block(text.encode().ljust(SLOT_BYTES, b"\0")) == GlobalBlock(maintenance=maintenance)


def test_global_block_reports_unknown_keys() -> None:
    block = decode_global_block(b"colour=blue\nmaintenance=1\nsize=\n".ljust(SLOT_BYTES, b"\0"))
    assert block == GlobalBlock(maintenance=True, unknown_keys=(("colour", "blue"), ("size", "")))


def test_global_block_without_maintenance_key_is_not_maintenance() -> None:
    assert decode_global_block(b"other=1".ljust(SLOT_BYTES, b"\0")) == GlobalBlock(False, (("other", "1"),))


def test_global_block_round_trip_drops_unknown_keys() -> None:
    block = GlobalBlock(maintenance=True, unknown_keys=(("colour", "blue"),))
    assert decode_global_block(encode_global_block(block)) == GlobalBlock(maintenance=True)


def test_empty_global_block_is_none() -> None:
    assert decode_global_block(bytes(SLOT_BYTES)) is None
    assert global_entries(bytes(SLOT_BYTES)) is None


def test_global_entries_keep_every_line_in_order() -> None:
    raw = b"maintenance=1\n\n colour = blue\nmaintenance=0".ljust(SLOT_BYTES, b"\0")
    assert global_entries(raw) == [("maintenance", "1"), ("colour", " blue"), ("maintenance", "0")]


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"maintenance=maybe", MalformedSlot, "global block \\(slot 0\\): maintenance value 'maybe' is not a boolean"),
        (b"maintenance=", MalformedSlot, "maintenance value '' is not a boolean"),
        (b"maintenance", MalformedSlot, "line 'maintenance' is not key=value"),
        (b"=1", MalformedSlot, "line '=1' is not key=value"),
        (b"maintenance=\xff", CorruptSlot, "global block \\(slot 0\\): text is not UTF-8"),
    ],
)
def test_bad_global_block(raw: bytes, error: type[SlotError], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_global_block(raw.ljust(SLOT_BYTES, b"\0"))


# --- the whole whiteboard ---------------------------------------------------------------------------------


def board(slots: dict[int, bytes], size: int = WHITEBOARD_BYTES) -> bytearray:
    data = bytearray(size)
    for index, raw in slots.items():
        data[index * SLOT_BYTES : (index + 1) * SLOT_BYTES] = raw
    return data


def test_whole_board_separates_good_and_bad_slots() -> None:
    leftover = bytearray(SLOT_BYTES)
    leftover[100] = 1
    data = board(
        {
            0: encode_global_block(GlobalBlock(maintenance=True)),
            1: encode_host_slot(host_slot(1, hostname="ü" * 100)),  # multi-byte text shifts nothing
            2: encode_host_slot(host_slot(2)),
            3: raw_slot(EXAMPLE_HEADER.replace("|3400|", "|3401|")),
            5: encode_host_slot(host_slot(6)),
            7: bytes(leftover),
            2000: encode_host_slot(host_slot(2000)),
        }
    )
    view = decode_whiteboard(data)
    assert view.global_block == GlobalBlock(maintenance=True) and view.global_error is None
    assert view.hosts == {1: host_slot(1, hostname="ü" * 100), 2: host_slot(2), 2000: host_slot(2000)}
    assert {i: type(e) for i, e in view.errors.items()} == {3: CorruptSlot, 5: SlotOfAnotherHost, 7: MalformedSlot}
    # Each unusable slot carries the crc32 of its own 4096 bytes (liveness for unparsable peers).
    assert view.fingerprints == {i: f"{zlib.crc32(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]):08x}" for i in (3, 5, 7)}
    # The bytes as stored of every slot whose first byte is not NUL, usable or not (slot 7's
    # leftover data starts with NUL: the original's reader skipped it too).
    assert view.slot_bytes == {i: bytes(data[i * SLOT_BYTES : (i + 1) * SLOT_BYTES]) for i in (0, 1, 2, 3, 5, 2000)}


def test_whole_board_reports_a_bad_global_block_separately() -> None:
    view = decode_whiteboard(
        board({0: b"maintenance=perhaps".ljust(SLOT_BYTES, b"\0"), 1: encode_host_slot(host_slot(1))})
    )
    assert view.global_block is None
    assert isinstance(view.global_error, MalformedSlot)
    assert list(view.hosts) == [1] and not view.errors


def test_short_buffer_reads_as_zero() -> None:
    one = encode_host_slot(host_slot(1))
    data = board({1: one}, size=SLOT_BYTES + 1000)  # slot 1 cut after its first 1000 bytes
    data[SLOT_BYTES:] = one[:1000]
    view = decode_whiteboard(data)
    assert view.hosts == {1: host_slot(1)}  # header and extra fit in the first 1000 bytes
    assert decode_whiteboard(b"").hosts == {} and decode_whiteboard(b"").global_block is None


def test_length_limits_the_valid_part_of_a_reused_buffer() -> None:
    data = board({1: encode_host_slot(host_slot(1)), 2: encode_host_slot(host_slot(2))})
    assert list(decode_whiteboard(data, length=2 * SLOT_BYTES).hosts) == [1]
    with pytest.raises(ValueError, match="length 9000000 is outside"):
        decode_whiteboard(data, length=9_000_000)


def test_bytes_past_slot_2000_are_ignored() -> None:
    data = board({2000: encode_host_slot(host_slot(2000))}, size=WHITEBOARD_BYTES + SLOT_BYTES)
    data[WHITEBOARD_BYTES:] = b"\xff" * SLOT_BYTES
    view = decode_whiteboard(data)
    assert list(view.hosts) == [2000] and not view.errors


def test_record_is_immutable() -> None:
    slot = host_slot(2)
    with pytest.raises(AttributeError):
        slot.score = 0  # type: ignore[misc]
    assert replace(slot, score=0).score == 0


def test_priority_in_the_extra_text() -> None:
    """Issue 14: he-ha's ``priority=<n>`` extra line; the header does not carry it."""
    assert priority_line(5) == "priority=5\n" and priority_line(-1000) == "priority=-1000\n"
    for bad in (1001, -1001, True, 2.0):
        with pytest.raises(EncodeError, match="priority"):
            priority_line(bad)  # type: ignore[arg-type]
    assert extra_priority("state=EngineDown\npriority=7\nscore_breakdown={}\n") == 7
    assert extra_priority("priority=-2") == -2  # first line, no newline
    assert extra_priority("state=EngineDown\n") is None  # the original's agents
    assert extra_priority("xpriority=3\n") is None and extra_priority("priority=3x\n") is None
    assert extra_priority("priority= 3\n") is None and extra_priority("priority=99999\n") is None
    assert extra_priority("priority=1\npriority=2\n") == 1
    slot = host_slot(3, extra="state=EngineDown\n" + priority_line(4))
    assert decode_host_slot(3, encode_host_slot(slot)).priority == 4  # type: ignore[union-attr]
    assert host_slot(3).priority is None

"""Property tests: every valid record round-trips; arbitrary bytes only ever give typed errors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from he_ha.whiteboard import BLOCK_BYTES, SLOT_BYTES, EncodeError, GlobalBlock, HostSlot, SlotError, codec

# Any text the format can carry in a header field: no '|', no NUL, no lone surrogates.
field_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="|\0"), max_size=200)
extra_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=1500)
big_int = st.integers(min_value=-(10**30), max_value=10**30)

host_slots = st.builds(
    HostSlot,
    host_id=st.integers(min_value=1, max_value=2000),
    host_ts=big_int,
    score=big_int,
    engine_status=field_text,
    hostname=field_text,
    maintenance=st.booleans(),
    stopped=st.booleans(),
    conf_on_shared_storage=st.booleans(),
    local_conf_timestamp=big_int,
    extra=extra_text,
)


def fits(slot: HostSlot) -> bool:
    """The format's size limits, computed here independently: header ≤ 512 bytes, slot ≤ 4096."""
    fields = [1, 1, slot.host_ts, slot.host_id, slot.score, slot.engine_status, slot.hostname, 0, 0, "00000000", 0]
    header = len("|".join(map(str, [*fields, slot.local_conf_timestamp])).encode())
    extra_blocks = -(-len(slot.extra.encode()) // BLOCK_BYTES)
    return header <= BLOCK_BYTES and (1 + extra_blocks) * BLOCK_BYTES <= SLOT_BYTES


@settings(max_examples=400)
@given(host_slots)
def test_valid_records_round_trip_or_are_refused_for_size(slot: HostSlot) -> None:
    try:
        data = codec.encode_host_slot(slot)
    except EncodeError:
        assert not fits(slot)
        return
    assert fits(slot)
    assert len(data) == SLOT_BYTES
    assert codec.decode_host_slot(slot.host_id, data) == slot


@given(st.booleans())
def test_global_block_round_trips(maintenance: bool) -> None:
    assert codec.decode_global_block(codec.encode_global_block(GlobalBlock(maintenance))) == GlobalBlock(maintenance)


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=2000), st.binary(max_size=SLOT_BYTES))
def test_arbitrary_bytes_decode_or_raise_a_slot_error(host_id: int, raw: bytes) -> None:
    data = raw.ljust(SLOT_BYTES, b"\0")
    for decode in (lambda: codec.decode_host_slot(host_id, data), lambda: codec.decode_global_block(data)):
        try:
            result = decode()
        except SlotError as exc:  # the only acceptable failure
            assert exc.slot in (0, host_id)
        else:
            assert result is None or isinstance(result, HostSlot | GlobalBlock)


@settings(max_examples=100)
@given(st.dictionaries(st.integers(min_value=0, max_value=40), st.binary(min_size=1, max_size=SLOT_BYTES), max_size=8))
def test_whole_board_never_raises_for_bad_slots(slots: dict[int, bytes]) -> None:
    data = bytearray(41 * SLOT_BYTES)
    for index, raw in slots.items():
        data[index * SLOT_BYTES : index * SLOT_BYTES + len(raw)] = raw
    view = codec.decode_whiteboard(data)
    assert set(view.hosts).isdisjoint(view.errors)
    assert set(view.hosts) | set(view.errors) <= set(slots)

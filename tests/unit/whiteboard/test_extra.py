"""The human-readable extra text: the original's line order, and a correct timeout date."""

from __future__ import annotations

from datetime import UTC

import pytest

from he_ha.whiteboard import EncodeError, decode_host_slot, encode_host_slot, format_extra
from tests.unit.whiteboard.samples import host_slot

WALL_AT_TS = 1772532000  # Tue Mar  3 10:00:00 2026 UTC (checked with `date -u -d @1772532000`)
HOST_TS = 81234
EPOCH = WALL_AT_TS - HOST_TS  # int(wall - monotonic) at collection time


def test_lines_in_the_original_order() -> None:
    slot = host_slot(1, host_ts=HOST_TS, local_conf_timestamp=HOST_TS - 7, score=3400)
    text = format_extra(slot, state="EngineDown", time_epoch=EPOCH, refresh_epoch=EPOCH, tz=UTC)
    assert text == (
        "metadata_parse_version=1\n"
        "metadata_feature_version=1\n"
        "timestamp=81234 (Tue Mar  3 10:00:00 2026)\n"
        "host-id=1\n"
        "score=3400\n"
        "vm_conf_refresh_time=81227 (Tue Mar  3 09:59:53 2026)\n"
        "conf_on_shared_storage=True\n"
        "maintenance=False\n"
        "state=EngineDown\n"
        "stopped=False\n"
    )


def test_timeout_line_is_wall_clock_and_sorted_last() -> None:
    slot = host_slot(3, host_ts=HOST_TS, maintenance=True, stopped=True, conf_on_shared_storage=False)
    text = format_extra(
        slot, state="EngineStop", time_epoch=EPOCH, refresh_epoch=EPOCH, timeout_at=WALL_AT_TS + 300, tz=UTC
    )
    assert text.splitlines()[-5:] == [
        "conf_on_shared_storage=False",
        "maintenance=True",
        "state=EngineStop",
        "stopped=True",
        "timeout=Tue Mar  3 10:05:00 2026",  # the original printed a January 1970 date here (B12)
    ]


def test_extra_text_fits_one_block_and_round_trips() -> None:
    slot = host_slot(2, host_ts=HOST_TS)
    text = format_extra(
        slot, state="EngineUnexpectedlyDown", time_epoch=EPOCH, refresh_epoch=EPOCH, timeout_at=WALL_AT_TS
    )
    assert len(text.encode()) < 512
    stored = host_slot(2, host_ts=HOST_TS, extra=text)
    assert decode_host_slot(2, encode_host_slot(stored)) == stored


def test_needs_the_fields_of_a_full_header() -> None:
    with pytest.raises(EncodeError, match="host 2 needs conf_on_shared_storage and local_conf_timestamp"):
        format_extra(host_slot(2, local_conf_timestamp=None), state="EngineUp", time_epoch=0, refresh_epoch=0)


def test_unrepresentable_time_is_a_typed_error() -> None:
    with pytest.raises(EncodeError, match="cannot be shown as a date"):
        format_extra(host_slot(2), state="EngineUp", time_epoch=10**20, refresh_epoch=0, tz=UTC)

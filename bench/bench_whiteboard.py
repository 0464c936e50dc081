"""Whiteboard scan cost: O_DIRECT read of all 2001 slots + decode, with 250 and 2000 hosts.

Targets on a 2-core box: one scan < 10 ms with 250 populated slots, < 50 ms with 2000.
Prints median and p90 per scan for the full async call (``Whiteboard.read_all``: thread hop,
O_DIRECT read of 8,196,096 bytes, decode) and, separately, the read and the decode alone.

    .venv/bin/python bench/bench_whiteboard.py [--runs 50] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from he_ha.storage.codec import (
    SLOT_BYTES,
    WHITEBOARD_BYTES,
    GlobalBlock,
    HostSlot,
    decode_whiteboard,
    encode_global_block,
    encode_host_slot,
    engine_status_json,
)
from he_ha.storage.direct_io import read_direct
from he_ha.storage.extra import format_extra
from he_ha.storage.whiteboard import Whiteboard

TARGET_MS = {250: 10.0, 2000: 50.0}


def typical_slot(host_id: int) -> bytes:
    slot = HostSlot(
        host_id=host_id,
        host_ts=873412 + host_id,
        score=3400,
        engine_status=engine_status_json(
            {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running on this host"}
        ),
        hostname=f"hypervisor-{host_id:04d}.datacenter.example.com",
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=873400,
    )
    extra = format_extra(slot, state="EngineDown", time_epoch=1_772_450_766, refresh_epoch=1_772_450_766)
    return encode_host_slot(replace(slot, extra=extra))


def make_volume(path: Path, hosts: int) -> None:
    data = bytearray(WHITEBOARD_BYTES)
    data[:SLOT_BYTES] = encode_global_block(GlobalBlock(maintenance=False))
    for host_id in range(1, hosts + 1):
        data[host_id * SLOT_BYTES : (host_id + 1) * SLOT_BYTES] = typical_slot(host_id)
    path.write_bytes(data)


def timed(runs: int, call: Callable[[], object]) -> list[float]:
    call()  # warm-up: thread start, buffer allocation
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):6.2f} ms   p90 {p90:6.2f} ms"


def bench(directory: Path, hosts: int, runs: int) -> float:
    path = directory / f"metadata-{hosts}"
    make_volume(path, hosts)
    loop = asyncio.new_event_loop()
    board = Whiteboard(path, 1)
    try:
        view = loop.run_until_complete(board.read_all())
        assert len(view.hosts) == hosts and not view.errors, "bench volume did not decode cleanly"
        full = timed(runs, lambda: loop.run_until_complete(board.read_all()))
    finally:
        board.close()
        loop.close()
    with mmap.mmap(-1, WHITEBOARD_BYTES) as buf:
        read_only = timed(runs, lambda: read_direct(str(path), buf, WHITEBOARD_BYTES))
        decode_only = timed(runs, lambda: decode_whiteboard(buf))
    path.unlink()
    print(f"{hosts:5d} populated slots, {runs} scans of 2001 slots:")
    print(f"   read_all (read + decode)  {summary(full)}   target < {TARGET_MS[hosts]:.0f} ms")
    print(f"   O_DIRECT read only        {summary(read_only)}")
    print(f"   decode only               {summary(decode_only)}")
    return statistics.median(full) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="scans per size (default 50)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the volume file goes (O_DIRECT)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="he-ha-bench-", dir=args.dir) as directory:
        medians = {hosts: bench(Path(directory), hosts, args.runs) for hosts in (250, 2000)}
    verdict = ", ".join(
        f"{hosts}: {'met' if medians[hosts] < TARGET_MS[hosts] else 'MISSED'}" for hosts in sorted(medians)
    )
    print(f"targets (median): {verdict}")


if __name__ == "__main__":
    main()

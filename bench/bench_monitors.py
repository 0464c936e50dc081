"""CPU and memory cost of the full monitor set at default intervals.

Runs network (ping 127.0.0.1), cpu and engine-health (libvirt test:///default, domain
"test"), memory, bridge (a real bridge in a scratch network namespace; needs root) and
storage (O_DIRECT reads of a scratch file) in one process for --seconds (default 60; longer
if a monitor has not reported once by then, up to 60 s more, else the bench fails naming it),
with an in-process aiohttp health page answering "DB Up". Prints CPU use as percent of one
core (this process plus its reaped children: ping, ip) and the peak RSS.
Targets: < 1 % of a core, < 40 MB RSS.

    .venv/bin/python bench/bench_monitors.py [--seconds 60] [--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from he_ha.monitors import (
    BridgeMonitor,
    CpuMonitor,
    EngineHealthMonitor,
    LibvirtDomain,
    MemoryMonitor,
    Monitor,
    MonitorRunner,
    NetworkMonitor,
    ReadingsSnapshot,
    StorageMonitor,
    direct_read_probe,
)

NETNS = f"hh-bench-{os.getpid()}"
READY_WAIT = 60.0  # after --seconds, how long to wait for a monitor that has not reported yet


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def memory_mib(*fields: str) -> float:
    """Sum of /proc/self/smaps_rollup fields (kB), in MiB."""
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0])
    return sum(values[f] for f in fields) / 1024


IMPORT_STEPS = [
    ("python", "pass"),
    ("+ asyncio (loads ssl/OpenSSL)", "import asyncio"),
    ("+ uvloop, structlog", "import asyncio, uvloop, structlog"),
    ("+ libvirt", "import asyncio, uvloop, structlog, libvirt"),
    ("+ aiohttp", "import asyncio, uvloop, structlog, libvirt, aiohttp"),
    ("+ pydantic (he_ha.config)", "import asyncio, uvloop, structlog, libvirt, aiohttp, he_ha.config"),
    ("he_ha.monitors, nothing running", "import he_ha.monitors"),
]


def import_breakdown() -> None:
    """Peak RSS of fresh interpreters importing more and more: what the floor is made of."""
    for label, code in IMPORT_STEPS:
        # VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's RSS.
        probe = f"{code}\nimport re; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
        out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60)
        print(f"  {int(out.stdout) / 1024:5.1f} MiB  {label}")


async def serve_health_page() -> tuple[web.AppRunner, str]:
    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="DB Up!Welcome to Health Status!")

    app = web.Application()
    app.router.add_get("/ovirt-engine/services/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/ovirt-engine/services/health"


async def bench(seconds: float, scratch: Path) -> None:
    volume = scratch / "hosted-engine.metadata"
    volume.write_bytes(b"\0" * (1 << 20))
    server, url = await serve_health_page()
    domain = LibvirtDomain("test", uri="test:///default")
    monitors: list[Monitor[Any]] = [
        NetworkMonitor("ping", gateway="127.0.0.1"),
        CpuMonitor(domain),
        MemoryMonitor(4096),
        BridgeMonitor("br0", netns=NETNS),
        EngineHealthMonitor(domain, url=url),
        StorageMonitor(direct_read_probe(volume, offset=4096)),
    ]
    rss_before = memory_mib("Rss")
    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.monotonic()
    snapshot = ReadingsSnapshot()
    async with MonitorRunner(monitors, snapshot):
        await asyncio.sleep(seconds)
        # A short --seconds may end before a slow first probe (ping) reports: run on, up to
        # READY_WAIT, until every monitor has published once, so the figures cover all of them.
        deadline = time.monotonic() + READY_WAIT
        while (missing := [m.name for m in monitors if not snapshot.published[m.name]]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    wall = time.monotonic() - wall0
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    await server.cleanup()

    own = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    kids = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    print(f"ran {wall:.1f} s on {type(asyncio.get_running_loop()).__module__}")
    if missing:
        raise SystemExit(f"bench_monitors: no reading from {', '.join(missing)} within {seconds + READY_WAIT:g} s")
    print(f"readings: {dict(sorted(snapshot.published.items()))}  errors: {sum(snapshot.failed.values())}")
    print(
        f"cpu: {100 * (own + kids) / wall:.3f} % of one core "
        f"(process {100 * own / wall:.3f} %, child processes {100 * kids / wall:.3f} %)"
    )
    print(
        f"rss: peak {self1.ru_maxrss / 1024:.1f} MiB; {rss_before:.1f} MiB after imports and set-up, "
        f"{memory_mib('Rss'):.1f} MiB at the end"
    )
    print(
        f"end: private {memory_mib('Private_Clean', 'Private_Dirty'):.1f} MiB, "
        f"shared library pages {memory_mib('Shared_Clean'):.1f} MiB, anonymous {memory_mib('Anonymous'):.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run the monitors (default 60)")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop instead of uvloop")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_monitors: needs root (it creates a network namespace with a bridge)")
    ip("netns", "add", NETNS)
    try:
        ip("-n", NETNS, "link", "add", "br0", "type", "bridge")
        ip("-n", NETNS, "link", "set", "br0", "up")
        with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
            if args.no_uvloop:
                asyncio.run(bench(args.seconds, Path(scratch)))
            else:
                import uvloop

                uvloop.run(bench(args.seconds, Path(scratch)))
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True, timeout=10)
    print("peak RSS by imports alone:")
    import_breakdown()


if __name__ == "__main__":
    main()

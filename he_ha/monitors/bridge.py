"""Bridge monitor: the management bridge exists and is up.

The original asked VDSM for the bridge's ``state`` (spec §5.6). he-ha runs
``ip -j -d link show dev <bridge>`` (optionally ``-n <netns>``, which is how tests look
into a network namespace) and calls the bridge up when it is administratively up (IFF_UP,
flag ``UP``) AND has carrier (``LOWER_UP``). ``operstate`` is not used: on recent kernels
an admin-up bridge without ports reports ``UNKNOWN``, not ``UP``. A bridge whose ports
all lack carrier shows ``NO-CARRIER`` and counts as down, since no management traffic
can pass it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from he_ha.monitors.commands import run_command
from he_ha.monitors.framework import Monitor, MonitorError, require_positive

# What the kernel accepts as an interface name (IFNAMSIZ 16, no '/', no whitespace).
_IFNAME = re.compile(r"[^/\s:]{1,15}")


@dataclass(frozen=True, slots=True)
class BridgeStatus:
    name: str
    exists: bool
    up: bool  # admin_up and carrier: the value the score uses
    admin_up: bool = False
    carrier: bool = False
    operstate: str | None = None
    kind: str | None = None  # "bridge" for a Linux bridge, None for a plain device


def bridge_status(name: str, link: dict[str, Any]) -> BridgeStatus:
    flags = set(link.get("flags", []))
    admin_up = "UP" in flags
    carrier = "LOWER_UP" in flags
    kind = link.get("linkinfo", {}).get("info_kind")
    return BridgeStatus(name, True, admin_up and carrier, admin_up, carrier, link.get("operstate"), kind)


class BridgeMonitor(Monitor[BridgeStatus]):
    """``bridge``: hosted-engine.conf ``bridge`` (e.g. ovirtmgmt). ``netns``: look inside
    this named network namespace instead of the current one. ``interval`` 10 s,
    ``timeout`` 5 s for the ``ip`` command."""

    name = "bridge"

    def __init__(
        self,
        bridge: str,
        *,
        netns: str | None = None,
        interval: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        if not _IFNAME.fullmatch(bridge or ""):
            raise ValueError(f"BridgeMonitor: {bridge!r} is not a valid interface name")
        if netns is not None and not re.fullmatch(r"[^/\s]+", netns):
            raise ValueError(f"BridgeMonitor: {netns!r} is not a valid network namespace name")
        require_positive("BridgeMonitor", timeout=timeout)
        super().__init__(interval=interval, deadline=timeout + 2.0)
        self.bridge = bridge
        self.netns = netns
        self.timeout = timeout

    async def probe(self) -> BridgeStatus:
        namespace = [] if self.netns is None else ["-n", self.netns]
        result = await run_command(["ip", *namespace, "-j", "-d", "link", "show", "dev", self.bridge], self.timeout)
        if result.returncode != 0:
            if "does not exist" in result.stderr:
                return BridgeStatus(self.bridge, exists=False, up=False)
            raise MonitorError(f"ip link show {self.bridge} exited {result.returncode}: {result.stderr.strip()}")
        try:
            links = json.loads(result.stdout)
            return bridge_status(self.bridge, links[0])
        except (ValueError, IndexError, TypeError, AttributeError) as exc:
            raise MonitorError(f"ip link show {self.bridge}: unexpected output ({exc})") from None

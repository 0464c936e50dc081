"""Network monitor: ping | dns | tcp | none probes, a 0.0-1.0 success fraction, hysteresis.

As the original (spec §5.2): each round runs ``probes`` probes ``probe_delay`` seconds
apart, each with its own timeout, and reports successes/probes. Beyond the original
(user pain P2): a fault must persist before it counts. ``effective`` stays at 1.0 until
every round for ``fault_hold`` seconds has been below 1.0; then it follows the raw value.
One clean round ends the fault at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from he_ha.config import HostedEngineConf, NetworkTest
from he_ha.monitors.framework import Monitor, MonitorError, require_positive
from he_ha.monitors.offloop import run_command

_TESTS = ("ping", "dns", "tcp", "none")


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    test: str
    raw: float  # success fraction of this round
    effective: float  # after hysteresis: the value the score should use
    successes: int
    probes: int
    fault_since: float | None  # monotonic start of the current run of faulty rounds
    last_failure: str | None  # why the last failed probe of this round failed


class FaultHold:
    """Falling-edge hysteresis: report a fault only once it has lasted ``hold`` seconds."""

    def __init__(self, hold: float) -> None:
        if hold < 0:
            raise ValueError(f"fault_hold must be >= 0, got {hold!r}")
        self.hold = hold
        self.since: float | None = None

    def apply(self, raw: float, now: float) -> float:
        if raw >= 1.0:
            self.since = None
            return raw
        if self.since is None:
            self.since = now
        return raw if now - self.since >= self.hold else 1.0


class NetworkMonitor(Monitor[NetworkStatus]):
    """Probe the management network.

    ``test``: ping (``gateway`` required), tcp (``tcp_address`` and ``tcp_port``
    required), dns (``dig`` over TCP against ``dns_server``:``dns_port``, default: the
    system resolvers) or none (always 1.0). Defaults follow the original: 5 probes,
    0.5 s apart, 5 s per probe, every 10 s; ``fault_hold`` 90 s is he-ha's addition.
    ``netns``: run the ping/dig commands inside this named network namespace (used by
    tests to isolate a probe; not supported for tcp, which connects in-process).
    """

    name = "network"

    def __init__(
        self,
        test: NetworkTest,
        *,
        gateway: str | None = None,
        tcp_address: str | None = None,
        tcp_port: int | None = None,
        dns_server: str | None = None,
        dns_port: int = 53,
        probes: int = 5,
        probe_delay: float = 0.5,
        probe_timeout: float = 5.0,
        fault_hold: float = 90.0,
        interval: float = 10.0,
        netns: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if test not in _TESTS:
            raise ValueError(f"network test must be one of {', '.join(_TESTS)}, got {test!r}")
        if test == "ping" and not gateway:
            raise ValueError("network test 'ping' needs a gateway address")
        if test == "tcp" and (not tcp_address or tcp_port is None):
            raise ValueError("network test 'tcp' needs tcp_address and tcp_port")
        if tcp_port is not None and not 1 <= tcp_port <= 65535:
            raise ValueError(f"tcp_port must be 1..65535, got {tcp_port!r}")
        if not 1 <= dns_port <= 65535:
            raise ValueError(f"dns_port must be 1..65535, got {dns_port!r}")
        if netns is not None and test not in ("ping", "dns"):
            raise ValueError(f"network test {test!r} cannot run in a network namespace (only ping and dns)")
        require_positive("NetworkMonitor", probes=probes, probe_timeout=probe_timeout)
        if probe_delay < 0:
            raise ValueError(f"NetworkMonitor: probe_delay must be >= 0, got {probe_delay!r}")
        # Worst case: every probe uses its full timeout (+1 s for process start/kill).
        round_time = probes * (probe_timeout + 1.0) + (probes - 1) * probe_delay
        super().__init__(interval=interval, deadline=round_time + 5.0)
        self.test = test
        self.gateway = gateway
        self.tcp_address = tcp_address
        self.tcp_port = tcp_port
        self.dns_server = dns_server
        self.dns_port = dns_port
        self.probes = probes
        self.probe_delay = probe_delay
        self.probe_timeout = probe_timeout
        self._in_netns = [] if netns is None else ["ip", "netns", "exec", netns]
        self._hold = FaultHold(fault_hold)
        self._clock = clock

    @classmethod
    def from_conf(cls, conf: HostedEngineConf, **settings: Any) -> NetworkMonitor:
        """Targets from hosted-engine.conf; timing settings as keyword arguments."""
        return cls(
            conf.network_test,
            gateway=conf.gateway,
            tcp_address=conf.tcp_t_address,
            tcp_port=conf.tcp_t_port,
            **settings,
        )

    async def probe(self) -> NetworkStatus:
        successes = 0
        last_failure: str | None = None
        for index in range(self.probes):
            if index and self.probe_delay:
                await asyncio.sleep(self.probe_delay)
            failure = await self._single_probe()
            if failure is None:
                successes += 1
            else:
                last_failure = failure
        raw = successes / self.probes
        effective = self._hold.apply(raw, self._clock())
        return NetworkStatus(
            test=self.test,
            raw=raw,
            effective=effective,
            successes=successes,
            probes=self.probes,
            fault_since=self._hold.since,
            last_failure=last_failure,
        )

    async def _single_probe(self) -> str | None:
        """None on success, else the reason for the failure."""
        if self.test == "none":
            return None
        if self.test == "tcp":
            return await self._tcp()
        if self.test == "ping":
            assert self.gateway is not None
            family = ["-6"] if ":" in self.gateway else []
            argv = ["ping", "-c", "1", "-W", f"{self.probe_timeout:g}", *family, self.gateway]
        else:
            server = [] if self.dns_server is None else [f"@{self.dns_server}", "-p", str(self.dns_port)]
            argv = ["dig", "+tries=1", f"+time={max(1, math.ceil(self.probe_timeout))}", "+tcp", *server]
        try:
            result = await run_command([*self._in_netns, *argv], self.probe_timeout + 1.0)
        except MonitorError as exc:
            return str(exc)
        if result.returncode == 0:
            return None
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return f"{argv[0]} exited {result.returncode}" + (f": {output[-1]}" if output else "")

    async def _tcp(self) -> str | None:
        assert self.tcp_address is not None and self.tcp_port is not None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.tcp_address, self.tcp_port), self.probe_timeout
            )
        except TimeoutError:
            return f"tcp connect to {self.tcp_address}:{self.tcp_port} timed out after {self.probe_timeout:g} s"
        except OSError as exc:
            return f"tcp connect to {self.tcp_address}:{self.tcp_port} failed: {exc.strerror or exc}"
        writer.close()
        with contextlib.suppress(OSError):  # the connect succeeded; a reset while closing does not undo it
            await writer.wait_closed()
        return None

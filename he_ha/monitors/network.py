"""Network monitor: ping | dns | tcp | none probes, a 0.0-1.0 success fraction, hysteresis.

As the original (spec §5.2): each round runs ``probes`` probes ``probe_delay`` seconds
apart, each with its own timeout, and reports successes/probes (the ping test sends a
round's probes from a single ``ping -c <probes>`` process). Beyond the original (user
pain P2): a fault must persist before it counts. ``effective`` stays at 1.0 until
every round for ``fault_hold`` seconds has been below 1.0; then it follows the raw value.
One clean round ends the fault at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from he_ha.config import HostedEngineConf, NetworkTest
from he_ha.monitors.commands import CommandOutput, run_command
from he_ha.monitors.framework import Monitor, MonitorError, require_positive

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


@dataclass(frozen=True, slots=True)
class PingSummary:
    """iputils-ping's statistics line, e.g. "5 packets transmitted, 0 received, +3 errors,
    100% packet loss, time 4082ms". Duplicate replies are not counted in ``received``."""

    transmitted: int
    received: int
    line: str

    # iputils is built without NLS on Debian, so this line is never translated.
    _PATTERN = re.compile(r"^(\d+) packets transmitted, (\d+) received\b.*$", re.MULTILINE)

    @classmethod
    def parse(cls, output: str) -> PingSummary | None:
        """The summary in ping's stdout; None if there is none (ping could not probe).

        Raises MonitorError for a summary that cannot be right (more replies than probes).
        """
        found = cls._PATTERN.search(output)
        if found is None:
            return None
        summary = cls(int(found[1]), int(found[2]), found[0].strip())
        if summary.received > summary.transmitted:
            raise MonitorError(f"ping statistics do not add up: {summary.line}")
        return summary


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
    For ping, ``probe_delay`` is ping's ``-i`` send interval and ``probe_timeout`` its
    ``-W`` wait for replies after the last send (iputils refuses an interval below 2 ms,
    200 ms in older versions, unless run as root).
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
        # Worst case for dns/tcp, which probe one at a time: every probe uses its full
        # timeout (+1 s for process start/kill). A ping round has a shorter deadline of its own.
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
        if self.test == "ping":
            successes, last_failure = await self._ping_round()
        else:
            successes, last_failure = await self._probe_each()
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

    async def _ping_round(self) -> tuple[int, str | None]:
        """All of the round's echo requests from ONE ping process (a process per probe
        dominated the idle supervisor's CPU). Returns (replies, why some were missing).

        Raises MonitorError (an error reading) when ping did not measure anything we can
        trust: it overran the round's deadline, or ended without its statistics line
        other than by iputils' "cannot send at all" exit 2 (see docs/monitors.md).
        """
        assert self.gateway is not None
        family = ["-6"] if ":" in self.gateway else []
        timing = ["-c", str(self.probes), "-i", f"{self.probe_delay:g}", "-W", f"{self.probe_timeout:g}"]
        argv = ["ping", "-n", *timing, *family, self.gateway]
        # Sends take (probes-1)*delay; then ping waits at most -W for late replies.
        deadline = (self.probes - 1) * self.probe_delay + self.probe_timeout + 2.0
        result = await run_command([*self._in_netns, *argv], deadline)
        summary = PingSummary.parse(result.stdout)
        if summary is None:
            if result.returncode == 2:  # no route, unknown host: no probe could be sent
                return 0, _exit_reason("ping", result)
            raise MonitorError(_exit_reason("ping", result) + " (no statistics line)")
        if summary.transmitted != self.probes:
            raise MonitorError(f"ping sent {summary.transmitted} probes, asked for {self.probes}: {summary.line}")
        lost = self.probes - summary.received
        if not lost:
            return summary.received, None
        return summary.received, f"{lost} of {self.probes} pings to {self.gateway} unanswered: {summary.line}"

    async def _probe_each(self) -> tuple[int, str | None]:
        """One probe at a time, ``probe_delay`` apart (dns, tcp, none)."""
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
        return successes, last_failure

    async def _single_probe(self) -> str | None:
        """None on success, else the reason for the failure."""
        if self.test == "none":
            return None
        if self.test == "tcp":
            return await self._tcp()
        server = [] if self.dns_server is None else [f"@{self.dns_server}", "-p", str(self.dns_port)]
        argv = ["dig", "+tries=1", f"+time={max(1, math.ceil(self.probe_timeout))}", "+tcp", *server]
        try:
            result = await run_command([*self._in_netns, *argv], self.probe_timeout + 1.0)
        except MonitorError as exc:
            return str(exc)
        return None if result.returncode == 0 else _exit_reason("dig", result)

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


def _exit_reason(command: str, result: CommandOutput) -> str:
    """'<command> exited <rc>: <last line of its stderr, else of its stdout>'."""
    output = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return f"{command} exited {result.returncode}" + (f": {output[-1]}" if output else "")

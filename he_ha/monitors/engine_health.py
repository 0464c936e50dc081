"""Engine-health monitor: the VM's libvirt state plus the engine's HTTP health page.

Replaces the original's VDSM getStats + ``hosted-engine --check-liveliness`` (spec §5.8):
the page (default ``http://<fqdn>/ovirt-engine/services/health``) must answer 2xx with
"DB Up" in the body within ``page_timeout``. The page is fetched only while the VM runs.
Any other HTTP answer means the engine is alive but not ready (he-ha's "engine alive, not
ready" reason: slow is not dead); no answer means it is silent (the original's reasons).
The result rows, the sticky vm value, the grace period and the bad-health confirmation
live in ``EngineStatusTracker``. Works by polling alone; the supervisor may ``poke`` it
with libvirt lifecycle events for an immediate re-probe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import libvirt

from he_ha.config import HostedEngineConf
from he_ha.monitors.engine_status import (
    STATS_FAILED_STATUS,
    EngineStatus,
    EngineStatusTracker,
    NeedsLiveness,
    shutoff_reason_of_stop_event,
)
from he_ha.monitors.framework import Monitor, Reading, require_positive
from he_ha.monitors.libvirt_domain import DomainObserver, LibvirtUnavailable

_MAX_BODY = 64 * 1024  # the real page is a few dozen bytes; never buffer a runaway body


@dataclass(frozen=True, slots=True)
class EngineHealthReport:
    status: EngineStatus  # the original's object: vm, health, detail[, reason]. Do not mutate.
    page_ok: bool | None  # this round's health page result; None when not fetched
    page_error: str | None  # why the page check failed
    failures: int  # consecutive failed page checks
    failing_since: float | None  # monotonic time of the first of them
    in_grace: bool  # the VM is in its start-up grace period
    problem: str | None = None  # the libvirt failure behind a "failed to getVmStats" row
    # The page failed but gave an HTTP answer (alive, not ready); None when not fetched.
    page_answered: bool | None = None

    def to_json(self) -> str:
        """As the original published it (json.dumps of the dict)."""
        return json.dumps(self.status)


def engine_status(reading: Reading[EngineHealthReport] | None) -> EngineStatus:
    """The status object to act on and publish; the "unknown" row when there is no fresh
    value (no reading yet, or the probe itself failed) — never a healthy default."""
    if reading is None or reading.value is None:
        return dict(STATS_FAILED_STATUS)
    return reading.value.status


class EngineHealthMonitor(Monitor[EngineHealthReport]):
    """The engine VM's state and health.

    ``domain``: the VM in libvirt. ``url``: the health page; default built from ``fqdn``.
    ``interval`` 10 s; ``page_timeout`` 20 s (the original's liveliness timeout);
    ``grace`` 600 s (the agent's EngineStarting limit, so a booting engine is never
    called dead while the state machine still waits for it); ``min_failures`` 3 and
    ``min_bad_time`` 60 s before a healthy engine is reported bad.
    """

    name = "engine-health"

    def __init__(
        self,
        domain: DomainObserver,
        *,
        url: str | None = None,
        fqdn: str | None = None,
        interval: float = 10.0,
        page_timeout: float = 20.0,
        grace: float = 600.0,
        min_failures: int = 3,
        min_bad_time: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if url is None:
            if not fqdn:
                raise ValueError("EngineHealthMonitor: give the health page url or the engine fqdn")
            url = f"http://{fqdn}/ovirt-engine/services/health"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"EngineHealthMonitor: url must be http(s)://..., got {url!r}")
        require_positive("EngineHealthMonitor", page_timeout=page_timeout)
        super().__init__(interval=interval, deadline=domain.timeout + page_timeout + 5.0)
        self.domain = domain
        self.url = url
        self.page_timeout = page_timeout
        self.tracker = EngineStatusTracker(grace=grace, min_failures=min_failures, min_bad_time=min_bad_time)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._stop_event_detail: int | None = None
        self._lock_conflict = False

    @classmethod
    def from_conf(cls, conf: HostedEngineConf, domain: DomainObserver, **settings: Any) -> EngineHealthMonitor:
        return cls(domain, fqdn=conf.fqdn, **settings)

    def poke(self, event: int | None = None, detail: int | None = None) -> None:
        """Re-probe now. ``event``/``detail``: a libvirt domain lifecycle event, if any.
        A STOPPED event is remembered for the next probe so a transient domain that has
        already vanished is reported by how it stopped (e.g. migrated away)."""
        if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail is not None:
            self._stop_event_detail = detail
        elif event == libvirt.VIR_DOMAIN_EVENT_STARTED:
            self._stop_event_detail = None
        super().poke()

    def report_lock_conflict(self) -> None:
        """The supervisor's start of the VM failed because another host holds its lease
        (a structured sanlock/libvirt error). Reported once, as the original's
        "Storage of VM is locked" row, and the sticky state becomes "down"."""
        self._lock_conflict = True
        super().poke()

    async def probe(self) -> EngineHealthReport:
        stop_detail, self._stop_event_detail = self._stop_event_detail, None
        lock_conflict, self._lock_conflict = self._lock_conflict, False
        try:
            info = await self.domain.observe()
        except LibvirtUnavailable as exc:
            return self._result(dict(STATS_FAILED_STATUS), problem=str(exc))
        tracker = self.tracker
        if info.exists:
            assert info.state is not None and info.reason is not None
            row = tracker.domain_state(
                info.state, info.reason, self._clock(), lock_conflict=lock_conflict, incoming=info.incoming
            )
        elif stop_detail is not None:
            # Gone already, but the event says how it stopped: report that Down.
            reason = shutoff_reason_of_stop_event(stop_detail)
            row = tracker.domain_state(libvirt.VIR_DOMAIN_SHUTOFF, reason, self._clock(), lock_conflict=lock_conflict)
        else:
            row = tracker.domain_missing(lock_conflict=lock_conflict)
        if not isinstance(row, NeedsLiveness):
            return self._result(row)
        page_error, answered = await self._check_page()
        row = tracker.liveness(row.detail, page_error is None, self._clock(), answered=answered)
        return self._result(row, page_error, checked=True, answered=answered)

    def _result(
        self,
        row: EngineStatus,
        page_error: str | None = None,
        *,
        checked: bool = False,
        problem: str | None = None,
        answered: bool = False,
    ) -> EngineHealthReport:
        tracker = self.tracker
        return EngineHealthReport(
            status=row,
            page_ok=(page_error is None) if checked else None,
            page_error=page_error,
            failures=tracker.failures,
            failing_since=tracker.failing_since,
            in_grace=tracker.in_grace(self._clock()),
            problem=problem,
            page_answered=(answered and page_error is not None) if checked else None,
        )

    async def _check_page(self) -> tuple[str | None, bool]:
        """(None, True) if the page says "DB Up", else (why not, whether it answered at all).

        Any HTTP answer (an error status, a body without "DB Up") means the engine, or the
        web server in front of it, is alive: slow is not dead (docs/monitors.md). No answer
        within the timeout, or no connection, is silence."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.page_timeout))
        try:
            async with self._session.get(self.url) as response:
                body = (await response.content.read(_MAX_BODY)).decode("utf-8", errors="replace")
        except TimeoutError:
            return f"no answer from {self.url} within {self.page_timeout:g} s", False
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:  # a bad answer is an answer
            return f"{self.url}: {type(exc).__name__}: {exc}", True
        except aiohttp.ClientError as exc:
            return f"{self.url}: {type(exc).__name__}: {exc}", False
        if not 200 <= response.status < 300:
            return f"{self.url} answered HTTP {response.status}", True
        if "DB Up" not in body:
            return f"{self.url} does not say 'DB Up': {body[:80]!r}", True
        return None, True

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.domain.aclose()

"""The contract between the admin API and the supervisor that serves it.

The admin HTTP layer (he_ha/admin/) knows only this protocol and these models; the
supervisor implements ``Controller``. Everything here is JSON-serialisable (pydantic), so
the same models are the wire format of the admin socket and of ``hosted-engine --json``.

``status``, ``decisions`` and ``metrics`` are plain methods answering from memory: they must
answer at once even while shared storage hangs. The mutating calls are coroutines because
they touch ha.conf, the whiteboard, sanlock or libvirt; each has its own deadline inside.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict


class MaintenanceMode(StrEnum):
    GLOBAL = "global"
    LOCAL = "local"
    NONE = "none"


class PenaltyView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # config | network | bridge | cpu | memory | retries
    amount: int
    reason: str


class ScoreView(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: int
    penalties: list[PenaltyView]
    override: str | None  # why the total is forced to 0, if it is
    total: int


class HostView(BaseModel):
    """One whiteboard slot as this host sees it (its own slot included, ``local`` True)."""

    model_config = ConfigDict(frozen=True)

    host_id: int
    local: bool
    hostname: str | None  # None when the slot is unreadable
    state: str | None  # FSM state name from the slot's extra text (or ours); None if unknown
    score: int | None
    score_breakdown: ScoreView | None  # ours always; a peer's when it published one
    engine_status: dict[str, str] | None  # {"vm","health","detail"[,"reason"]}
    live: bool  # "Status up-to-date": the slot's timestamp changed within the liveness window
    host_ts: int | None
    maintenance: bool | None  # local maintenance flag in the slot header
    stopped: bool | None
    conf_on_shared_storage: bool | None
    local_conf_timestamp: int | None
    crc32: str | None
    extra: str  # the human-readable part of the slot, as written
    sanlock: str | None  # sanlock's view of this host id: live|fail|dead|free|unknown
    error: str | None  # why the slot could not be decoded (corrupt, too new, ...)
    # Host priority (issue 14; higher is preferred): the slot's ``priority=`` extra line, the
    # default 0 when it has none (the original's agents); None when the slot is unreadable.
    priority: int | None = None


class VmDefinitionView(BaseModel):
    """This host's engine VM definition (vm.conf): where it came from, and what is wrong."""

    model_config = ConfigDict(frozen=True)

    usable: bool  # a start can be made here (a definition with domain XML is known)
    source: str | None  # ovf-store | conf | last-good | conf-volume | explicit (--vm-conf); None: no source gave one
    path: str | None  # the file (or OVF_STORE volume) it was read from
    age: float | None  # seconds since it was last read from that source
    problem: str | None  # why no source gives a startable definition now (each source named), why a better
    # source (OVF_STORE) fails while a later one is used, or a write failure


class LeaseView(BaseModel):
    """A sanlock resource lease as a ``<lease>`` device names it."""

    model_config = ConfigDict(frozen=True)

    lockspace: str
    key: str
    path: str
    offset: int


class LaunchXmlView(BaseModel):
    """The domain XML a start would hand libvirt now (``GET /v1/vm/definition?resolved=true``)."""

    model_config = ConfigDict(frozen=True)

    # exactly what goes to libvirt: made by the lease holder's own prepare, as at a start; with the
    # QEMU holder two <lease> elements, he-ha's then the engine's disk lease (when the definition
    # carries one); the keeper and worker holders add none
    xml: str
    engine_xml: bool  # resolved as the engine's XML (placeholders, volumes, hook); False: a plain XML, as is
    changes: list[str]  # what the resolution changed, one line each
    networks: list[str]  # libvirt networks the domain needs (a start creates a missing vdsm-<net>)
    # the engine's own disk lease, resolved: in ``xml`` (and held by QEMU) with the QEMU holder,
    # which joins its lockspace <SD> at the start; left out of ``xml`` by the keeper and worker holders
    engine_lease: LeaseView | None


class VmDefinitionDetail(BaseModel):
    """``GET /v1/vm/definition``: the definition this host uses now, and where it came from."""

    model_config = ConfigDict(frozen=True)

    definition: VmDefinitionView
    vm_id: str | None  # the engine VM's UUID (None: no definition)
    vm_name: str | None
    vm_conf: str | None  # the vm.conf lines in use, without the header (None: no definition)
    startable: bool  # the definition in use has domain XML (else identity and memory only)
    launch: LaunchXmlView | None = None  # with ?resolved=true, when it resolves
    launch_error: str | None = None  # with ?resolved=true: why it does not (naming the placeholder, volume, ...)


class AlertView(BaseModel):
    """An active alert of this host (he_ha.fsm.alerts; docs/notifications.md)."""

    model_config = ConfigDict(frozen=True)

    kind: str  # vm-without-lease | second-copy-destroyed | gave-up.retry-limit | gave-up.no-eligible-host
    reason: str
    age: float  # seconds since it was raised


class ClusterStatus(BaseModel):
    """Everything ``--vm-status`` shows, from this host's point of view."""

    model_config = ConfigDict(frozen=True)

    host_id: int  # this host
    global_maintenance: bool | None  # None: slot 0 unreadable
    hosts: list[HostView]
    whiteboard_age: float | None  # seconds since the last successful whiteboard read
    storage_error: str | None  # the last whiteboard read error while it persists
    lease_owner: int | None  # host id holding the VM lease (sanlock), None if free/unknown
    vm_here: str  # local VM state: running | paused | shutoff | absent | unknown ...
    hypervisor: str  # connected | connecting | hung | unreachable | closed
    vm_definition: VmDefinitionView | None = None  # None: not reported (a daemon older than the field)
    # This host's engine (issue 14, slow is not dead): healthy | not-ready (its health page
    # answers, not "DB Up") | silent (no answer); None: no VM runs here, or no reading yet.
    engine_liveness: str | None = None
    # Active alerts (issue 14): what was mailed at once, kept here while it lasts. ``gave_up``:
    # HA gave up (one of the gave-up.* alerts is active: the retry limit, or no eligible host).
    alerts: list[AlertView] = []
    gave_up: bool = False


class CommandResult(BaseModel):
    """Outcome of a mutating admin call. ``ok`` False carries an explanation, never silence.

    A refusal a client must tell apart from others (to print the original's own text)
    names itself in ``detail["refusal"]``: one of the ``Refusal`` values."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    message: str
    detail: dict[str, Any] = {}


class Refusal(StrEnum):
    """``detail["refusal"]`` of a refused call (409)."""

    VM_RUNNING_HERE = "vm_running_here"  # maintenance local / vm start: the VM runs here (detail["vm"])
    LEASE_BUSY = "lease_busy"  # vm start: another host holds the VM lease
    VM_NOT_HERE = "vm_not_here"  # console password: no running engine VM on this host
    NO_VNC = "no_vnc"  # console password: the VM has no VNC display with a port


class Metric(BaseModel):
    """One Prometheus series; the admin layer renders the exposition format.

    A counter's name ends in ``_total``. A histogram's ``value`` is its count, ``buckets`` the
    cumulative (upper bound, count) pairs ending with +Inf, ``sum`` the observed total.
    """

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. he_ha_score
    kind: Literal["gauge", "counter", "histogram"]
    help: str
    value: float
    labels: dict[str, str] = {}
    buckets: tuple[tuple[float, float], ...] = ()
    sum: float = 0.0


class Controller(Protocol):
    def status(self) -> ClusterStatus: ...

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` decision records, newest last, as replayable JSON objects."""
        ...

    def metrics(self) -> list[Metric]: ...

    def vm_definition(self) -> VmDefinitionDetail:
        """The VM definition in use, from memory."""
        ...

    async def launch_preview(self) -> VmDefinitionDetail:
        """``vm_definition`` plus the domain XML a start would hand libvirt now (resolved off
        the loop with a deadline; creates nothing), or why it cannot be made."""
        ...

    async def set_maintenance(self, mode: MaintenanceMode) -> CommandResult:
        """global: slot 0 maintenance=1 and ha.conf local flags cleared; local: ha.conf
        local_maintenance=local_maintenance_manual=True and global cleared; none: all cleared
        (the original's rules, spec/hosted-engine-cli.md §4). ``local`` is refused while
        the engine VM runs on this host."""
        ...

    async def vm_start(self, *, paused: bool = False, vm_conf: Path | None = None) -> CommandResult:
        """Acquire the VM lease, then start the VM here. Refused (ok False) if another host
        holds the lease or the VM already runs here. ``vm_conf``: start THIS time from that
        vm.conf instead of the configured one (recovery); it must describe the engine VM."""
        ...

    async def vm_shutdown(self) -> CommandResult: ...

    async def vm_poweroff(self) -> CommandResult: ...

    async def console_password(self, password: str, ttl: int) -> CommandResult:
        """Set a VNC password valid for ``ttl`` seconds on the VM running here; ``detail``
        carries the display's ``address`` and ``port``."""
        ...

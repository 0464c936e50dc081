"""The host score (spec §4) with a breakdown: each penalty with its amount and reason.

The arithmetic is the original's, including its integer truncation of float products
(network 0.8 costs int(0.2 * 1600) = 319 under IEEE doubles, not 320): peers running the
original compare their scores with ours (spec §12.3 item 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.config import ScoreConfig
from he_ha.fsm.observation import LocalReadings
from he_ha.fsm.states import StateName as S


@dataclass(frozen=True, slots=True)
class Penalty:
    name: str  # config | network | bridge | cpu | memory | retries
    amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    base: int
    penalties: tuple[Penalty, ...]
    override: str | None  # why the total is forced to 0, if it is
    total: int


# States whose published score is 0 whatever the readings (spec §4.3).
ZERO_SCORE = {
    S.REINITIALIZE: "state ReinitializeFSM publishes score 0",
    S.LOCAL_MAINTENANCE: "local maintenance",
    S.LOCAL_MAINTENANCE_MIGRATE_VM: "local maintenance",
    S.ENGINE_UNEXPECTEDLY_DOWN: "the engine VM went down unexpectedly here; other hosts take over",
    S.AGENT_STOPPED: "agent stopped",
}
# States where the VM's own memory is in use here, so free memory is not judged (spec §4.3).
MEMORY_EXEMPT = frozenset({S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH, S.ENGINE_MIGRATING_AWAY, S.GLOBAL_MAINTENANCE})


def _cpu_penalty(load: float, cfg: ScoreConfig) -> int:
    low, high, full = cfg.cpu_load_penalty_min, cfg.cpu_load_penalty_max, cfg.cpu_load_score_penalty
    if high == low:
        return 0 if load < low else full
    return max(0, min(full, int((load - low) / (high - low) * full)))


def compute_score(
    state: S, local: LocalReadings, start_failures: int, cfg: ScoreConfig, max_retries: int, restarts: int = 0
) -> ScoreBreakdown:
    """``restarts``: local restarts after a VM crash inside the retry window (issue 14); they
    count toward the retry limit like failed starts."""
    penalties: list[Penalty] = []
    if not local.conf_up_to_date:
        penalties.append(Penalty("config", cfg.not_uptodate_config_penalty, "configuration not on the 3.6+ layout"))
    net = 0.0 if local.network is None else local.network
    if net < 1.0:
        reason = "no network reading" if local.network is None else f"network test success {net:.0%}"
        penalties.append(Penalty("network", int((1.0 - net) * cfg.network_score_penalty), reason))
    if local.bridge_up is not True:
        reason = "management bridge state unknown" if local.bridge_up is None else "management bridge down"
        penalties.append(Penalty("bridge", cfg.mgmt_bridge_score_penalty, reason))
    if local.cpu_load is not None:
        cpu = _cpu_penalty(local.cpu_load, cfg)
        if cpu:
            penalties.append(Penalty("cpu", cpu, f"non-engine CPU load {local.cpu_load:.2f}"))
    if state not in MEMORY_EXEMPT and local.vm_memory_mib is not None:
        free = 0.0 if local.free_memory_mib is None else local.free_memory_mib
        if free < local.vm_memory_mib:
            shown = "unknown" if local.free_memory_mib is None else f"{free:.0f} MiB"
            penalties.append(
                Penalty("memory", cfg.free_memory_score_penalty, f"free memory {shown} < VM {local.vm_memory_mib} MiB")
            )
    override = ZERO_SCORE.get(state)
    retries = start_failures + restarts
    what = f"{start_failures} failed start(s)" + (f" and {restarts} crash restart(s)" if restarts else "")
    if retries >= max_retries:
        override = override or (
            f"{start_failures} failed starts inside the retry window"
            if not restarts
            else f"{what} inside the retry window"
        )
    elif retries > 0:
        amount = cfg.engine_retry_score_penalty * retries
        penalties.append(Penalty("retries", amount, f"{what} inside the retry window"))
    total = 0 if override else max(0, cfg.base_score - sum(p.amount for p in penalties))
    return ScoreBreakdown(cfg.base_score, tuple(penalties), override, total)

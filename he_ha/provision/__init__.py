"""Storage provisioning, the HA part of deploy, and the shared-storage reads behind init and repair."""

from __future__ import annotations

from typing import TYPE_CHECKING

from he_ha.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from he_ha.provision.area_io import AreaError, AreaIo, all_zero
    from he_ha.provision.area_survey import survey_lockspace
    from he_ha.provision.hostconf import NETWORK_TESTS
    from he_ha.provision.liveness import LeaseState, SlotSeen, StorageWatch, observe
    from he_ha.provision.provision import (
        HostSettings,
        InitPlan,
        InitRequest,
        ProvisionError,
        ProvisionRefused,
        Role,
        Step,
        StorageAreas,
        apply_init,
        initialise_first_host,
        normalise_vm_uuid,
        plan_init,
        verify_lockspace,
    )

__all__ = [
    "NETWORK_TESTS",
    "AreaError",
    "AreaIo",
    "HostSettings",
    "InitPlan",
    "InitRequest",
    "LeaseState",
    "ProvisionError",
    "ProvisionRefused",
    "Role",
    "SlotSeen",
    "Step",
    "StorageAreas",
    "StorageWatch",
    "all_zero",
    "apply_init",
    "initialise_first_host",
    "normalise_vm_uuid",
    "observe",
    "plan_init",
    "survey_lockspace",
    "verify_lockspace",
]

# Loaded on first use (he_ha/lazy_exports.py): importing one module of this package loads no other.
__getattr__ = lazy_exports(
    __name__,
    {
        "area_io": (
            "AreaError",
            "AreaIo",
            "all_zero",
        ),
        "area_survey": ("survey_lockspace",),
        "hostconf": ("NETWORK_TESTS",),
        "liveness": (
            "LeaseState",
            "SlotSeen",
            "StorageWatch",
            "observe",
        ),
        "provision": (
            "HostSettings",
            "InitPlan",
            "InitRequest",
            "ProvisionError",
            "ProvisionRefused",
            "Role",
            "Step",
            "StorageAreas",
            "apply_init",
            "initialise_first_host",
            "normalise_vm_uuid",
            "plan_init",
            "verify_lockspace",
        ),
    },
)

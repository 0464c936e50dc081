"""hosted-engine.conf as --init-storage writes it: new file, re-run, conflicts, other lines kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.config import ConfigError, HostedEngineConf
from he_ha.provision.hostconf import ConfChange, HostConfValues, plan_host_conf

CONF = Path("/etc/ovirt-hosted-engine/hosted-engine.conf")
VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


def values(**changes: object) -> HostConfValues:
    base: dict[str, object] = dict(
        host_id=1,
        vmid=VMID,
        metadata_path=Path("/s/hosted-engine.metadata"),
        lockspace_path=Path("/s/hosted-engine.lockspace"),
        fqdn="engine.example.com",
        network_test="none",
    )
    return HostConfValues(**(base | changes))  # type: ignore[arg-type]


def test_a_new_file_holds_our_keys_in_order_and_loads() -> None:
    plan = plan_host_conf(CONF, values(vm_conf=Path("/run/vm.conf"), bridge="ovirtmgmt"), None)
    assert plan.change is ConfChange.CREATE
    assert plan.text == (
        f"host_id=1\nvmid={VMID}\nfqdn=engine.example.com\nmetadata_path=/s/hosted-engine.metadata\n"
        "lockspace_path=/s/hosted-engine.lockspace\nconf=/run/vm.conf\nnetwork_test=none\nbridge=ovirtmgmt\n"
    )
    parsed = dict(line.split("=", 1) for line in plan.text.splitlines())
    conf = HostedEngineConf.model_validate(parsed)
    assert (conf.host_id, conf.vmid, conf.vm_conf) == (1, VMID, Path("/run/vm.conf"))


def test_the_same_values_again_change_nothing() -> None:
    first = plan_host_conf(CONF, values(), None)
    again = plan_host_conf(CONF, values(), first.text)
    assert (again.change, again.text, again.conflicts) == (ConfChange.UNCHANGED, first.text, ())
    assert again.describe() == f"{CONF} is up to date"


def test_other_lines_stay_and_differences_are_named() -> None:
    existing = '# written by the original deploy\nca_subject="C=EN, O=Test"\nhost_id=2\nvmid=' + VMID + "\n"
    plan = plan_host_conf(CONF, values(), existing)
    assert plan.change is ConfChange.UPDATE
    assert plan.conflicts == ("host_id=2 (would become 1)",)
    assert plan.added == ("fqdn", "metadata_path", "lockspace_path", "network_test")
    lines = plan.text.splitlines()
    assert lines[:4] == ["# written by the original deploy", 'ca_subject="C=EN, O=Test"', "host_id=1", f"vmid={VMID}"]
    assert "replace host_id=2 (would become 1); add fqdn" in plan.describe()


def test_quoted_values_are_compared_unquoted() -> None:
    existing = plan_host_conf(CONF, values(), None).text.replace("fqdn=engine.example.com", 'fqdn="engine.example.com"')
    assert plan_host_conf(CONF, values(), existing).change is ConfChange.UNCHANGED


def test_a_file_that_would_not_load_is_refused() -> None:
    with pytest.raises(ConfigError, match="network_test=ping needs 'gateway'"):
        plan_host_conf(CONF, values(network_test=None), None)
    assert plan_host_conf(CONF, values(network_test=None, gateway="192.0.2.1"), None).change is ConfChange.CREATE
    with pytest.raises(ConfigError, match="tcp_t_address"):
        plan_host_conf(CONF, values(network_test="tcp"), None)

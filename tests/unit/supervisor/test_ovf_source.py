"""OVF_STORE as the first VM definition source (he_ha/ovirt/vm_definition.py) on real trees
written as the engine writes them (tests/integration/ovirt_store/engine_store.py): the order,
the engine's definition winning over vm.conf files, a refused conversion as a partial
definition with its reason, a store that fails never ending anything (the last good
definition stays, status says why, the log says it once), and the change logged with what
changed when the engine edits the VM."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from he_ha.config import load_hosted_engine_conf
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.ovf import convert_ovf
from he_ha.ovirt.vm_definition import (
    BAD,
    CONF,
    CONF_VOLUME,
    LAST_GOOD,
    MISSING,
    OVF_STORE_SOURCE,
    PARTIAL,
    DefinitionError,
    DefinitionPlan,
    Expected,
    OvfStoreVmConf,
    body_lines,
    call_with_deadline,
    ovf_store_source,
)
from he_ha.supervisor.execute import SpecSource
from he_ha.vm import DomainId
from tests.integration.ovirt_store.engine_store import FileDomain
from tests.support.ovf_samples import OVF_SAMPLES
from tests.unit.supervisor.test_vm_definition import LEGACY, conf_volume, put, tar_reader, vm_conf

SAMPLES = OVF_SAMPLES
UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"  # the VM of test_vm_definition's vm.conf files
IDENTITY = DomainId("HostedEngine", UUID)


def sample(name: str = "ovf_test_v4.2.xml", *, memory: int | None = None) -> bytes:
    """A shared sample OVF describing VM UUID (``memory``: its memory item, MiB)."""
    text = (SAMPLES / name).read_text()
    (vm_id,) = re.findall(r'<Section ovf:id="([0-9a-f-]{36})"[^>]*OperatingSystemSection_Type', text)
    text = text.replace(vm_id, UUID)
    if memory is not None:
        text = re.sub(
            r"(<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>)\d+",
            rf"\g<1>{memory}",
            text,
        )
    return text.encode()


class Host:
    """A host's files: the domain with its OVF_STORE volumes under R, hosted-engine.conf, the
    run directory's vm.conf and the state directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.domain = FileDomain(tmp_path / "R", UUID).create()
        self.stores = [self.domain.new_ovf_store(), self.domain.new_ovf_store()]
        self.conf = load_hosted_engine_conf(self.domain.conf_path)
        self.roots = VdsmRoots.from_mount_root(self.domain.mount_root)

    def write_ovf(self, data: bytes, store: int = 0, *, age: float = 0.0) -> None:
        self.domain.engine_update(self.stores[store], data, time.time() - age)

    def source(self) -> OvfStoreVmConf:
        found = ovf_store_source(self.conf, self.domain.conf_path, self.roots)
        assert found is not None
        return found

    def plan(self, *, volume: Path | None = None) -> DefinitionPlan:
        return DefinitionPlan.for_host(
            conf=self.tmp / "run" / "vm.conf",
            state_dir=self.tmp / "state",
            conf_volume=volume,
            explicit=None,
            expected=Expected(UUID, "vmid in hosted-engine.conf"),
            volume_reader=tar_reader,
            ovf_store=self.source(),
        )


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


# --- the order and the choice --------------------------------------------------------------


def test_ovf_store_is_the_first_source_and_the_engines_definition_wins(host: Host, tmp_path: Path) -> None:
    host.write_ovf(sample())
    put(tmp_path / "run" / "vm.conf", vm_conf())  # a startable vm.conf at the conf path: second
    plan = host.plan(volume=conf_volume(tmp_path, LEGACY))
    assert [source.name for source in plan.sources] == [OVF_STORE_SOURCE, CONF, LAST_GOOD, CONF_VOLUME]
    found = plan.resolve()
    definition = found.definition
    assert definition is not None and definition.source == OVF_STORE_SOURCE and found.problem() is None
    assert definition.lines == body_lines(convert_ovf(sample()).text)
    assert host.stores[0].volume in definition.origin and "updated " in definition.origin
    assert definition.identity == IDENTITY and definition.memory_mib == 16384
    assert definition.spec is not None and "LEASE-PATH:" in definition.spec.xml  # resolved only at a start
    assert any("console alias" in remark for remark in definition.remarks)


def test_the_newest_updated_store_is_read_and_a_bad_one_is_skipped_with_a_remark(host: Host) -> None:
    host.write_ovf(sample(memory=4096), 0, age=3600)
    host.write_ovf(sample(memory=8192), 1)
    assert host.plan().resolve().definition.memory_mib == 8192  # type: ignore[union-attr]
    host.write_ovf(b"<not an OVF", 1)
    definition = host.plan().resolve().definition
    assert definition is not None and definition.memory_mib == 4096 and host.stores[0].volume in definition.origin
    assert any(remark.startswith("skipped: ") and host.stores[1].volume in remark for remark in definition.remarks)


def test_a_domain_without_ovf_store_volumes_yet_is_missing_not_a_problem(tmp_path: Path) -> None:
    domain = FileDomain(tmp_path / "R", UUID).create()  # before the engine creates its OVF_STORE disks
    conf = load_hosted_engine_conf(domain.conf_path)
    source = ovf_store_source(conf, domain.conf_path, VdsmRoots.from_mount_root(domain.mount_root))
    put(tmp_path / "run" / "vm.conf", vm_conf())
    plan = DefinitionPlan.for_host(
        conf=tmp_path / "run" / "vm.conf",
        state_dir=tmp_path / "state",
        conf_volume=None,
        explicit=None,
        expected=Expected(UUID, "vmid"),
        ovf_store=source,
    )
    found = plan.resolve()
    assert found.definition is not None and found.definition.source == CONF and found.problem() is None
    (note,) = found.notes
    assert note.source == OVF_STORE_SOURCE and note.kind == MISSING


def test_a_legacy_only_ovf_is_a_partial_definition_whose_note_is_the_refusal(host: Host, tmp_path: Path) -> None:
    host.write_ovf(sample("ovf_test.xml"))  # a 3.6-era OVF: no engine XML
    found = host.plan().resolve()
    assert found.definition is None and found.partial is not None and found.partial.source == OVF_STORE_SOURCE
    assert found.partial.identity.uuid == UUID and found.partial.memory_mib == 4096
    assert found.partial.lines == body_lines(convert_ovf(sample("ovf_test.xml")).text)  # what the original writes
    note = found.notes[0]
    assert note.kind == PARTIAL and "refused: " in note.problem and "EngineXml" in note.problem, note.problem
    problem = found.problem()
    assert problem is not None and problem.startswith("no usable VM definition: ovf-store: ")

    # A startable vm.conf further down is used, and the refusal stays a problem: not silently another VM.
    put(tmp_path / "run" / "vm.conf", vm_conf())
    found = host.plan().resolve()
    assert found.definition is not None and found.definition.source == CONF
    problem = found.problem()
    assert problem is not None and problem.startswith("ovf-store: ") and "refused: " in problem


def test_an_engine_xml_for_another_vm_is_refused_though_xmlbase64_is_written(host: Host) -> None:
    text = (
        sample()
        .decode()
        .replace(f"&lt;uuid&gt;{UUID}&lt;/uuid&gt;", "&lt;uuid&gt;11111111-2222-3333-4444-555555555555&lt;/uuid&gt;")
    )
    host.write_ovf(text.encode())
    found = host.plan().resolve()
    assert found.definition is None and found.partial is not None and found.partial.spec is None
    assert any(line.startswith("xmlBase64=") for line in found.partial.lines)  # as the original writes it
    assert found.notes[0].kind == PARTIAL and "refused: " in found.notes[0].problem


@pytest.mark.parametrize("data", [b"<ovf:Envelope broken", b"", b"\x00" * 100])
def test_a_malformed_ovf_is_a_note_and_the_next_source_gives_the_definition(
    host: Host, tmp_path: Path, data: bytes
) -> None:
    host.write_ovf(data)
    put(tmp_path / "state" / "vm.conf", vm_conf())
    found = host.plan().resolve()
    assert found.definition is not None and found.definition.source == LAST_GOOD
    note = found.notes[0]
    assert note.source == OVF_STORE_SOURCE and note.kind == BAD and host.stores[0].volume in note.problem
    assert found.problem() == str(note)


def test_the_source_exists_only_where_hosted_engine_conf_names_the_domain(host: Host, tmp_path: Path) -> None:
    conf, path = host.conf, host.domain.conf_path
    assert ovf_store_source(conf.model_copy(update={"sd_uuid": None}), path, host.roots) is None
    assert ovf_store_source(conf.model_copy(update={"domain_type": None}), path, host.roots) is None
    block = conf.model_copy(update={"domain_type": "iscsi"})
    assert ovf_store_source(block, path, VdsmRoots()) is not None  # a real host: the tags are read with lvs
    source = ovf_store_source(block, path, host.roots)  # relocated: the tags file, read with the store
    assert source is not None
    tags = host.domain.root / "lvm" / f"{conf.sd_uuid}.json"
    with pytest.raises(DefinitionError, match=f"cannot read the LV tags file {tags}"):  # a note naming it
        source.read(Expected(UUID, "vmid in hosted-engine.conf"))
    put(tags, json.dumps({"vg": {"tags": ["MDT_VERSION=5"]}, "lvs": {}}))
    assert source.read(Expected(UUID, "vmid in hosted-engine.conf")) is None  # no OVF_STORE LV yet


def test_without_a_vm_id_the_store_cannot_be_read(host: Host) -> None:
    host.write_ovf(sample())
    found = DefinitionPlan((host.source(),), None, None, Expected(None, "vmid in hosted-engine.conf")).resolve()
    assert found.best is None and "which VM's OVF to read is unknown" in found.notes[0].problem


# --- shared storage that does not answer at start-up ----------------------------------------


def test_call_with_deadline_gives_up_and_the_local_files_decide(host: Host, tmp_path: Path) -> None:
    release = threading.Event()
    with pytest.raises(TimeoutError, match=re.escape("slow: no answer within 0.2 s")):
        call_with_deadline(release.wait, 0.2, "slow")
    release.set()
    assert call_with_deadline(lambda: 7, 1, "fast") == 7
    with pytest.raises(KeyError):
        call_with_deadline(lambda: dict[str, int]()["x"], 1, "raises")
    put(tmp_path / "run" / "vm.conf", vm_conf())
    host.write_ovf(sample())
    found = host.plan(volume=conf_volume(tmp_path, LEGACY)).resolve_local(why="no answer within 6 s")
    assert found.definition is not None and found.definition.source == CONF
    assert [(note.source, note.problem.endswith("no answer within 6 s")) for note in found.notes] == [
        (OVF_STORE_SOURCE, True),
        (CONF_VOLUME, True),
    ]


# --- the supervisor's refresh ---------------------------------------------------------------


async def refreshed(host: Host, ovf: bytes) -> SpecSource:
    """The supervisor's SpecSource after its start-up refresh, the store holding ``ovf``."""
    host.write_ovf(ovf)
    plan = host.plan()
    specs = SpecSource(plan, IDENTITY, plan.resolve(), timeout=5)
    await specs.refresh("start-up")
    return specs


async def test_the_refresh_writes_the_engines_definition_and_logs_what_the_engine_changed(
    host: Host,
    tmp_path: Path,
) -> None:
    specs = await refreshed(host, sample(memory=8192))
    conf = tmp_path / "run" / "vm.conf"
    assert body_lines(conf.read_text()) == body_lines(convert_ovf(sample(memory=8192)).text)
    assert body_lines((tmp_path / "state" / "vm.conf").read_text()) == body_lines(conf.read_text())
    state = specs.state()
    assert state.usable and state.source == OVF_STORE_SOURCE and state.problem is None

    host.write_ovf(sample(memory=16384), age=-60)
    with capture_logs() as logs:
        spec = await specs.load()  # a start refreshes first
    changed = [entry for entry in logs if entry["event"] == "VM definition" and entry.get("changes")]
    assert [entry["changes"] for entry in changed] == ["memory 8192 -> 16384 MiB"]
    assert "memSize=16384" in body_lines(conf.read_text()) and spec.id == IDENTITY
    specs.close()


async def test_a_store_that_goes_bad_keeps_the_last_good_definition_and_says_why_once(
    host: Host,
    tmp_path: Path,
) -> None:
    specs = await refreshed(host, sample(memory=8192))
    host.write_ovf(b"<ovf:Envelope truncated", age=-60)
    with capture_logs() as logs:
        for _ in range(3):
            await specs.refresh("periodic")
        spec = await specs.load()
    state = specs.state()
    assert state.usable and state.source == CONF  # what he-ha wrote from the store before
    assert state.problem is not None and state.problem.startswith("ovf-store: ")
    assert host.stores[0].volume in state.problem and "starts use the last good definition" in state.problem
    in_use = specs.in_use()
    assert in_use is not None and in_use.memory_mib == 8192 and spec == in_use.spec  # the good OVF's
    problems = [entry for entry in logs if entry["event"] == "VM definition problem"]
    notes = [entry for entry in logs if entry["event"] == "VM definition source not used"]
    assert len(problems) == 1 and len(notes) == 1 and notes[0]["log_level"] == "warning"

    host.write_ovf(sample(memory=8192), age=-120)  # the engine rewrites it: all is well again
    await specs.refresh("periodic")
    assert specs.state().problem is None and specs.state().source == OVF_STORE_SOURCE
    specs.close()


async def test_a_refused_ovf_with_nothing_else_is_written_as_the_original_wrote_its_fallback(
    host: Host,
    tmp_path: Path,
) -> None:
    specs = await refreshed(host, sample("ovf_test.xml"))
    state = specs.state()
    assert not state.usable and state.problem is not None and "refused: " in state.problem
    assert body_lines((tmp_path / "run" / "vm.conf").read_text()) == body_lines(
        convert_ovf(sample("ovf_test.xml")).text
    )
    assert not (tmp_path / "state" / "vm.conf").exists()  # never a last-good copy that cannot start
    specs.close()

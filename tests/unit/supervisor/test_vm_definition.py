"""The VM definition's sources (he_ha/ovirt/vm_definition.py) on real files: their order, each
reason a source is skipped, the written vm.conf (header, ``vmId=``, atomic, only on change),
and the identity from hosted-engine.conf when no source has domain XML."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from he_ha.config import ConfigError, ConfigPaths
from he_ha.ovirt.vm_definition import (
    BAD,
    CONF,
    CONF_VOLUME,
    EXPLICIT,
    HEADER_FIRST,
    LAST_GOOD,
    MISSING,
    PARTIAL,
    ConfVolumeVmConf,
    DefinitionPlan,
    Expected,
    body_lines,
    resolve,
    write_vm_conf,
)
from he_ha.supervisor.host_plan import load_plan
from he_ha.supervisor.settings import SupervisorSettings
from he_ha.vm import DomainId

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
OTHER = "11111111-2222-3333-4444-555555555555"
XML = f"<domain type='kvm'><name>HostedEngine</name><uuid>{UUID}</uuid><memory unit='MiB'>4096</memory></domain>"
EXPECTED = Expected(UUID, "vmid in hosted-engine.conf")


def vm_conf(xml: str | None = XML, *, vm_id: str = UUID, extra: str = "") -> str:
    xml_line = "" if xml is None else f"xmlBase64={base64.b64encode(xml.encode()).decode()}\n"
    return f"vmId={vm_id}\nmemSize=4096\nvmName=HostedEngine\n{xml_line}{extra}"


# What deploy writes to the configuration volume (4.4+): the legacy format, no xmlBase64.
LEGACY = (
    f"vmId={UUID}\nmemSize=16384\ndisplay=vnc\n"
    "devices={index:2,iface:ide,address:{ controller:0, target:0,unit:0, bus:1, type:drive},specParams:{},"
    "readonly:true,deviceId:8c3179ac-b322-4f5c-9449-c52e3665e0ae,path:,device:cdrom,shared:false,type:disk}\n"
    "devices={index:0,iface:virtio,format:raw,poolID:00000000-0000-0000-0000-000000000000,"
    "volumeID:0a1b,imageID:2c3d,specParams:{},readonly:false,domainID:4e5f,optional:false,deviceId:2c3d,"
    "address:{bus:0x00, slot:0x06, domain:0x0000, type:pci, function:0x0},device:disk,shared:exclusive,"
    "propagateErrors:off,type:disk,bootOrder:1}\n"
    "devices={device:scsi,model:virtio-scsi,type:controller}\n"
    "devices={device:console,type:console}\n"
    "vmName=HostedEngine\nspiceSecureChannels=smain,sdisplay,sinputs,scursor,splayback,srecord,ssmartcard,susbredir\n"
    "smp=4\nmaxVCpus=16\ncpuType=Skylake-Server\nemulatedMachine=pc-q35-rhel8.1.0\n"
)


def conf_volume(directory: Path, vm_conf_text: str) -> Path:
    """A configuration volume exactly as deploy writes it (GNU tar, 20,480-byte record)."""
    if shutil.which("tar") is None:
        pytest.fail("needs GNU tar")
    members = {
        "vm.conf": vm_conf_text,
        "broker.conf": "[email]\nsmtp-server = localhost\n",
        "version": "2.5.2",
        "fhanswers.conf": "[environment:default]\n",
        "hosted-engine.conf": f"vmid={UUID}\nhost_id=1\n",
    }
    source = directory / "members"
    source.mkdir()
    for name, text in members.items():
        (source / name).write_text(text)
    volume = directory / "conf.volume"
    subprocess.run(
        [
            "tar",
            "--format=gnu",
            "--record-size=20480",
            "-cf",
            str(volume),
            "vm.conf",
            "broker.conf",
            "version",
            "fhanswers.conf",
            "hosted-engine.conf",
        ],
        cwd=source,
        check=True,
    )
    assert volume.stat().st_size == 20480
    return volume


def tar_reader(path: Path) -> dict[str, str]:
    """A stand-in for he_ha.ovirt.conf_volume.read_conf_volume (same signature), over Python's tarfile."""
    with tarfile.open(path) as archive:
        # The type: ignore must stay on the line mypy reports: not reformatted.
        # fmt: off
        return {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
        # fmt: on


def plan_in(tmp_path: Path, *, volume: Path | None = None, explicit: Path | None = None) -> DefinitionPlan:
    return DefinitionPlan.for_host(
        conf=tmp_path / "run" / "vm.conf",
        state_dir=tmp_path / "state",
        conf_volume=volume,
        explicit=explicit,
        expected=EXPECTED,
        volume_reader=tar_reader,
    )


def put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the order --------------------------------------------------------------------------------


def test_the_sources_are_the_conf_path_then_the_last_good_copy_then_the_conf_volume(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, volume=tmp_path / "conf.volume")
    assert [(s.name, s.origin) for s in plan.sources] == [
        (CONF, str(tmp_path / "run" / "vm.conf")),
        (LAST_GOOD, str(tmp_path / "state" / "vm.conf")),
        (CONF_VOLUME, f"{tmp_path / 'conf.volume'} (configuration volume, member vm.conf)"),
    ]
    assert (plan.output, plan.last_good) == (tmp_path / "run" / "vm.conf", tmp_path / "state" / "vm.conf")
    assert [s.name for s in plan_in(tmp_path).sources] == [CONF, LAST_GOOD]  # no conf volume named


def test_the_conf_path_wins_when_it_can_start_the_vm(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", "# Editing the hosted engine VM ...\n" + vm_conf())
    put(tmp_path / "state" / "vm.conf", vm_conf(extra="smp=2\n"))
    found = plan_in(tmp_path).resolve()
    assert found.definition is not None and found.definition.source == CONF and found.notes == ()
    assert found.problem() is None
    assert found.definition.identity == DomainId("HostedEngine", UUID) and found.definition.memory_mib == 4096


def test_after_a_reboot_the_last_good_copy_is_taken(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    found = plan_in(tmp_path).resolve()
    assert found.definition is not None and found.definition.source == LAST_GOOD
    (note,) = found.notes
    assert note.kind == MISSING and note.problem == f"{tmp_path / 'run' / 'vm.conf'}: missing"


def test_a_conf_path_without_xml_gives_way_to_the_last_good_copy(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", LEGACY)
    put(tmp_path / "state" / "vm.conf", vm_conf())
    found = plan_in(tmp_path).resolve()
    assert found.definition is not None and found.definition.source == LAST_GOOD
    assert found.partial is not None and found.partial.source == CONF
    assert "no xmlBase64" in found.notes[0].problem and found.notes[0].kind == PARTIAL


def test_the_conf_volume_of_a_deployed_host_gives_identity_and_memory_only(tmp_path: Path) -> None:
    found = plan_in(tmp_path, volume=conf_volume(tmp_path, LEGACY)).resolve()
    assert found.definition is None
    partial = found.partial
    assert partial is not None and partial.source == CONF_VOLUME and not partial.startable
    assert (partial.identity, partial.memory_mib) == (DomainId("HostedEngine", UUID), 16384)
    assert sum(line.startswith("devices=") for line in partial.lines) == 4  # repeated keys kept, in order
    problem = found.problem()
    assert problem is not None and problem.startswith("no usable VM definition: ")
    for part in (
        f"conf: {tmp_path / 'run' / 'vm.conf'}: missing",
        f"last-good: {tmp_path / 'state' / 'vm.conf'}: missing",
        "conf-volume: ",
        "(configuration volume, member vm.conf): no xmlBase64",
    ):
        assert part in problem, problem


def test_a_conf_volume_written_by_he_ha_can_start_the_vm(tmp_path: Path) -> None:
    found = plan_in(tmp_path, volume=conf_volume(tmp_path, vm_conf())).resolve()
    assert found.definition is not None and found.definition.source == CONF_VOLUME and found.definition.startable


def test_the_conf_volume_through_the_real_reader(tmp_path: Path) -> None:
    pytest.importorskip("he_ha.ovirt.conf_volume", reason="he_ha/ovirt/conf_volume.py is not written yet")
    plan = DefinitionPlan.for_host(
        conf=tmp_path / "run" / "vm.conf",
        state_dir=tmp_path / "state",
        conf_volume=conf_volume(tmp_path, LEGACY),
        explicit=None,
        expected=EXPECTED,
    )
    partial = plan.resolve().partial
    assert partial is not None and partial.source == CONF_VOLUME and partial.memory_mib == 16384


def test_an_explicit_vm_conf_is_the_only_source_and_nothing_is_written(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, volume=tmp_path / "conf.volume", explicit=tmp_path / "mine.conf")
    assert [s.name for s in plan.sources] == [EXPLICIT] and (plan.output, plan.last_good) == (None, None)
    put(tmp_path / "state" / "vm.conf", vm_conf())  # not looked at
    found = plan.resolve()
    assert (
        found.best is None
        and found.problem() == f"no usable VM definition: explicit: {tmp_path / 'mine.conf'}: missing"
    )


# --- each reason a source is skipped -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty (no key=value line)"),
        (f"vmId={UUID}\nmemSize 4096\n", "line 2 is not 'key=value': 'memSize 4096'"),
        ("memSize=4096\n", "key 'vmId': Field required"),
        (f"vmId={UUID}\n", "key 'memSize': Field required"),
        (f"vmId={UUID}\nmemSize=0\n", "key 'memSize': Input should be greater than 0"),
        ("vmId=HostedEngine\nmemSize=1\n", "vmId is not a UUID: 'HostedEngine'"),
        (f"vmId={UUID}\nmemSize=1\nxmlBase64=@@@\n", "key 'xmlBase64': Value error, not base64-encoded UTF-8 XML"),
        (vm_conf("<domain><name>HostedEngine</name>"), "not well-formed XML"),
        (vm_conf(XML.replace(UUID, OTHER)), f"the XML's <uuid> {OTHER} differs from vmId {UUID}"),
        (
            vm_conf(XML.replace(UUID, OTHER), vm_id=OTHER),
            f"describes the VM {OTHER}, not {UUID} (vmid in hosted-engine.conf)",
        ),
        ("<domain><name>x</name>", "not well-formed XML"),
        ("<vm><name>x</name></vm>", "root element is <vm>, expected <domain>"),
        (XML.replace("<name>HostedEngine</name>", ""), "domain XML has no <name>"),
    ],
)
def test_bad_content_is_a_note_naming_the_file_and_the_next_source_is_tried(
    tmp_path: Path, text: str, problem: str
) -> None:
    bad = put(tmp_path / "run" / "vm.conf", text)
    put(tmp_path / "state" / "vm.conf", vm_conf())
    found = plan_in(tmp_path).resolve()
    assert found.definition is not None and found.definition.source == LAST_GOOD
    (note,) = found.notes
    assert note.source == CONF and note.kind == BAD
    assert note.problem.startswith(str(bad)) and problem in note.problem, note.problem


def test_an_unreadable_file_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "vm.conf").write_bytes(b"vmId=\xff\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "vm.conf").mkdir()  # a directory where the file should be
    notes = [n.problem for n in plan_in(tmp_path).resolve().notes]
    assert notes == [
        f"{tmp_path / 'run' / 'vm.conf'}: not UTF-8 text (invalid start byte at byte 5)",
        f"{tmp_path / 'state' / 'vm.conf'}: cannot read: Is a directory",
    ]


def test_a_name_other_than_the_running_one_needs_a_restart(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf(XML.replace("HostedEngine", "Engine2")))
    found = resolve(plan_in(tmp_path).sources, Expected(UUID, "vmid", "HostedEngine"))
    assert "names the VM 'Engine2', not 'HostedEngine'" in found.notes[0].problem


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"version": "2.5.2"}, "the configuration volume has no vm.conf member (members: version)"),
        ({"vm.conf": "garbage\n"}, "line 1 is not 'key=value'"),
    ],
)
def test_a_bad_conf_volume_is_a_note(tmp_path: Path, members: dict[str, str], problem: str) -> None:
    source = ConfVolumeVmConf(tmp_path / "vol", lambda _: members)
    (note,) = resolve([source], EXPECTED).notes
    assert note.source == CONF_VOLUME and problem in note.problem and str(tmp_path / "vol") in note.problem


def test_a_conf_volume_reader_error_is_a_note_not_a_crash(tmp_path: Path) -> None:
    class ConfArchiveError(Exception):
        pass

    def broken(path: Path) -> dict[str, str]:
        raise ConfArchiveError(f"{path}: no tar end marker within 20480 bytes")

    def missing(path: Path) -> dict[str, str]:
        raise FileNotFoundError(2, "No such file or directory", str(path))

    notes = resolve(
        [ConfVolumeVmConf(tmp_path / "a", broken), ConfVolumeVmConf(tmp_path / "b", missing)], EXPECTED
    ).notes
    assert "no tar end marker within 20480 bytes" in notes[0].problem
    assert notes[1].problem == f"{tmp_path / 'b'}: cannot read the configuration volume: No such file or directory"


def test_a_plain_domain_xml_is_a_definition_and_takes_the_vmid_when_it_has_no_uuid(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", XML.replace(f"<uuid>{UUID}</uuid>", ""))
    definition = plan_in(tmp_path).resolve().definition
    assert definition is not None and definition.identity == DomainId("HostedEngine", UUID)
    assert definition.lines[:3] == (f"vmId={UUID}", "memSize=4096", "vmName=HostedEngine")
    assert definition.spec is not None and f"<uuid>{UUID}</uuid>" in definition.spec.xml
    no_vmid = resolve(plan_in(tmp_path).sources, Expected(None, "vmid in /x/hosted-engine.conf"))
    assert "the domain XML has no <uuid>, and there is no vmid in /x/hosted-engine.conf" in no_vmid.notes[0].problem


# --- the written file --------------------------------------------------------------------------


def test_the_written_vm_conf_has_the_original_header_and_a_vmid_line(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    plan = plan_in(tmp_path)
    definition = plan.resolve().definition
    assert definition is not None
    written, problems = plan.write(definition)
    assert written == [tmp_path / "run" / "vm.conf"] and problems == []  # the last-good copy is unchanged
    out = tmp_path / "run" / "vm.conf"
    lines = out.read_text().split("\n")
    assert lines[0] == HEADER_FIRST == "# Editing the hosted engine VM is only possible via the manager UI/API"
    assert lines[1].startswith("# This file was generated at ") and time.strptime(lines[1][29:])  # time.asctime()
    assert lines[2] == "" and f"vmId={UUID}" in lines and lines[-1] == ""
    assert body_lines(out.read_text()) == body_lines(vm_conf())
    assert out.stat().st_mode & 0o7777 == 0o644
    assert sorted(p.name for p in out.parent.iterdir()) == ["vm.conf"]  # no scratch file left


def test_written_only_when_the_content_changes_and_then_by_rename(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    plan = plan_in(tmp_path)
    definition = plan.resolve().definition
    assert definition is not None
    out = tmp_path / "run" / "vm.conf"
    assert write_vm_conf(out, definition)
    before = out.stat()
    assert not write_vm_conf(out, definition)  # same lines: the file (and its time line) stay
    assert out.stat().st_ino == before.st_ino and out.stat().st_mtime_ns == before.st_mtime_ns
    put(tmp_path / "state" / "vm.conf", vm_conf(extra="smp=8\n"))
    out.unlink()
    changed = plan.resolve().definition
    assert changed is not None and changed.source == LAST_GOOD
    put(out, vm_conf())  # an older definition at the conf path: it is the best source, so make it stale
    out.write_text(out.read_text() + "display=vnc\n")
    stale = out.stat().st_ino
    assert write_vm_conf(out, changed)
    assert "smp=8" in out.read_text() and "display=vnc" not in out.read_text()
    assert out.stat().st_ino != stale  # replaced by rename: a reader sees old or new, never half


def test_a_legacy_definition_is_written_to_the_conf_path_but_never_as_the_last_good_copy(tmp_path: Path) -> None:
    plan = plan_in(tmp_path, volume=conf_volume(tmp_path, LEGACY))
    partial = plan.resolve().partial
    assert partial is not None
    written, problems = plan.write(partial)
    assert written == [tmp_path / "run" / "vm.conf"] and problems == []
    assert not (tmp_path / "state" / "vm.conf").exists()
    assert f"vmId={UUID}" in (tmp_path / "run" / "vm.conf").read_text().splitlines()


def test_a_write_failure_is_a_problem_text(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf())
    (tmp_path / "state").write_text("a file where the state directory should be")
    plan = plan_in(tmp_path)
    definition = plan.resolve().definition
    assert definition is not None
    written, problems = plan.write(definition)
    assert written == [] and problems == [f"cannot write {tmp_path / 'state' / 'vm.conf'}: Not a directory"]


# --- the plan at start-up: identity ------------------------------------------------------------


def settings_for(tmp_path: Path, engine: str, **kwargs: object) -> SupervisorSettings:
    conf = put(tmp_path / "hosted-engine.conf", engine + f"conf={tmp_path / 'run' / 'vm.conf'}\n")
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    return SupervisorSettings(paths=ConfigPaths(hosted_engine_conf=conf, agent_conf=tmp_path / "agent.conf",
                                                broker_conf=tmp_path / "broker.conf", ha_conf=tmp_path / "ha.conf"),
                              hostname="h1", state_dir=tmp_path / "state", **kwargs)  # type: ignore[arg-type]
    # fmt: on


ENGINE = "host_id=1\nnetwork_test=none\nbridge=lo\nmetadata_path=/m\nlockspace_path=/l\n"


def test_with_no_definition_at_all_the_identity_comes_from_hosted_engine_conf(tmp_path: Path) -> None:
    plan = load_plan(settings_for(tmp_path, ENGINE + f"vmid={UUID.upper()}\n"))
    assert plan.identity == DomainId("HostedEngine", UUID) and plan.resource == UUID
    assert plan.first.best is None and plan.vm_memory_mib is None
    assert plan.definitions.output == tmp_path / "run" / "vm.conf"


def test_the_identity_and_memory_of_a_definition_without_xml(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", LEGACY.replace("vmName=HostedEngine", "vmName=HE"))
    plan = load_plan(settings_for(tmp_path, ENGINE))
    assert plan.identity == DomainId("HE", UUID) and plan.vm_memory_mib == 16384 and plan.first.definition is None


def test_no_vmid_and_no_definition_is_a_configuration_error_naming_the_sources(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"key 'vmid': no 'vmid', and no VM definition names the engine VM "
        r"\(no usable VM definition: conf: .*missing; last-good: .*missing\)",
    ):
        load_plan(settings_for(tmp_path, ENGINE))


def test_a_mismatching_vmid_skips_that_source_only(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf(XML.replace(UUID, OTHER), vm_id=OTHER))
    put(tmp_path / "state" / "vm.conf", vm_conf())
    plan = load_plan(settings_for(tmp_path, ENGINE + f"vmid={UUID}\n"))
    assert plan.first.definition is not None and plan.first.definition.source == LAST_GOOD
    assert (
        f"describes the VM {OTHER}, not {UUID} (vmid in {tmp_path / 'hosted-engine.conf'})"
        in plan.first.notes[0].problem
    )


def test_an_explicit_vm_conf_that_is_missing_leaves_the_identity_to_the_vmid(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf())  # not used: --vm-conf names another file
    plan = load_plan(settings_for(tmp_path, ENGINE + f"vmid={UUID}\n", vm_conf=tmp_path / "absent.conf"))
    assert plan.first.best is None and plan.identity == DomainId("HostedEngine", UUID)
    assert plan.definitions.output is None and os.fspath(tmp_path / "absent.conf") in (plan.first.problem() or "")

"""``GET /v1/vm/definition`` on a real AdminServer over a unix socket: the definition in use from
memory, ``?resolved=true`` with the XML a start would hand libvirt (under the API's deadline),
bad query parameters refused; and ``he-ha vm-conf`` / ``he-ha vm-conf --resolved`` printing it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from he_ha.admin.contract import LaunchXmlView, LeaseView, VmDefinitionDetail, VmDefinitionView
from he_ha.admin.server import AdminServer
from tests.integration.admin.conftest import client
from tests.integration.admin.doubles import ControllerTestDouble

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
BODY = f"vmId={UUID}\nvmName=HostedEngine\nmemSize=4096\n"
DETAIL = VmDefinitionDetail(
    definition=VmDefinitionView(
        usable=True, source="ovf-store", path="OVF_STORE volume v (image i, /p)", age=1.5, problem=None
    ),
    vm_id=UUID,
    vm_name="HostedEngine",
    vm_conf=BODY,
    startable=True,
)
LAUNCH = LaunchXmlView(
    xml="<domain type='kvm'><name>HostedEngine</name></domain>",
    engine_xml=True,
    changes=["sysinfo serial: 'HOST-SERIAL:' -> 'h1'"],
    networks=["vdsm-ovirtmgmt"],
    engine_lease=LeaseView(lockspace="sd", key="vol", path="/m/sd/images/i/vol.lease", offset=0),
)


class DefinitionDouble(ControllerTestDouble):
    def __init__(self) -> None:
        super().__init__()
        self.detail = DETAIL
        self.launch: LaunchXmlView | None = LAUNCH
        self.launch_error: str | None = None

    def vm_definition(self) -> VmDefinitionDetail:
        self.calls.append(("vm_definition", None))
        return self.detail

    async def launch_preview(self) -> VmDefinitionDetail:
        self.calls.append(("launch_preview", None))
        if self.hang:
            await self.release.wait()
        return self.detail.model_copy(update={"launch": self.launch, "launch_error": self.launch_error})


class Served:
    def __init__(self, controller: DefinitionDouble, path: Path) -> None:
        self.controller, self.path = controller, path


@pytest.fixture
async def served(socket_dir: Path) -> AsyncIterator[Served]:
    controller = DefinitionDouble()
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, mode=0o666, deadline=1.0)
    await server.start()
    try:
        yield Served(controller, path)
    finally:
        controller.release.set()
        await server.stop()


async def get(path: Path, url: str) -> tuple[int, dict]:
    async with client(path) as session, session.get(url) as response:
        return response.status, await response.json()


async def test_the_definition_from_memory_and_resolved(served: Served) -> None:
    status, body = await get(served.path, "/v1/vm/definition")
    assert status == 200 and VmDefinitionDetail.model_validate(body) == DETAIL
    status, body = await get(served.path, "/v1/vm/definition?resolved=true")
    assert status == 200 and VmDefinitionDetail.model_validate(body).launch == LAUNCH
    status, body = await get(served.path, "/v1/vm/definition?resolved=0")
    assert status == 200 and body["launch"] is None
    assert [name for name, _ in served.controller.calls] == ["vm_definition", "launch_preview", "vm_definition"]


@pytest.mark.parametrize("query", ["resolved=yes", "resolved=1&resolved=1", "limit=3"])
async def test_bad_query_parameters_are_refused(served: Served, query: str) -> None:
    status, body = await get(served.path, f"/v1/vm/definition?{query}")
    assert status == 400 and body["error"] == "invalid_parameter", body


async def test_a_resolution_that_does_not_return_misses_the_deadline(served: Served) -> None:
    served.controller.hang = True
    status, body = await get(served.path, "/v1/vm/definition?resolved=true")
    assert status == 504 and body["error"] == "deadline_exceeded" and "resolving the VM definition" in body["message"]


def vm_conf(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "he_ha.main", "vm-conf", "--admin-socket", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_he_ha_vm_conf_prints_what_the_daemon_uses(served: Served) -> None:
    done = await asyncio.to_thread(vm_conf, served.path)
    assert done.returncode == 0 and done.stdout == BODY, done
    assert "source ovf-store: OVF_STORE volume v (image i, /p), read 1.5 s ago" in done.stderr

    done = await asyncio.to_thread(vm_conf, served.path, "--resolved")
    assert done.returncode == 0 and done.stdout == LAUNCH.xml + "\n", done
    assert "resolved: sysinfo serial: 'HOST-SERIAL:' -> 'h1'" in done.stderr
    assert "needs libvirt network vdsm-ovirtmgmt" in done.stderr
    assert "the engine's disk lease vol in lockspace sd at /m/sd/images/i/vol.lease:0" in done.stderr

    served.controller.launch, served.controller.launch_error = (
        None,
        "engine XML: sysinfo entry 'serial': 'HOST-SERIAL:'",
    )
    done = await asyncio.to_thread(vm_conf, served.path, "--resolved")
    assert done.returncode == 1 and done.stdout == "" and "cannot be made startable: engine XML: sysinfo" in done.stderr

    problem = "ovf-store: no usable ...ovf; starts use the last good definition, read from /run/vm.conf"
    served.controller.detail = DETAIL.model_copy(
        update={"definition": DETAIL.definition.model_copy(update={"source": "conf", "problem": problem})}
    )
    done = await asyncio.to_thread(vm_conf, served.path)
    assert done.returncode == 0 and f"problem: {problem}" in done.stderr

    served.controller.detail = DETAIL.model_copy(update={"startable": False})
    done = await asyncio.to_thread(vm_conf, served.path)
    assert done.returncode == 3 and done.stdout == BODY and "refused: " in done.stderr

    served.controller.detail = DETAIL.model_copy(
        update={
            "vm_conf": None,
            "vm_id": None,
            "startable": False,
            "definition": VmDefinitionView(
                usable=False,
                source=None,
                path=None,
                age=None,
                problem="no usable VM definition: conf: /run/vm.conf: missing",
            ),
        }
    )
    done = await asyncio.to_thread(vm_conf, served.path)
    assert done.returncode == 1 and done.stdout == "" and "conf: /run/vm.conf: missing" in done.stderr


def test_he_ha_vm_conf_without_a_daemon(tmp_path: Path) -> None:
    done = vm_conf(tmp_path / "absent.sock")
    assert done.returncode == 1 and "does not answer on" in done.stderr and done.stdout == ""

"""The shim's daemon-facing commands against a REAL two-host he-ha cluster (he_ha/devcluster:
``he-ha run`` supervisors, their sanlock daemons, private libvirtds serving the test driver,
the health page over HTTP), each command run as a real process with a host's environment.

One cluster serves the module; the tests run in file order and each leaves the cluster as
it found it (VM running on the engine host, no maintenance). The last stops both supervisors
to run the VM commands without them (straight through libvirt and sanlock, the VM lease
held by a lease keeper as the daemons hold it) and starts them again: the engine host's
daemon adopts the VM the shim started."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from he_ha.devcluster.cluster import ENGINE_NAME, ENGINE_UUID, Cluster, Host, actions_of, health_page, state_of
from he_ha.lease import LockspaceState
from he_ha.supervisor.controller import LOCAL_REFUSED, NO_TARGET
from tests.integration.supervisor.leases import try_acquire
from tests.unit.cli_commands.terminal import run_in_terminal

pytestmark = [pytest.mark.root, pytest.mark.slow]  # ~50 s: one cluster, a dozen VM starts and stops

REPO = Path(__file__).resolve().parents[3]
WAIT = 60.0
CANNOT_CONNECT = "Cannot connect to the HA daemon, please check the logs."


@pytest.fixture(scope="module")
def health_url() -> Iterator[str]:
    with health_page() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(health_url: str) -> Iterator[Cluster]:
    if shutil.which("libvirtd") is None or shutil.which("sanlock") is None:
        pytest.fail("needs the Debian packages sanlock and libvirt-daemon")
    with Cluster(2, libvirtd=True, health_url=health_url) as started:
        for host in started.hosts:
            host.start_supervisor()
        yield started


def hosted_engine(host: Host, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.hosted_engine", *args],
        cwd=REPO,
        env={**os.environ, **host.cli_env(), **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def hosts(cluster: Cluster) -> tuple[Host, Host]:
    """(the host running the engine VM, the other one), once the VM is up."""
    wait_until("a host runs the engine VM", lambda: any(h.vm() is not None for h in cluster.hosts))
    engine = next(h for h in cluster.hosts if h.vm() is not None)
    engine.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    other = next(h for h in cluster.hosts if h is not engine)
    return engine, other


def global_maintenance(host: Host) -> bool | None:
    value: bool | None = host.admin.get("/v1/status")["global_maintenance"]
    return value


def vm_conf(
    path: Path, *, vm_id: str = ENGINE_UUID, name: str = ENGINE_NAME, memory_mib: int = 64, devices: str = ""
) -> Path:
    xml = (
        f"<domain type='test'><name>{name}</name><uuid>{vm_id}</uuid><memory unit='MiB'>{memory_mib}"
        f"</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>{devices}</devices></domain>"
    )
    path.write_text(f"vmId={vm_id}\nmemSize={memory_mib}\nxmlBase64={base64.b64encode(xml.encode()).decode()}\n")
    return path


def memory_kib(host: Host) -> int:
    dom = host.vm()
    assert dom is not None
    info: list[Any] = dom.info()
    return int(info[1])


def expect(done: subprocess.CompletedProcess[str], status: int, out: str = "", err: str = "") -> None:
    assert (done.returncode, done.stdout, done.stderr) == (status, out, err), done


def test_maintenance_modes(hosts: tuple[Host, Host]) -> None:
    engine, other = hosts
    seen = len(other.decisions())
    expect(hosted_engine(other, "--set-maintenance", "--mode=local"), 0)
    assert "local_maintenance=True" in other.ha_conf.read_text()
    other.wait_for_decision(lambda e: state_of(e) == "LocalMaintenance", after=seen)
    # local is refused where the VM runs while no other host could take it, in the original's words
    wait_until(
        "the engine host sees the other in maintenance",
        lambda: (
            not any(
                h["maintenance"] is False and h["score"]
                for h in engine.admin.get("/v1/status")["hosts"]
                if not h["local"]
            )
        ),
    )
    expect(hosted_engine(engine, "--set-maintenance", "--mode=local"), 1, err=f"{LOCAL_REFUSED} ({NO_TARGET})\n")
    assert "local_maintenance=False" in engine.ha_conf.read_text()
    expect(hosted_engine(other, "--set-maintenance", "--mode=none"), 0)
    assert "local_maintenance=False\nlocal_maintenance_manual=False" in other.ha_conf.read_text()

    expect(hosted_engine(engine, "--set-maintenance", "--mode=global"), 0)
    wait_until("both hosts see global maintenance", lambda: all(global_maintenance(h) for h in hosts))
    expect(hosted_engine(other, "--set-maintenance", "--mode=none"), 0)
    wait_until("global maintenance cleared", lambda: not any(global_maintenance(h) for h in hosts))


def test_local_maintenance_vacates_the_engine_host(hosts: tuple[Host, Host]) -> None:
    """With a host able to take it, local maintenance moves the VM there (the test driver
    cannot migrate live, so it is shut down and started there), and back again."""
    for source, target in (hosts, hosts[::-1]):
        wait_until(f"{target.name} eligible again", partial(eligible, source, target))
        # The daemon decides on its own view a moment later; on a loaded machine a peer may
        # look briefly unfit then, and the refusal must then name that reason.
        wait_until(f"local maintenance accepted on {source.name}", partial(accepted_local, source))

        def moved(source: Host = source, target: Host = target) -> bool:
            return target.vm() is not None and source.vm() is None

        wait_until(f"the VM runs on {target.name}", moved)
        expect(hosted_engine(source, "--set-maintenance", "--mode=none"), 0)
    engine = hosts[0]
    engine.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=len(engine.decisions()) - 1)


def accepted_local(host: Host) -> bool:
    done = hosted_engine(host, "--set-maintenance", "--mode=local")
    if done.returncode != 0:
        assert done.stderr == f"{LOCAL_REFUSED} ({NO_TARGET})\n", done
    return done.returncode == 0 and (done.stdout, done.stderr) == ("", "")


def eligible(source: Host, target: Host) -> bool:
    """``source`` sees ``target`` live with a positive score and out of maintenance."""
    views = [h for h in source.admin.get("/v1/status")["hosts"] if h["host_id"] == target.host_id]
    return bool(views) and views[0]["live"] and bool(views[0]["score"]) and not views[0]["maintenance"]


def test_vm_control_in_global_maintenance(hosts: tuple[Host, Host], tmp_path: Path) -> None:
    engine, other = hosts
    seen = len(engine.decisions())
    expect(hosted_engine(engine, "--set-maintenance", "--mode=global"), 0)
    engine.wait_for_decision(lambda e: state_of(e) == "GlobalMaintenance", after=seen)

    # the lease is held by the engine host: the other host must not launch a second copy
    done = hosted_engine(other, "--vm-start")
    assert (done.returncode, done.stdout) == (1, "VM failed to launch\n"), done
    assert "refused: another host holds the VM lease" in done.stderr
    assert other.vm() is None

    expect(hosted_engine(engine, "--vm-start"), 1, "VM exists and its status is running\n")
    expect(hosted_engine(engine, "--vm-poweroff"), 0)
    engine.wait_for_vm(False)
    expect(hosted_engine(engine, "--vm-start"), 0, "VM in WaitForLaunch\n")
    engine.wait_for_vm(True)
    assert memory_kib(engine) == 64 * 1024

    # recovery: this start uses another vm.conf (more memory), the configured one is unchanged;
    # the shutdown's extra argument (public troubleshooting notes) is ignored, as by the original
    expect(
        hosted_engine(engine, "--vm-shutdown", "--force"),
        0,
        err="--vm-shutdown: ignored argument --force (the original hosted-engine ignores it too)\n",
    )
    engine.wait_for_vm(False)
    recovery = vm_conf(
        tmp_path / "recovery-vm.conf",
        memory_mib=128,
        devices="<graphics type='vnc' port='5907' autoport='no' listen='127.0.0.1'/>",
    )
    expect(hosted_engine(engine, "--vm-start", f"--vm-conf={recovery}"), 0, "VM in WaitForLaunch\n")
    engine.wait_for_vm(True)
    assert memory_kib(engine) == 128 * 1024

    # a VNC display exists now, but libvirt's test driver cannot update devices
    done = hosted_engine(engine, "--add-console-password", "--password=s3cret")
    assert (done.returncode, done.stdout) == (1, ""), done
    assert done.stderr.startswith("the VNC password could not be set: ")
    assert "not supported" in done.stderr and "virDomainUpdateDeviceFlags" in done.stderr

    expect(hosted_engine(engine, "--vm-poweroff"), 0)
    engine.wait_for_vm(False)
    stranger = vm_conf(tmp_path / "stranger-vm.conf", vm_id="0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e")
    expect(
        hosted_engine(engine, "--vm-start", f"--vm-conf={stranger}"),
        1,
        "VM failed to launch\n",
        f"refused: {stranger} describes the VM 0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e (vmId), "
        f"not the engine VM {ENGINE_UUID}\n",
    )
    renamed = vm_conf(tmp_path / "renamed-vm.conf", name="Other")
    expect(
        hosted_engine(engine, "--vm-start", f"--vm-conf={renamed}"),
        1,
        "VM failed to launch\n",
        f"refused: {renamed} names the VM 'Other', not '{ENGINE_NAME}' as the configured vm.conf does\n",
    )
    garbage = tmp_path / "garbage-vm.conf"
    garbage.write_text("vmId=\n")
    expect(
        hosted_engine(engine, "--vm-start", f"--vm-conf={garbage}"),
        1,
        "VM failed to launch\n",
        f"refused: not a usable vm.conf: {garbage}: key 'vmId' = '': String should have at least 1 character\n",
    )
    done = hosted_engine(engine, "--vm-start-paused")  # the test driver cannot start paused
    assert (done.returncode, done.stdout) == (1, "VM failed to launch\n"), done
    assert "unsupported flags" in done.stderr
    assert engine.vm() is None

    expect(hosted_engine(engine, "--vm-start"), 0, "VM in WaitForLaunch\n")
    engine.wait_for_vm(True)
    assert memory_kib(engine) == 64 * 1024  # the configured vm.conf again
    expect(
        hosted_engine(engine, "--add-console-password", "--password=s3cret"),
        1,
        err=f"Failed detecting VNC port\nthe engine VM {ENGINE_NAME} ({ENGINE_UUID}) has no VNC graphics device\n",
    )
    expect(
        hosted_engine(other, "--add-console-password", "--password=s3cret"),
        1,
        err=f"the engine VM {ENGINE_NAME} ({ENGINE_UUID}) is not running on this host\n",
    )

    expect(hosted_engine(engine, "--set-maintenance", "--mode=none"), 0)
    wait_until("global maintenance cleared", lambda: not global_maintenance(engine))


def test_console_asks_libvirt_and_runs_virsh(hosts: tuple[Host, Host]) -> None:
    engine, other = hosts
    expect(hosted_engine(other, "--console"), 0, "The engine VM is not on this host\n")
    shown = run_in_terminal(
        [sys.executable, "-m", "cli.hosted_engine", "--console"],
        {**os.environ, **engine.cli_env(), "PYTHONPATH": str(REPO)},
    )
    assert shown.output.startswith("The engine VM is running on this host\r\n"), shown.output
    assert "virDomainOpenConsole" in shown.output and shown.status == 1  # the test driver has no consoles


def test_check_liveliness_against_the_health_page(hosts: tuple[Host, Host], health_url: str) -> None:
    engine, _ = hosts
    address = health_url.removeprefix("http://").split("/")[0]  # 127.0.0.1:<port>
    expect(hosted_engine(engine, "--set-shared-config", "fqdn", address, "--type=he_local"), 0)
    expect(
        hosted_engine(engine, "--get-shared-config", "fqdn", "--type=he_local"),
        0,
        f"\nfqdn : {address}, type : he_local\n\n",
    )
    expect(hosted_engine(engine, "--check-liveliness"), 0, "Hosted Engine is up!\n")
    expect(
        hosted_engine(engine, "--set-shared-config", "fqdn", "127.0.0.1:9", "--type=he_local"), 0
    )  # discard port: nothing there
    done = hosted_engine(engine, "--check-liveliness")
    assert (done.returncode, done.stdout) == (1, "Hosted Engine is not up!\n") and "Connection refused" in done.stderr
    expect(hosted_engine(engine, "--set-shared-config", "fqdn", "engine.invalid", "--type=he_local"), 0)


def test_set_shared_config_he_shared(hosts: tuple[Host, Host]) -> None:
    """he_shared is the configuration volume's hosted-engine.conf: set on one host (whose daemon
    holds the lockspace: the volume's lock is just taken), read on the other."""
    engine, other = hosts
    expect(hosted_engine(engine, "--set-shared-config", "fqdn", "new-engine.invalid", "--type=he_shared"), 0)
    expect(
        hosted_engine(other, "--get-shared-config", "fqdn", "--type=he_shared"),
        0,
        "\nfqdn : new-engine.invalid, type : he_shared\n\n",
    )
    expect(
        hosted_engine(other, "--get-shared-config", "fqdn", "--type=he_local"),
        0,
        "\nfqdn : engine.invalid, type : he_local\n\n",
    )
    expect(hosted_engine(other, "--set-shared-config", "fqdn", "engine.invalid", "--type=he_shared"), 0)


DIRECT = "; acting directly through libvirt ("
JOINING = "he-ha: joining the sanlock lockspace 'hosted-engine' as host id "
STATUS_TAIL = (
    f"{CANNOT_CONNECT}\nAn error occured while retrieving vm status, please make sure the HA daemon is "
    "ready and reachable.\nUnable to connect the HA Broker \n"
)


def lockspace_state(cluster: Cluster, host: Host) -> LockspaceState:
    async def ask() -> LockspaceState:
        assert cluster.layout is not None
        async with cluster.lease_client(host) as client:
            return await client.lockspace_state(cluster.layout.lockspace, host.host_id)

    return asyncio.run(ask())


def direct(done: subprocess.CompletedProcess[str], host: Host) -> list[str]:
    """The stderr lines after the one saying the shim acts without the daemon (checked)."""
    lines = done.stderr.splitlines()
    assert lines and lines[0] == (
        f"he-ha: the he-ha daemon does not answer on {host.admin_socket}: [Errno 2] No such "
        f"file or directory{DIRECT}{host.libvirt_uri})"
    ), done
    return lines[1:]


def test_daemon_down(cluster: Cluster, hosts: tuple[Host, Host], tmp_path: Path) -> None:
    engine, other = hosts
    no_vm_conf = tmp_path / "hosted-engine.conf"
    conf_text = (other.root / "hosted-engine.conf").read_text()
    assert f"conf={other.vm_conf}\n" in conf_text
    no_vm_conf.write_text(conf_text.replace(f"conf={other.vm_conf}\n", f"conf={tmp_path / 'not-retrieved.conf'}\n"))
    not_retrieved = "The hosted engine configuration has not been retrieved from shared storage yet,\n"
    expect(
        hosted_engine(other, "--vm-start", HE_HA_HOSTED_ENGINE_CONF=str(no_vm_conf)),
        1,
        f"{not_retrieved}for more details please check sanlock status.\n\n",
    )
    expect(hosted_engine(engine, "--set-maintenance", "--mode=global"), 0)  # the daemons leave the VM alone
    wait_until("both hosts see global maintenance", lambda: all(global_maintenance(h) for h in hosts))

    assert other.supervisors[-1].terminate() == 0
    expect(
        hosted_engine(other, "--vm-start", HE_HA_HOSTED_ENGINE_CONF=str(no_vm_conf)),
        1,
        f"{not_retrieved}please ensure that the he-ha service is running.\n\n",
    )
    gone = f"the he-ha daemon does not answer on {other.admin_socket}: [Errno 2] No such file or directory"
    expect(hosted_engine(other, "--vm-status"), 1, err=f"{gone}\n{STATUS_TAIL}")
    as_json = hosted_engine(other, "--vm-status", "--json")
    assert (as_json.returncode, json.loads(as_json.stdout)) == (1, {"exception": f"{gone}\n{CANNOT_CONNECT}"})
    from_storage = hosted_engine(other, "--vm-status", "--from-storage")
    assert from_storage.returncode == 0 and "status read from storage" in from_storage.stderr
    assert from_storage.stdout.count("Status up-to-date                  : False") == 2
    expect(hosted_engine(other, "--set-maintenance", "--mode=global"), 1, err=f"{CANNOT_CONNECT}\n{gone}\n")

    # The engine host holds the VM lease: a start here is refused before any launch, and the
    # lockspace this start joined is left again.
    done = hosted_engine(other, "--vm-start")
    assert (done.returncode, done.stdout) == (1, "VM failed to launch\n"), done
    said = direct(done, other)
    assert said[0].startswith(f"{JOINING}{other.host_id} ") and said[-1].startswith(
        "refused: another host holds the VM lease ("
    )
    assert other.vm() is None and lockspace_state(cluster, other) is LockspaceState.NOT_JOINED
    for command in ("--vm-shutdown", "--vm-poweroff"):  # nothing to stop here: done
        done = hosted_engine(other, command)
        assert (done.returncode, done.stdout, direct(done, other)) == (0, "", []), done
    done = hosted_engine(other, "--add-console-password", "--password=x")
    assert (done.returncode, direct(done, other)) == (
        1,
        [f"the engine VM {ENGINE_NAME} ({ENGINE_UUID}) is not running on this host"],
    )

    # The engine host's daemon stops too; its VM runs on, its lease keeper holds the lease.
    assert engine.supervisors[-1].terminate() == 0
    assert engine.vm() is not None and engine.keeper_pid() is not None
    done = hosted_engine(engine, "--vm-start")
    assert (done.returncode, done.stdout, direct(done, engine)) == (1, "VM exists and its status is running\n", [])
    done = hosted_engine(engine, "--add-console-password", "--password=x")
    assert (done.returncode, direct(done, engine)) == (
        1,
        ["Failed detecting VNC port", f"the engine VM {ENGINE_NAME} ({ENGINE_UUID}) has no VNC graphics device"],
    )
    done = hosted_engine(engine, "--vm-poweroff")  # the VM is gone: so is its keeper's lease
    assert (done.returncode, done.stdout, direct(done, engine)) == (
        0,
        "",
        ["he-ha: the engine VM is gone: the VM lease its lease keeper held is released"],
    ), done
    assert engine.vm() is None and engine.keeper_pid() is None
    assert lockspace_state(cluster, engine) is LockspaceState.NOT_JOINED

    # A start without the daemon: the lockspace joined, the lease taken by a keeper, then the launch.
    done = hosted_engine(engine, "--vm-start")
    assert (done.returncode, done.stdout) == (0, "VM in WaitForLaunch\n"), done
    said = direct(done, engine)
    assert said[0].startswith(f"{JOINING}{engine.host_id} ") and said[-1].startswith("he-ha: in the lockspace after")
    engine.wait_for_vm(True)
    assert engine.keeper_pid() is not None and not try_acquire(cluster, other)
    done = hosted_engine(other, "--vm-start")  # another host is refused: the lease is held
    assert (done.returncode, done.stdout) == (1, "VM failed to launch\n"), done
    assert direct(done, other)[-1].startswith("refused: another host holds the VM lease (")
    assert other.vm() is None
    done = hosted_engine(engine, "--vm-shutdown")  # the test driver's guest stops at once
    assert (done.returncode, done.stdout, direct(done, engine)) == (
        0,
        "",
        ["he-ha: the engine VM is gone: the VM lease its lease keeper held is released"],
    ), done
    assert engine.keeper_pid() is None

    # Started again without the daemon, then the daemon comes back and adopts the VM and its keeper.
    done = hosted_engine(engine, "--vm-start")
    assert (done.returncode, done.stdout) == (0, "VM in WaitForLaunch\n"), done
    engine.wait_for_vm(True)
    vm = engine.vm()
    assert vm is not None
    domain_id, keeper = vm.ID(), engine.keeper_pid()
    seen = len(engine.decisions())
    engine.start_supervisor()
    _, adopted = engine.wait_for_decision(lambda e: e["observation"]["lease"]["held_here"], after=seen)
    assert adopted["observation"]["lease"]["owner"] == engine.host_id
    expect(hosted_engine(engine, "--set-maintenance", "--mode=none"), 0)
    engine.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen)
    assert not any("AcquireLeaseAndStartVm" in actions_of(e) for e in engine.decisions()[seen:])
    vm = engine.vm()
    assert vm is not None and vm.ID() == domain_id and engine.keeper_pid() == keeper  # adopted, not restarted

    other.start_supervisor()
    other.wait_for_decision(lambda e: state_of(e) == "EngineDown", after=len(other.decisions()))
    expect(hosted_engine(other, "--check-deployed"), 0, "The hosted engine has been deployed\n")

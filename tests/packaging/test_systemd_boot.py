"""he-ha's .deb and unit under a real, booted systemd (issue 17 item 3).

A Debian 12 root file system (packaging/systemd-test/rootfs.sh: mmdebstrap, cached by
packaging/cache.sh) is copied, the freshly built .deb is installed into the copy with
``dpkg -i`` and the copy gets a test host's surroundings (packaging/systemd-test/prepare.sh:
sanlock.service with the memlock shim, a libvirtd serving the test driver under the name
libvirtd.service, the engine's health page). Then ``systemd-nspawn --boot`` runs it with
systemd 252 as PID 1 of the container (this machine's own PID 1 is not systemd), with a
private network, and every command below runs inside with ``nsenter`` into the container's
namespaces. What is real: systemd, its notify socket and watchdog, the package's unit as
installed, cgroups and the keeper's transient scope, the sanlock daemon and its leases on
files, libvirtd. What is not: the hypervisor is libvirt's test driver (no QEMU), the storage is
files in the container, sanlock runs without wdmd (-w 0) and the timings are the dev cluster's
(io_timeout 1 s, 1 s ticks), passed through /etc/default/he-ha; the unit's WatchdogSec=60s is
the shipped one. Needs root; 4.5-7.5 minutes (2 x WatchdogSec of watching, one watchdog abort).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import memlock_shim
from tests.support.tools import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.1.0"
VM_UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
LIBVIRT = "test+unix:///default"
WATCHDOG = 60.0  # the unit's WatchdogSec
RESTART = 10.0  # the unit's RestartSec
# `systemctl stop` is repeated: with the default KillMode, systemd's SIGTERM reaches the lease
# worker (a child in he-ha's cgroup) while the supervisor still needs it for its stop sequence;
# measured here, 3 of 20 stops ended in a LeaseWorkerDied traceback (exit 1) or the 30 s stop
# deadline (exit 3). One stop would catch that race rarely; ten catch it most of the time.
STOPS = 10


def run(*argv: str | Path, timeout: float = 900) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Booted:
    """A root directory booted by ``systemd-nspawn -b``; commands run inside via nsenter."""

    def __init__(self, root: Path, name: str, log: Path) -> None:
        self.root, self.name, self.log = root, name, log
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the container's PID 1 (systemd), as this machine sees it
        self.boot_seconds = 0.0

    def boot(self, timeout: float = 120) -> float:
        """Boot and wait until ``systemctl is-system-running`` answers; the seconds it took."""
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-D",
                    str(self.root),
                    "-M",
                    self.name,
                    "--register=no",
                    "--keep-unit",
                    "--private-network",
                    "--boot",
                    "--console=passive",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        while not self.leader:
            assert self.nspawn.poll() is None, f"systemd-nspawn exited {self.nspawn.returncode}: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"no container init after {timeout} s: {self.log.read_text()}"
            with contextlib.suppress(OSError, ValueError):
                children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split()
                if children and Path(f"/proc/{children[0]}/comm").read_text().strip() == "systemd":
                    self.leader = int(children[0])
            time.sleep(0.1)
        while True:
            state = self.sh("systemctl", "is-system-running", "--wait", check=False, timeout=timeout).stdout.strip()
            if state in ("running", "degraded"):
                break
            assert time.monotonic() < deadline, f"system state {state!r} after {timeout} s"
            time.sleep(0.5)
        assert state == "running", self.sh("systemctl", "--failed", "--no-pager", check=False).stdout
        self.boot_seconds = time.monotonic() - began
        return self.boot_seconds

    def sh(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-a", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def show(self, unit: str, *props: str) -> dict[str, str]:
        text = self.sh("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def journal(self, unit: str = "he-ha") -> str:
        return self.sh("journalctl", "-u", unit, "--no-pager", "-o", "short-monotonic").stdout

    def alive(self, pid: int) -> bool:
        """Whether ``pid`` (a pid of the container's namespace) runs and is no zombie."""
        done = self.sh("ps", "-o", "stat=", "-p", str(pid), check=False)
        return done.returncode == 0 and not done.stdout.strip().startswith("Z")

    def close(self) -> None:
        """Tear down at once: SIGKILL to the container's PID 1 ends every process of its PID
        namespace (a clean poweroff would wait for sanlock, which ignores SIGTERM while it
        holds a lockspace, and Debian's sanlock.service has SendSIGKILL=no)."""
        if self.leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.leader, signal.SIGKILL)
        if self.nspawn is not None:
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(timeout=10)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("mmdebstrap", "mmdebstrap"),
        ("nsenter", "util-linux"),
        ("dpkg-deb", "dpkg"),
        ("rpmbuild", "rpm"),
    ):
        require_tool(tool, package)
    packages = tmp_path_factory.mktemp("packages")
    run("bash", REPO / "packaging" / "build.sh", packages)
    deb = packages / f"he-ha_{VERSION}_amd64.deb"
    cached = Path(run("bash", REPO / "packaging" / "systemd-test" / "rootfs.sh").strip().splitlines()[-1])
    work = tmp_path_factory.mktemp("booted")
    root = work / "root"
    try:
        run("cp", "-a", "--reflink=auto", cached, root)
        run("bash", REPO / "packaging" / "systemd-test" / "prepare.sh", root, deb, memlock_shim())
        booted = Booted(root, f"he-ha-test-{os.getpid()}", work / "nspawn.log")
        try:
            booted.boot()
            yield booted
        finally:
            booted.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def keeper_pid(host: Booted) -> int:
    """The pid sanlock names as the VM lease's owner (``r hosted-engine:<uuid>:... p PID``)."""
    status = host.sh("sanlock", "client", "status").stdout
    found = re.search(rf"^r hosted-engine:{VM_UUID}:\S+ p (\d+)$", status, re.MULTILINE)
    assert found, f"the VM lease is not held:\n{status}"
    return int(found.group(1))


def vm_state(host: Booted) -> str:
    return host.sh("virsh", "-c", LIBVIRT, "domstate", "HostedEngine", check=False).stdout.strip()


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout:g} s"
        time.sleep(0.5)
    return time.monotonic() - began


def assert_vm_and_lease_kept(host: Booted, keeper: int, when: str) -> None:
    assert host.alive(keeper), f"{when}: the lease keeper {keeper} is gone"
    assert keeper_pid(host) == keeper, f"{when}: the VM lease changed owner"
    assert vm_state(host) == "running", f"{when}: the VM is {vm_state(host)!r}"


def test_he_ha_under_booted_systemd(host: Booted, capsys: pytest.CaptureFixture[str]) -> None:
    facts = [f"booted to 'running' in {host.boot_seconds:.1f} s"]
    unit = "/lib/systemd/system/he-ha.service"

    # the package installed the unit, did not enable or start it, and the unit verifies
    assert host.sh("systemctl", "is-enabled", "he-ha", check=False).stdout.strip() == "disabled"
    assert host.sh("systemctl", "is-active", "he-ha", check=False).stdout.strip() == "inactive"
    verify = host.sh("systemd-analyze", "verify", unit, check=False)
    assert verify.returncode == 0 and "he-ha" not in verify.stdout + verify.stderr, verify.stdout + verify.stderr
    # not deployed yet (no hosted-engine.conf): start is a no-op, not a failure
    host.sh("systemctl", "start", "he-ha")
    state = host.show("he-ha", "ActiveState", "ConditionResult", "Result")
    assert state == {"ActiveState": "inactive", "ConditionResult": "no", "Result": "success"}, state

    # an incomplete hosted-engine.conf (host_id only): the daemon exits before READY=1, so
    # `systemctl start` fails (Type=notify), and the daemon's error is in journalctl -p err
    host.sh(
        "sh", "-c", "mkdir -p /etc/ovirt-hosted-engine && echo host_id=1 > /etc/ovirt-hosted-engine/hosted-engine.conf"
    )
    assert host.sh("systemctl", "start", "he-ha", check=False).returncode != 0
    errors = host.sh("journalctl", "-u", "he-ha", "-p", "err", "--no-pager", "-o", "cat").stdout
    assert "hosted-engine.conf" in errors, host.journal()
    facts.append(f"unstartable configuration: systemctl start fails; journalctl -p err: {errors.splitlines()[:2]}")
    host.sh("systemctl", "stop", "he-ha")  # Restart=always would retry every 10 s
    host.sh("systemctl", "reset-failed", "he-ha", check=False)  # stopped, it may be unloaded already
    host.sh("rm", "/etc/ovirt-hosted-engine/hosted-engine.conf")

    # deploy: the HA part of hosted-engine --deploy on file storage (needs sanlock.service)
    host.sh("systemctl", "is-active", "sanlock", "libvirtd", "he-ha-test-pin", "he-ha-test-health")
    host.sh("/usr/local/sbin/he-ha-test-init-storage")

    # Type=notify: `systemctl start` returns once READY=1 came, with the lockspace joined
    began = time.monotonic()
    host.sh("systemctl", "start", "he-ha", timeout=320)
    facts.append(f"systemctl start he-ha (lockspace join included): {time.monotonic() - began:.1f} s")
    state = host.show(
        "he-ha",
        "ActiveState",
        "SubState",
        "MainPID",
        "NRestarts",
        "StatusText",
        "WatchdogUSec",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state
    assert state["WatchdogUSec"] == "1min" and state["NRestarts"] == "0", state
    assert re.match(r"\w+, score \d+", state["StatusText"]), state  # STATUS= from the tick
    ready = (int(state["ActiveEnterTimestampMonotonic"]) - int(state["ExecMainStartTimestampMonotonic"])) / 1e6
    facts.append(f"exec to READY=1: {ready:.2f} s; first STATUS: {state['StatusText']!r}")
    main = int(state["MainPID"])
    assert "supervisor ready" in host.journal()

    # the VM starts; its lease is held by the keeper, in a scope of its own outside he-ha.service
    took = wait_for("the engine VM running", lambda: vm_state(host) == "running", 60)
    facts.append(f"VM running {took:.1f} s after READY")
    keeper = keeper_pid(host)
    cgroup = host.sh("cat", f"/proc/{keeper}/cgroup").stdout
    assert re.search(r"/system\.slice/he-ha-lease-keeper-\w+\.scope$", cgroup, re.MULTILINE), cgroup
    assert "he-ha.service" not in cgroup, cgroup
    scope = re.search(r"(he-ha-lease-keeper-\w+\.scope)", cgroup).group(1)  # type: ignore[union-attr]
    assert host.show(scope, "ActiveState")["ActiveState"] == "active"
    facts.append(f"lease keeper pid {keeper} in {scope}")

    # the watchdog is fed: nothing fires during 2 x WatchdogSec; the ping time moves on
    pings = set()
    began = time.monotonic()
    while time.monotonic() - began < 2 * WATCHDOG + 10:
        state = host.show("he-ha", "ActiveState", "MainPID", "NRestarts", "WatchdogTimestampMonotonic")
        assert state["ActiveState"] == "active" and int(state["MainPID"]) == main and state["NRestarts"] == "0", state
        pings.add(state["WatchdogTimestampMonotonic"])
        time.sleep(2)
    assert len(pings) >= 4, f"WatchdogTimestamp took only {len(pings)} values in {2 * WATCHDOG + 10:g} s"
    assert "watchdog timeout" not in host.journal().lower()
    facts.append(f"{2 * WATCHDOG + 10:g} s watched: no restart, {len(pings)} distinct watchdog ping times")

    # systemctl kill (SIGKILL to every process of the unit): the keeper, VM and lease stay;
    # Restart=always brings he-ha back and it adopts the keeper
    killed = host.sh("systemctl", "kill", "--signal=SIGKILL", "he-ha", check=False)
    # systemd 252 here sometimes reports "Failed to send signal SIGKILL to auxiliary processes:
    # Input/output error": the lease worker, SIGKILLed too, ends with its client at that very
    # moment (seen once in the parallel suite). The main process is killed all the same, which
    # the wait below checks; any other failure of the command fails the test.
    assert killed.returncode == 0 or "to auxiliary processes" in killed.stderr, killed
    wait_for("he-ha killed", lambda: host.show("he-ha", "MainPID")["MainPID"] != str(main), 10)
    assert_vm_and_lease_kept(host, keeper, "after systemctl kill")
    took = wait_for(
        "he-ha restarted after kill",
        lambda: host.show("he-ha", "ActiveState", "NRestarts") == {"ActiveState": "active", "NRestarts": "1"},
        RESTART + 60,
    )
    facts.append(f"systemctl kill -s KILL: back to active {took:.1f} s later (RestartSec={RESTART:g})")
    assert_vm_and_lease_kept(host, keeper, "after the restart that followed systemctl kill")
    assert f"adopted the lease keeper pid={keeper}" in host.journal()
    main = int(host.show("he-ha", "MainPID")["MainPID"])

    # a hung supervisor (SIGSTOP): the watchdog fires, systemd aborts and restarts it
    host.sh("kill", "-STOP", str(main))
    stopped = time.monotonic()
    wait_for("the watchdog abort", lambda: host.show("he-ha", "NRestarts")["NRestarts"] == "2", WATCHDOG + 90)
    journal = host.journal()
    assert "Watchdog timeout" in journal, journal[-3000:]
    took = wait_for("he-ha active again", lambda: host.show("he-ha", "ActiveState")["ActiveState"] == "active", 60)
    facts.append(
        f"SIGSTOP: watchdog restart done {time.monotonic() - stopped:.1f} s after the stop "
        f"(WatchdogSec={WATCHDOG:g}, RestartSec={RESTART:g})"
    )
    assert "Fatal Python error: Aborted" in journal, journal[-3000:]  # PYTHONFAULTHANDLER=1
    assert_vm_and_lease_kept(host, keeper, "after the watchdog restart")
    main = int(host.show("he-ha", "MainPID")["MainPID"])

    # systemctl restart: a new supervisor, the VM and its lease untouched
    host.sh("systemctl", "restart", "he-ha", timeout=200)
    assert int(host.show("he-ha", "MainPID")["MainPID"]) != main
    assert_vm_and_lease_kept(host, keeper, "after systemctl restart")

    # systemctl stop: a clean exit (status 0, no traceback), the VM and its lease untouched;
    # STOPS times, each followed by a start, since an unclean stop is a race (see STOPS)
    unclean: list[str] = []
    stop_times: list[float] = []
    for attempt in range(STOPS):
        lines = len(host.journal().splitlines())
        began = time.monotonic()
        host.sh("systemctl", "stop", "he-ha", timeout=120)
        stop_times.append(time.monotonic() - began)
        state = host.show("he-ha", "ActiveState", "Result", "ExecMainStatus")
        assert state["ActiveState"] in ("inactive", "failed"), state
        assert_vm_and_lease_kept(host, keeper, f"after systemctl stop #{attempt + 1}")
        tail = host.journal().splitlines()[lines:]
        if state["Result"] != "success" or any("Traceback" in line for line in tail):
            unclean.append(f"stop #{attempt + 1} ({stop_times[-1]:.1f} s): {state}\n" + "\n".join(tail[-25:]))
        if attempt + 1 < STOPS:
            # Ten clean stops and starts take seconds: systemd's default start rate limit (5 in
            # 10 s) would refuse the next start, as it would an administrator's; reset it. A
            # cleanly stopped unit may be unloaded already (nothing to reset): systemd says so.
            reset = host.sh("systemctl", "reset-failed", "he-ha", check=False)
            assert reset.returncode == 0 or "not loaded" in reset.stderr, reset
            host.sh("systemctl", "start", "he-ha", timeout=120)
    facts.append(
        f"systemctl stop he-ha x {STOPS}: {min(stop_times):.2f} to {max(stop_times):.2f} s, {len(unclean)} unclean"
    )
    assert not unclean, (
        "systemd's SIGTERM to the cgroup killed the lease worker during the stop (docs/systemd.md, "
        "'Found by it'):\n\n" + "\n\n".join(unclean)
    )

    errors = host.sh("journalctl", "-u", "he-ha", "-p", "err", "--no-pager", "-o", "cat").stdout
    facts.append(f"journalctl -p err -u he-ha at the end: {len(errors.splitlines())} lines")

    with capsys.disabled():
        print("\nbooted systemd (" + host.sh("systemctl", "--version").stdout.splitlines()[0] + "):")
        for fact in facts:
            print("  " + fact)

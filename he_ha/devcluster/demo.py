"""``he-ha demo``: a cluster of simulated hosts on this machine failing over for real.

Each host gets its own sanlock daemon (own SANLOCK_RUN_DIR), its own hypervisor (a private
libvirtd serving libvirt's test driver, so the VM outlives supervisor processes) and its own
real ``he-ha run`` process with its own configuration, admin socket and host id. The hosts
are laid out as ``hosted-engine --deploy`` and VDSM leave them: one NFS-style storage domain
with the hosted-engine volumes, mounted under each host's root, hosted-engine.conf without
any he-ha key (sanlock io_timeout 1 s). A health page
follows the engine VM. The demo shows the cluster (``hosted-engine --vm-status`` and a
table), injects faults one after another (he_ha/devcluster/demo_faults.py), measures each
recovery, checks ten times a second that no two hypervisors run the VM, and stops and
removes everything it started, also on failure, Ctrl-C or SIGTERM. docs/demo.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from types import FrameType

from he_ha.devcluster.cluster import (
    IO_TIMEOUT,
    Cluster,
    HealthPage,
    processes_referencing,
)
from he_ha.devcluster.demo_faults import SCENARIOS, engine_healthy
from he_ha.devcluster.demo_narrate import DecisionTail, Narrator
from he_ha.devcluster.demo_shim import storage_paths
from he_ha.devcluster.demo_stage import Measure, ScenarioFailed, Stage, first_seen
from he_ha.devcluster.libvirtd import LibvirtdError
from he_ha.devcluster.sanlockd import SanlockDaemonError
from he_ha.devcluster.vm_watch import VmWatcher
from he_ha.lease import LeaseError, host_dead_seconds
from he_ha.logsetup import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 130
FIRST_START_BOUND = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts", type=int, default=3, choices=range(2, 7), metavar="N", help="simulated hosts (2-6, default 3)"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run the remaining scenarios after one failed (default: stop at the first failure)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="only the injected faults, the measured recoveries and the summary"
    )
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=Path("/var/tmp"),
        help="where the demo's temporary directory goes (default /var/tmp; needs O_DIRECT)",
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(json=False, level="ERROR")  # the narration is the output; library logs only on errors
    missing = [tool for tool in ("sanlock", "libvirtd", "setpriv", "gcc") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        print(
            f"he-ha demo needs root and {', '.join(missing) or 'its tools'}: run `bash scripts/demo.sh`, "
            "which installs them (scripts/setup.sh)"
        )
        return EXIT_UNUSABLE
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a shell's `&` ignores it
        signal.signal(sig, _interrupt)
    return Demo(args.hosts, args.base_dir, quiet=args.quiet, keep_going=args.keep_going).run()


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class Demo:
    def __init__(self, hosts: int, base_dir: Path, *, quiet: bool, keep_going: bool) -> None:
        self.count = hosts
        self.base_dir = base_dir
        self.keep_going = keep_going
        self.out = Narrator(quiet)
        self.host_dead = host_dead_seconds(IO_TIMEOUT)
        self.failures: list[str] = []
        self.measures: list[Measure] = []
        self.owned: list[Path] = []
        self.watcher: VmWatcher | None = None
        self.interrupted = False

    def run(self) -> int:
        stack = contextlib.ExitStack()
        try:
            stage = self._start(stack)
            self._scenarios(stage)
        except KeyboardInterrupt as exc:
            self.interrupted = True
            self.out.say(f"interrupted ({exc or 'SIGINT'}): stopping everything")
        except (ScenarioFailed, SanlockDaemonError, LibvirtdError, LeaseError, OSError) as exc:
            self.failures.append(str(exc))
            self.out.say(f"FAILED: {exc}")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # clean-up runs to its end
            self.out.heading("shutting down")
            stack.close()
        self._check_left_behind()
        self._summary()
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failures else EXIT_OK

    # --- start -------------------------------------------------------------------------------

    def _start(self, stack: contextlib.ExitStack) -> Stage:
        out = self.out
        out.say(
            f"he-ha demo: {self.count} simulated hosts on this machine, sanlock io_timeout {IO_TIMEOUT} s "
            f"(host-dead time {self.host_dead} s)"
        )
        page = stack.enter_context(HealthPage())
        cluster = Cluster(self.count, libvirtd=True, health_url=page.url, base_dir=self.base_dir)
        self.owned = cluster.owned_paths()
        out.say("per host: a sanlock daemon (own SANLOCK_RUN_DIR) and a private libvirtd (test driver)")
        stack.enter_context(cluster)
        stack.callback(self._stop_supervisors, cluster)
        d, first = cluster.deployment, cluster.hosts[0]
        out.say(
            f"storage laid out as hosted-engine --deploy and VDSM leave it: storage domain {d.sd_uuid} on "
            f"{d.storage} mounted at {cluster.storage}, VDSM's run links in {first.view.run_root}; "
            "hosted-engine.conf without any he-ha key"
        )
        out.detail(
            "deployment (hosted-engine --init-storage on host1): lockspace, VM lease and configuration lock "
            "on the lockspace volume, the metadata volume zeroed; each host's run directory holds the vm.conf "
            "the original agent left"
        )
        out.say(f"{first.name}: he-ha storage-paths: {storage_paths(first)}")
        out.detail(f"temporary directories: {', '.join(map(str, self.owned))}")
        watcher = stack.enter_context(VmWatcher(cluster.hosts, on_change=self._vm_changed))
        self.watcher = watcher
        page.gate = watcher.engine_problem
        out.say(f"health page {page.url}: says 'DB Up' only while exactly one host's hypervisor runs the VM")
        if not out.quiet:
            stack.enter_context(DecisionTail(cluster.hosts, out))
        stage = Stage(cluster, watcher, out, self.host_dead, self.measures)

        start = time.monotonic()
        for host in cluster.hosts:
            supervisor = host.start_supervisor()
            out.say(
                f"{host.name}: he-ha run started (pid {supervisor.pid}, host id {host.host_id}, "
                f"admin socket {host.admin_socket})"
            )
        run = stage.wait_for_start(start, FIRST_START_BOUND)
        stage.record(
            "start", "supervisors started -> engine VM running", start, first_seen(run), f"on {run.host}" if run else ""
        )
        if run is None:
            raise ScenarioFailed(f"no host started the engine VM within {FIRST_START_BOUND:.0f} s")
        engine_healthy(stage, "start", start, run.host)
        stage.show_table()
        stage.show_vm_status(cluster.hosts[0])
        return stage

    def _vm_changed(self, host: str, running: bool, at: float) -> None:
        self.out.detail(f"{host}'s hypervisor: engine VM {'RUNNING' if running else 'gone'}", at)

    # --- faults ------------------------------------------------------------------------------

    def _scenarios(self, stage: Stage) -> None:
        for number, (name, scenario) in enumerate(SCENARIOS, 1):
            self.out.heading(f"scenario {number}/{len(SCENARIOS)}: {name}")
            try:
                scenario(stage)
            except ScenarioFailed as exc:
                self.failures.append(f"{name}: {exc}")
                self.out.say(f"FAILED: {name}: {exc}")
                if not self.keep_going:
                    self.out.say("stopping at the first failure (--keep-going runs the rest)")
                    return
            self._check_two_copies()
        stage.show_table()

    def _check_two_copies(self) -> None:
        assert self.watcher is not None
        for violation in self.watcher.violations:
            text = violation.describe(self.out.origin)
            if text not in self.failures:
                self.failures.append(text)
                self.out.say(f"FAILED: {text}")

    # --- stop --------------------------------------------------------------------------------

    def _stop_supervisors(self, cluster: Cluster) -> None:
        if self.watcher is not None:
            self._check_two_copies()
        codes = cluster.terminate_supervisors()
        if codes:
            self.out.say(
                "SIGTERM to every supervisor: "
                + ", ".join(f"{name} {_exit_text(code)}" for name, code in codes.items())
            )
        for host in cluster.hosts:  # every host's last supervisor ran to the end and stopped cleanly
            last = host.supervisors[-1] if host.supervisors else None
            if last is None or last.process.returncode == 0:
                continue
            code = last.process.returncode
            if host.name in codes:
                failure = f"{host.name}'s supervisor did not stop cleanly on SIGTERM ({_exit_text(code)})"
            else:
                failure = f"{host.name}'s supervisor had already exited (code {code})"
            self.failures.append(failure)
            self.out.block([f"FAILED: {failure}; the last lines of its log:", last.log_tail()])
        self.out.say("stopping lease keepers, libvirtd and sanlock daemons; removing the directories")

    def _check_left_behind(self) -> None:
        if not self.owned:
            return
        stray = processes_referencing(self.owned)
        dirs = [str(path) for path in self.owned if path.exists()]
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if any(str(path) in line for path in self.owned)
        ]
        for what, found in (
            ("process", [f"{pid} {cmd}" for pid, cmd in stray]),
            ("directory", dirs),
            ("mount", mounts),
        ):
            for item in found:
                self.failures.append(f"left behind: {what} {item}")
        if stray or dirs or mounts:
            self.out.say(f"FAILED: left behind: {len(stray)} processes, {len(dirs)} directories, {len(mounts)} mounts")
        else:
            self.out.say("left behind: nothing (no process, socket, mount or directory of the demo remains)")

    def _summary(self) -> None:
        out = self.out
        out.heading(f"summary: {self.count} hosts, {time.monotonic() - out.origin:.0f} s wall time")
        rows = [f"{'scenario':<19} {'measured':<66} {'seconds':>7}"]
        for m in self.measures:
            seconds = f"{m.seconds:7.1f}" if m.seconds is not None else " FAILED"
            rows.append(f"{m.scenario:<19} {m.what:<66} {seconds}" + (f"   {m.note}" if m.note else ""))
        out.block(rows)
        if self.watcher is not None:
            seen = "YES" if self.watcher.violations else "never"
            rate = 1 / self.watcher.interval
            line = f"two copies of the engine VM at once: {seen} ({self.watcher.samples} hypervisor samples at {rate:.0f} Hz per host)"
            out.block([line])
        if self.interrupted:
            out.block(["RESULT: INTERRUPTED"] + [f"  - {failure}" for failure in self.failures])
        elif self.failures:
            out.block(["RESULT: FAILED"] + [f"  - {failure}" for failure in self.failures])
        else:
            out.block(["RESULT: OK: every recovery happened, never two copies of the VM, nothing left behind"])


def _exit_text(code: int | None) -> str:
    """A supervisor's exit after SIGTERM (None: still running after the wait; it is killed)."""
    return "still running: killed" if code is None else f"exit {code}"

"""``--vm-status`` paths and exit codes: not deployed (1), a failed deploy's leftover VM (2,
libvirt's test driver with a real ``virsh``), no vm.conf (1, two hints), the daemon down (1,
the original's lines), ``--from-storage`` reading a real O_DIRECT metadata file, storage
unreadable (1, valid JSON with --json), a daemon answering an error, bad and ignored
arguments, and --watch (real process, SIGINT)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from he_ha.admin.contract import ClusterStatus
from tests.unit.cli_status.conftest import HostFiles, Result, golden
from tests.unit.cli_status.daemon import FixtureDaemon
from tests.unit.cli_status.fixtures import STATUSES, UP, write_metadata

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[3]
FAILED_DEPLOY = (
    "It seems like a previous attempt to deploy hosted-engine failed or it's still in progress. "
    "Please clean it up before trying again\n"
)
ERROR_TAIL = (
    "Cannot connect to the HA daemon, please check the logs.\n"
    "An error occured while retrieving vm status, please make sure the HA daemon is ready and reachable.\n"
    "Unable to connect the HA Broker \n"
)


# --- deployment and vm.conf checks ---------------------------------------------------------------


def test_not_deployed_exits_1(host: HostFiles, run: Run) -> None:
    host.write_conf(vmid="")
    result = run("--vm-status")
    assert (result.code, result.out, result.err) == (1, "You must run deploy first\n", "")


def test_no_hosted_engine_conf_is_not_deployed(host: HostFiles, run: Run) -> None:
    host.hosted_engine_conf.unlink()
    assert run("--vm-status").out == "You must run deploy first\n"


def test_leftover_deploy_vm_exits_2(host: HostFiles, run: Run) -> None:
    host.write_conf(vmid="")
    host.libvirt_node.write_text(
        "<node><domain type='test'><name>HostedEngineLocal</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain></node>"
    )
    result = run("--vm-status")
    assert (result.code, result.out, result.err) == (2, FAILED_DEPLOY, "")
    as_json = run("--vm-status", "--json")
    assert as_json.code == 2
    assert json.loads(as_json.out) == {"exception": FAILED_DEPLOY.strip()}


def test_not_deployed_with_json_prints_json(host: HostFiles, run: Run) -> None:
    host.write_conf(vmid="")
    result = run("--vm-status", "--json")
    assert result.code == 1
    assert json.loads(result.out) == {"exception": "You must run deploy first"}
    assert result.err == "You must run deploy first\n"


def test_unparsable_conf_is_named(host: HostFiles, run: Run) -> None:
    host.hosted_engine_conf.write_text("vmid=x\nthis line has no equals sign\n")
    result = run("--vm-status")
    assert result.code == 1 and result.out == ""
    assert str(host.hosted_engine_conf) in result.err and "line 2" in result.err


def test_no_vm_conf_daemon_down(host: HostFiles, run: Run) -> None:
    host.vm_conf.unlink()
    result = run("--vm-status")
    assert result.code == 1
    assert result.out == (
        "The hosted engine configuration has not been retrieved from shared storage yet,\n"
        "please ensure that the he-ha service is running.\n\n"
    )


def test_no_vm_conf_daemon_up(host: HostFiles, run: Run) -> None:
    host.vm_conf.unlink()
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        result = run("--vm-status")
        as_json = run("--vm-status", "--json")
    assert result.code == 1
    assert result.out == (
        "The hosted engine configuration has not been retrieved from shared storage yet,\n"
        "for more details please check sanlock status.\n\n"
    )
    assert as_json.code == 1
    assert json.loads(as_json.out) == {
        "exception": "The hosted engine configuration has not been retrieved from shared storage yet, "
        "for more details please check sanlock status."
    }


# --- daemon down: the original's failure; the whiteboard from storage only when asked -------------


def test_daemon_down_is_the_originals_failure(host: HostFiles, run: Run) -> None:
    write_metadata(host.metadata)  # readable, but not read without --from-storage
    reason = f"the he-ha daemon does not answer on {host.socket}: [Errno 2] No such file or directory"
    result = run("--vm-status")
    assert (result.code, result.out, result.err) == (1, "", reason + "\n" + ERROR_TAIL)
    as_json = run("--vm-status", "--json")
    assert (as_json.code, as_json.err) == (1, reason + "\n" + ERROR_TAIL)
    assert json.loads(as_json.out) == {"exception": f"{reason}\n{ERROR_TAIL.splitlines()[0]}"}
    assert as_json.out.count("\n") == 1


def test_from_storage_reads_the_whiteboard(host: HostFiles, run: Run) -> None:
    write_metadata(host.metadata)
    result = run("--vm-status", "--from-storage")
    assert result.out == golden("storage_fallback.txt")
    assert result.err == (
        f"he-ha: status read from storage ({host.metadata}), not from the he-ha daemon: "
        "every host shown as not up-to-date\n"
    )
    assert result.code == 0


def test_from_storage_json(host: HostFiles, run: Run) -> None:
    write_metadata(host.metadata)
    with FixtureDaemon(host.socket, STATUSES["normal"]()):  # a daemon answering is not asked
        result = run("--vm-status", "--json", "--from-storage")
    document = json.loads(result.out)
    assert result.code == 0
    assert list(document) == ["1", "2", "global_maintenance"] and document["global_maintenance"] is True
    assert [document[k]["live-data"] for k in ("1", "2")] == [False, False]
    assert document["1"]["engine-status"] == UP  # JSON never masks
    assert document["2"]["crc32"] == "4b94dff8"
    assert "status read from storage" in result.err and result.err.count("\n") == 1


def test_daemon_answering_an_error_is_a_failure(host: HostFiles, run: Run) -> None:
    def broken() -> ClusterStatus:
        raise RuntimeError("status exploded")

    with FixtureDaemon(host.socket, STATUSES["normal"]()) as daemon:
        daemon.controller.status = broken  # type: ignore[method-assign]
        result = run("--vm-status")
    assert (result.code, result.out) == (1, "")
    # The fixture daemon runs in this process: its own error log (with the traceback) shares
    # stderr with the command's, whose lines must still say what happened.
    ours = result.err[result.err.index(f"the he-ha daemon on {host.socket} answered 500: ") :]
    assert "status exploded" in ours.splitlines()[0]
    assert ours.endswith(ERROR_TAIL)


def test_storage_unreadable(host: HostFiles, run: Run) -> None:
    reason = f"whiteboard read of {host.metadata}: open failed: No such file or directory"
    result = run("--vm-status", "--from-storage")
    assert (result.code, result.out, result.err) == (1, "", reason + "\n")
    as_json = run("--vm-status", "--json", "--from-storage")
    assert (as_json.code, as_json.err) == (1, reason + "\n")
    assert json.loads(as_json.out) == {"exception": reason}


def test_storage_path_missing_from_conf(host: HostFiles, run: Run) -> None:
    host.hosted_engine_conf.write_text(host.hosted_engine_conf.read_text().replace("metadata_path=", "#"))
    result = run("--vm-status", "--json", "--from-storage")
    assert result.code == 1
    assert (
        f"{host.hosted_engine_conf}: key 'metadata_image_UUID': required to find the metadata volume"
        in json.loads(result.out)["exception"]
    )


# --- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["--watch=0"], ["--watch=-1"], ["--watch=soon"], ["--watch=nan"], ["--watch="]],
)
def test_bad_watch_values(host: HostFiles, run: Run, args: list[str]) -> None:
    result = run("--vm-status", *args)
    message = f"--vm-status: --watch takes a number of seconds above 0, e.g. --watch=5; got {args[0][8:]!r}"
    assert (result.code, result.out, result.err) == (1, "", message + "\n")


def test_other_arguments_are_ignored_as_by_the_original(host: HostFiles, run: Run) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        result = run("--vm-status", "--json", "--bogus", "extra")
    assert result.code == 0 and json.loads(result.out)["1"]["engine-status"] == UP
    assert result.err == (
        "--vm-status: ignored arguments --bogus extra (the original hosted-engine ignores them too)\n"
    )


def test_help(run: Run) -> None:
    result = run("--vm-status", "--help")
    assert result.code == 0
    usage = "--vm-status [--json] [--watch[=<seconds>]] [--from-storage]"
    assert result.out.startswith(f"Usage: hosted-engine {usage}\n    ")
    assert usage in run("--help").out
    assert "--from-storage" in result.out and "exits 1" in result.out


# --- --watch (a real process: Ctrl-C is a real SIGINT) ---------------------------------------------


def watch(host: HostFiles, *args: str, until: Callable[[str], bool]) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.hosted_engine", "--vm-status", *args],
        cwd=REPO,
        env={**os.environ, **host.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while not until(seen.decode()) and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                assert chunk, f"watch ended early: {process.stderr.read().decode() if process.stderr else ''}"
                seen += chunk
        assert until(seen.decode()), f"no refreshes within 30 s: {seen!r}"
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, seen.decode()


def test_watch_redraws_until_ctrl_c(host: HostFiles) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        code, out = watch(host, "--watch=0.2", until=lambda text: text.count("--== Host host1") >= 3)
    assert code == 0
    screens = out.split("\x1b[H\x1b[2J")[1:]
    assert len(screens) >= 3
    first = screens[0].split("\n", 1)
    assert first[0].startswith("Every 0.2 s: hosted-engine --vm-status")
    assert first[1] == golden("normal.txt")


def test_watch_json_prints_one_line_per_refresh(host: HostFiles) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        code, out = watch(host, "--json", "--watch=0.2", until=lambda text: text.count("\n") >= 3)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) >= 3 and all(json.loads(line)["1"]["engine-status"] == UP for line in lines)
    assert "\x1b" not in out

"""The broker socket of REAL ``he-ha run`` daemons (he_ha/devcluster: two hosts, each its own
sanlock daemon, in-process test drivers, the health page over HTTP), called by the
original-style client (tests/support/broker_client.py) as VDSM and the original
``hosted-engine`` call it. Host 1 reaches the metadata volume through a FUSE view that can be
made to hang (tests/support/stallfs.py); host 2 uses the file itself.

One cluster serves the module; the tests run in file order, the storage stall last."""

from __future__ import annotations

import base64
import contextlib
import grp
import pwd
import shutil
import statistics
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from he_ha.devcluster.cluster import WAIT, Cluster, Host, health_page
from he_ha.whiteboard import SLOT_BYTES, GlobalBlock, decode_global_block, decode_host_slot
from tests.integration.repair.test_reset_from_the_daemon import refused_while_held
from tests.support.broker_client import broker_proxy, call_as, global_block, slots
from tests.support.stallfs import StallFS

pytestmark = pytest.mark.root

VDSM_TIMEOUT = 5.0  # what VDSM gives a stats call; generous for an answer from memory


@dataclass(frozen=True)
class Setup:
    cluster: Cluster
    stall: StallFS  # host 1's view of the metadata volume


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    missing = [tool for tool in ("sanlock", "fusermount") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)} (Debian: sanlock, fuse3)")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(health_page())
        started = Cluster(2, libvirtd=False, health_url=url)
        mount = started.base / "h1-fuse"
        started.hosts[0].metadata = mount / "metadata"  # written into host 1's configuration on entry
        stack.enter_context(started)
        stall = stack.enter_context(StallFS(mount, started.metadata_file))
        stack.callback(_stop_supervisors, started, stall)  # before the unmount: none stays blocked in it
        for host in started.hosts:
            host.start_supervisor()
        yield Setup(started, stall)


def _stop_supervisors(cluster: Cluster, stall: StallFS) -> None:
    stall.resume()
    for host in cluster.hosts:
        for supervisor in host.supervisors:
            supervisor.kill()


def proxy(host: Host) -> xmlrpc.client.ServerProxy:
    return broker_proxy(host.broker_socket, timeout=VDSM_TIMEOUT)


def wait_until(what: str, check: Callable[[], Any], hosts: list[Host], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            logs = "\n".join(h.supervisors[-1].log_tail(15) for h in hosts if h.supervisors)
            raise AssertionError(f"not within {timeout} s: {what}\n{logs}")
        time.sleep(0.1)
    return value


def stats_of(host: Host) -> dict[str, xmlrpc.client.Binary]:
    """get_stats through the host's broker socket: slot number (text) -> blob."""
    answer = proxy(host).get_stats()
    assert isinstance(answer, dict), answer
    return answer


def answers(host: Host) -> dict[str, xmlrpc.client.Binary] | None:
    """get_stats, or None while the daemon is not serving or has not read the board yet."""
    try:
        result = stats_of(host)
    except (OSError, xmlrpc.client.Fault):
        return None
    return result


def fault(call: Callable[[], Any]) -> xmlrpc.client.Fault:
    try:
        answer = call()
    except xmlrpc.client.Fault as caught:
        return caught
    raise AssertionError(f"answered {answer!r}, not a fault")


def global_maintenance(host: Host) -> bool | None:
    value: bool | None = host.admin.get("/v1/status")["global_maintenance"]
    return value


def describe(answer: dict[str, xmlrpc.client.Binary]) -> str:
    """A get_stats answer as it came (key, blob size, the blob's base64 start) and decoded."""
    lines = []
    for key, blob in sorted(answer.items(), key=lambda item: int(item[0])):
        data = blob.data
        head = f'  "{key}": {len(data)} bytes, base64 {base64.b64encode(data)[:24].decode()}...'
        if key == "0":
            lines += [head, f"      -> {decode_global_block(data)}"]
        else:
            slot = decode_host_slot(int(key), data)
            assert slot is not None
            header = data[:512].rstrip(b"\0").decode()
            extra = "; ".join(slot.extra.splitlines())
            lines += [head, f"      header: {header}", f"      extra:  {extra}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def hosts(setup: Setup) -> list[Host]:
    """Both hosts, once each one's get_stats shows both slots."""
    cluster = setup.cluster
    for host in cluster.hosts:

        def serves_both(h: Host = host) -> bool:
            return {"1", "2"} <= set(answers(h) or {})

        wait_until(f"{host.name} serves both slots", serves_both, cluster.hosts)
    return cluster.hosts


def test_get_stats_blobs_are_the_whiteboard_slots(hosts: list[Host]) -> None:
    for host in hosts:
        answer = stats_of(host)
        assert "0" not in answer  # nobody wrote the global block yet: an empty slot is no slot
        for key, blob in answer.items():
            assert len(blob.data) == SLOT_BYTES
            slot = decode_host_slot(int(key), blob.data)  # as the original client parses them
            assert slot is not None and slot.hostname == f"host{key}"


def test_every_host_is_alive_in_each_daemons_view(hosts: list[Host]) -> None:
    for host in hosts:

        def both_alive(h: Host = host) -> bool:
            return proxy(h).is_host_alive() == [1, 2]

        wait_until(f"{host.name} holds both hosts alive", both_alive, hosts)


def test_global_maintenance_through_one_broker_socket_reaches_every_host(hosts: list[Host]) -> None:
    """As VDSM's setHaMaintenanceMode('global') does it (set_global_md_flag: read, then
    put_stats(0, block)); "ok" comes once the block is on storage and read back, so the same
    host's next get_stats already shows it."""
    host1, host2 = hosts
    for on in (True, False):
        assert proxy(host2).put_stats(0, xmlrpc.client.Binary(global_block(on))) == "ok"
        assert decode_global_block(slots(stats_of(host2))[0]) == GlobalBlock(maintenance=on)

        def every_host_shows(on: bool = on) -> bool:
            return all(global_maintenance(h) is on for h in hosts)

        wait_until(f"both hosts show global maintenance {on}", every_host_shows, hosts)
        with open(host1.metadata, "rb") as volume:  # host 1's view of the volume (not stalled yet)
            assert decode_global_block(volume.read(SLOT_BYTES)) == GlobalBlock(maintenance=on)
        if on:
            answer = stats_of(host1)
            print(
                f"\none get_stats answer from {host1.name}'s broker socket {host1.broker_socket}:\n{describe(answer)}"
            )


def test_a_write_into_a_host_slot_is_refused(hosts: list[Host]) -> None:
    """Its own slot as well as a peer's: a host's slot is written by its daemon alone."""
    host1, _ = hosts
    for host_id in (1, 2):
        stored = slots(stats_of(host1))[host_id]

        def write_slot(host_id: int = host_id, stored: bytes = stored) -> Any:
            return proxy(host1).put_stats(host_id, xmlrpc.client.Binary(stored))

        refused = fault(write_slot)
        assert refused.faultString == (
            f"put_stats: refused: the slot of host {host_id} is written only by the HA "
            "daemon of that host; only the global block (host id 0) is accepted here"
        )


def test_an_unprivileged_caller_reads_but_cannot_change(hosts: list[Host]) -> None:
    host1, _ = hosts
    # The global block exists once someone wrote it: write it here (as root), not rely on the
    # order of this module's tests.
    assert proxy(host1).put_stats(0, xmlrpc.client.Binary(global_block(False))) == "ok"
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    read = call_as(host1.broker_socket, nobody, nogroup, "get_stats")
    assert {"0", "1", "2"} <= set(read["result"])
    assert decode_global_block(base64.b64decode(read["result"]["0"])) == GlobalBlock(maintenance=False)
    refused = call_as(host1.broker_socket, nobody, nogroup, "put_stats", 0, global_block(True))
    code, text = refused["fault"]
    assert code == xmlrpc.client.APPLICATION_ERROR
    assert text.startswith(f"permission denied: put_stats: uid {nobody} (gid {nogroup}, pid ")
    assert global_maintenance(host1) is False


def test_reset_lockspace_is_refused_while_the_daemons_run(hosts: list[Host]) -> None:
    host1, _ = hosts
    refused = fault(lambda: proxy(host1).reset_lockspace())
    assert refused.faultString.splitlines() == refused_while_held(1)


def test_the_original_agent_is_told_he_ha_replaces_it(hosts: list[Host]) -> None:
    refused = fault(lambda: proxy(hosts[0]).lock_host_id(1))
    assert refused.faultString.startswith("lock_host_id: he-ha replaces ovirt-ha-agent and ovirt-ha-broker")


def test_reads_answer_while_the_metadata_storage_hangs(setup: Setup, hosts: list[Host]) -> None:
    host1, _ = hosts
    stall = setup.stall
    before = slots(stats_of(host1))
    stall.stall()
    try:
        stall.wait_blocked(1, timeout=30)  # host 1's next whiteboard read is stuck in the kernel
        latencies = []
        for _ in range(20):
            for call in (lambda: proxy(host1).get_stats(), lambda: proxy(host1).is_host_alive()):
                started = time.monotonic()
                answer = call()  # VDSM's 5 s socket timeout would raise: it answered
                latencies.append(time.monotonic() - started)
                assert answer
            time.sleep(0.05)
        assert set(slots(stats_of(host1))) == set(before)  # the latest read, served from memory
        assert stall.blocked() >= 1  # the storage really was hanging all along
        print(
            f"\nget_stats/is_host_alive on {host1.name} while its metadata reads hung: {len(latencies)} calls, "
            f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
        # A write cannot reach storage: a fault within the daemon's storage deadline, not a hang
        # (maintenance=0 as it is: the blocked write lands harmlessly once storage is back).
        refused = fault(
            lambda: broker_proxy(host1.broker_socket, timeout=60).put_stats(
                0, xmlrpc.client.Binary(global_block(False))
            )
        )
        assert refused.faultString.startswith("put_stats: global maintenance off: not written and read back: ")
    finally:
        stall.resume()

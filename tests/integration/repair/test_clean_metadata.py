"""``hosted-engine --clean-metadata`` against real sanlock daemons and a real metadata file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.whiteboard import SLOT_BYTES, encode_host_slot
from he_ha.whiteboard.codec import encode_header, header_crc
from tests.integration.repair.conftest import (
    Cli,
    Daemons,
    Storage,
    fake_admin_socket,
    host_slot,
    join,
    joined,
    publish,
    publishing,
    write_slot,
)


def slot_bytes(storage: Storage, index: int) -> bytes:
    return storage.metadata.read_bytes()[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]


def test_refused_while_the_peer_renews_its_lease_and_cleaned_after_it_left(
    cli: Cli, storage: Storage, daemons: Daemons
) -> None:
    cli.deploy(storage)
    publish(storage.metadata, host_slot(2, 5000, "host-b.example.com", stopped=True))  # claims to be stopped
    with joined(daemons.peer, storage.layout, 2):  # then the peer leaves the lockspace cleanly
        refused = cli("--clean-metadata", "--host-id=2")
        assert refused.code == 1
        assert "host 2 (host-b.example.com) renewed its delta lease in lockspace 'hosted-engine'" in refused.err
        assert refused.err.rstrip().endswith("Cannot clean unclean metadata block. Consider --force-cleanup.")
        assert slot_bytes(storage, 2) == encode_host_slot(host_slot(2, 5000, "host-b.example.com", stopped=True))
    done = cli("--clean-metadata", "--host-id=2")
    assert done.code == 0, done.err
    assert "Cleaning the metadata block of host 2 (hostname host-b.example.com, last timestamp 5000)!" in done.out
    assert slot_bytes(storage, 2) == bytes(SLOT_BYTES)
    again = cli("--clean-metadata", "--host-id=2")
    assert (again.code, again.out.splitlines()[-1]) == (0, "Metadata for host 2 is already empty: nothing to clean.")


@pytest.mark.parametrize(
    "args",
    [
        ["--force-clean", "--host-id", "3"],  # what the original agent's own refusal suggests
        ["--force", "--host=3"],
        ["--host-id", "3", "--force-cleanup"],
        ["--host=3", "--force-clea"],
    ],
)
def test_the_original_agents_option_forms(cli: Cli, storage: Storage, args: list[str]) -> None:
    """optparse's forms (unique prefixes, ``--opt value``): the original took them; a live
    slot needs the force, so every form must have been read as --force-cleanup --host-id=3."""
    cli.deploy(storage)
    with publishing(storage.metadata, 3):
        forced = cli("--clean-metadata", *args, "--dry")
    assert (forced.code, forced.err) == (0, ""), forced.err
    assert "--force-cleanup overrides: the metadata slot of host 3" in forced.out
    assert "Would clear the metadata slot of host 3 (hostname host3.example.com, last timestamp" in forced.out
    cleaned = cli("--clean-metadata", "--host", "3", "--for")  # --for: --force-cleanup
    assert cleaned.code == 0, cleaned.err
    assert slot_bytes(storage, 3) == bytes(SLOT_BYTES)


def test_refused_for_a_fresh_slot_without_any_lease(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    with publishing(storage.metadata, 3):
        refused = cli("--clean-metadata", "--host-id=3")
        assert refused.code == 1
        assert "the metadata slot of host 3 (host3.example.com) changed during the" in refused.err
        assert "(host timestamp timestamp" not in refused.err
        forced = cli("--clean-metadata", "--host-id=3", "--force-cleanup", "--dry-run")
    assert forced.code == 0
    assert "--force-cleanup overrides: the metadata slot of host 3" in forced.out
    assert "Would clear the metadata slot of host 3 (hostname host3.example.com, last timestamp" in forced.out


def test_dry_run_changes_no_byte(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    publish(storage.metadata, host_slot(4, 777, "gone.example.com"))
    before = storage.snapshot()
    result = cli("--clean-metadata", "--host-id=4", "--dry-run")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-2:] == [
        "Would clear the metadata slot of host 4 (hostname gone.example.com, last timestamp 777)",
        "Dry run: nothing was changed.",
    ]
    assert storage.snapshot() == before


@pytest.mark.slow
def test_a_crashed_host_holding_its_id_is_not_alive(cli: Cli, storage: Storage, tmp_path: Path) -> None:
    """A host's daemon is killed: its delta lease stays held but stops renewing."""
    with SanlockDaemon(tmp_path / "crash", "host-c") as crashed:
        join(crashed, storage.layout, 5)
        crashed.kill()
    publish(storage.metadata, host_slot(5, 42, "host-c.example.com"))
    cli.deploy(storage)
    result = cli("--clean-metadata", "--host-id=5")
    assert result.code == 0, result.err
    assert "Note: host 5 (host-c.example.com) holds its delta lease but did not renew it" in result.out
    assert slot_bytes(storage, 5) == bytes(SLOT_BYTES)


def test_unreadable_clears_only_the_slots_that_do_not_decode(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    publish(storage.metadata, host_slot(1, 10))
    publish(storage.metadata, host_slot(3, 30))
    corrupt = bytearray(encode_host_slot(host_slot(4, 40)))
    corrupt[4] ^= 0x01  # the host timestamp changes under the crc (4 -> 5)
    fields = encode_header(host_slot(5, 50)).decode().split("|")
    fields[0] = "2"  # a newer agent's parse version, with a crc that matches
    fields[9] = header_crc(fields)
    too_new = "|".join(fields).encode().ljust(SLOT_BYTES, b"\0")
    leftover = b"\0" + b"x" * (SLOT_BYTES - 1)  # bytes behind a leading NUL (B28)
    write_slot(storage.metadata, 4, bytes(corrupt))
    write_slot(storage.metadata, 5, too_new)
    write_slot(storage.metadata, 7, leftover)
    write_slot(storage.metadata, 0, b"maintenance=maybe".ljust(SLOT_BYTES, b"\0"))
    healthy = {i: slot_bytes(storage, i) for i in (1, 3)}
    dry = cli("--clean-metadata", "--unreadable", "--dry-run")
    assert dry.code == 0, dry.err
    wanted = [line for line in dry.out.splitlines() if line.startswith("Would clear")]
    assert [line.split(" (")[0] for line in wanted] == [
        "Would clear the global block, slot 0",
        "Would clear the metadata slot of host 4",
        "Would clear the metadata slot of host 5",
        "Would clear the metadata slot of host 7",
    ]
    assert "maintenance value 'maybe' is not a boolean" in wanted[0]
    assert "crc32 field" in wanted[1] and "newer than ours" in wanted[2] and "leftover data" in wanted[3]
    done = cli("--clean-metadata", "--unreadable")
    assert done.code == 0, done.err
    assert [i for i in (0, 4, 5, 7) if slot_bytes(storage, i) != bytes(SLOT_BYTES)] == []
    assert {i: slot_bytes(storage, i) for i in (1, 3)} == healthy
    nothing = cli("--clean-metadata", "--unreadable", "--dry-run")
    assert (nothing.code, nothing.out.splitlines()[-1]) == (0, "No unreadable metadata slot: nothing to clean.")


def test_unreadable_refuses_a_slot_someone_keeps_writing(cli: Cli, storage: Storage) -> None:
    """A newer agent we cannot decode is still alive: its bytes change."""
    cli.deploy(storage)
    write_slot(storage.metadata, 6, b"\xff" * SLOT_BYTES)
    with publishing(storage.metadata, 2):
        stop = threading.Event()

        def newer_agent() -> None:
            counter = 0
            while not stop.wait(0.3):
                counter += 1
                write_slot(storage.metadata, 8, f"9|1|{counter}|8|".encode().ljust(SLOT_BYTES, b"\0"))

        writer = threading.Thread(target=newer_agent, daemon=True)
        writer.start()
        try:
            refused = cli("--clean-metadata", "--unreadable")
        finally:
            stop.set()
            writer.join(5)
    assert refused.code == 1
    assert "the metadata slot of host 8 changed during the" in refused.err
    assert "content changed although it does not decode" in refused.err
    assert slot_bytes(storage, 6) == b"\xff" * SLOT_BYTES  # all or nothing


def test_own_slot_is_refused_while_the_local_daemon_answers(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    publish(storage.metadata, host_slot(1, 11, "host-a.example.com", stopped=True))
    with fake_admin_socket(cli.admin_socket):
        refused = cli("--clean-metadata")
        assert refused.code == 1
        assert (
            f"host 1 (host-a.example.com) is this host and the local he-ha daemon answers on {cli.admin_socket}"
        ) in refused.err
    done = cli("--clean-metadata")
    assert done.code == 0, done.err
    assert slot_bytes(storage, 1) == bytes(SLOT_BYTES)


def test_as_a_real_process(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    publish(storage.metadata, host_slot(3, 33))
    done = subprocess.run(
        [sys.executable, "-m", "cli.hosted_engine", "--clean-metadata", "--host-id=3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Cleaning the metadata block of host 3" in done.stdout
    assert done.stderr == ""
    assert slot_bytes(storage, 3) == bytes(SLOT_BYTES)

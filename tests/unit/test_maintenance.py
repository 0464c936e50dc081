"""Maintenance modes and the ha.conf local-flag update, on real files and real processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path

import pytest

from he_ha.admin.contract import MaintenanceMode
from he_ha.config import ConfigError, LocalMaintenance, load_ha_conf
from he_ha.maintenance import (
    MaintenanceFileError,
    MaintenancePlan,
    apply_local_flags,
    edit_flat_text,
    plan,
    read_local_flags,
)

SHIPPED = "local_maintenance=False\nlocal_maintenance_manual=False\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (MaintenanceMode.LOCAL, MaintenancePlan(global_flag=False, local=True, manual=True)),
        (MaintenanceMode.GLOBAL, MaintenancePlan(global_flag=True, local=False, manual=False)),
        (MaintenanceMode.NONE, MaintenancePlan(global_flag=False, local=False, manual=False)),
    ],
)
def test_plan_follows_the_original_rules(mode: MaintenanceMode, expected: MaintenancePlan) -> None:
    assert plan(mode) == expected


def test_modes_exclude_each_other() -> None:
    for mode in MaintenanceMode:
        chosen = plan(mode)
        assert not (chosen.global_flag and (chosen.local or chosen.manual))


# --- the text edit ----------------------------------------------------------------------------


def test_edit_keeps_comments_blank_lines_unknown_keys_and_order() -> None:
    before = "# he-ha\n\nlocal_maintenance=False\nsomething_else = 42\n  # indented\nlocal_maintenance_manual=False\n"
    after = "# he-ha\n\nlocal_maintenance=True\nsomething_else = 42\n  # indented\nlocal_maintenance_manual=True\n"
    assert edit_flat_text(before, {"local_maintenance": "True", "local_maintenance_manual": "True"}) == after


def test_edit_appends_missing_keys_after_a_last_line_without_newline() -> None:
    assert edit_flat_text("a=1", {"b": "2"}) == "a=1\nb=2\n"
    assert edit_flat_text("", {"b": "2"}) == "b=2\n"


def test_edit_sets_every_occurrence_and_keeps_line_endings() -> None:
    text = "k=1\r\nk = 2\r\n"
    assert edit_flat_text(text, {"k": "3"}) == "k=3\r\nk=3\r\n"


def test_edit_does_not_touch_a_commented_out_key() -> None:
    assert edit_flat_text("#local_maintenance=True\n", {"local_maintenance": "False"}) == (
        "#local_maintenance=True\nlocal_maintenance=False\n"
    )


# --- apply and read ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MaintenanceMode))
async def test_round_trip_with_the_config_loader(tmp_path: Path, mode: MaintenanceMode) -> None:
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_text(SHIPPED)
    chosen = plan(mode)
    await apply_local_flags(ha_conf, local=chosen.local, manual=chosen.manual, timeout=5)
    expected = LocalMaintenance(local_maintenance=chosen.local, local_maintenance_manual=chosen.manual)
    assert load_ha_conf(ha_conf) == expected
    assert await read_local_flags(ha_conf, timeout=5) == expected


async def test_missing_file_is_created(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    await apply_local_flags(ha_conf, local=True, manual=True, timeout=5)
    assert ha_conf.read_text() == "local_maintenance=True\nlocal_maintenance_manual=True\n"
    assert load_ha_conf(ha_conf).active


async def test_missing_file_reads_as_no_maintenance(tmp_path: Path) -> None:
    assert await read_local_flags(tmp_path / "ha.conf", timeout=5) == LocalMaintenance()


async def test_comments_and_unknown_keys_preserved_and_file_shrinks_cleanly(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    original = "# set by VDSM\nlocal_maintenance=True\nvendor_key=x\nlocal_maintenance_manual=True\n"
    ha_conf.write_text(original)
    inode = ha_conf.stat().st_ino
    await apply_local_flags(ha_conf, local=False, manual=False, timeout=5)
    assert ha_conf.read_text() == original.replace("True", "False")
    assert ha_conf.stat().st_ino == inode  # rewritten in place: the inode other writers lock
    await apply_local_flags(ha_conf, local=True, manual=True, timeout=5)
    assert ha_conf.read_text() == original  # shorter again: no leftover padding


async def test_malformed_file_is_refused_naming_file_and_line_and_left_untouched(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    original = "local_maintenance=False\n# fine\nthis line has no equals sign\nlocal_maintenance_manual=False\n"
    ha_conf.write_text(original)
    with pytest.raises(ConfigError) as caught:
        await apply_local_flags(ha_conf, local=True, manual=True, timeout=5)
    assert str(ha_conf) in str(caught.value)
    assert "line 3" in str(caught.value)
    assert ha_conf.read_text() == original


async def test_not_utf8_is_refused_and_left_untouched(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_bytes(b"local_maintenance=False\n\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        await apply_local_flags(ha_conf, local=True, manual=True, timeout=5)
    assert ha_conf.read_bytes() == b"local_maintenance=False\n\xff\n"


async def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MaintenanceFileError, match="cannot open for update"):
        await apply_local_flags(tmp_path / "missing-dir" / "ha.conf", local=True, manual=True, timeout=5)


# --- locking against other processes ------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until told to let go
    if len(sys.argv) > 2:  # the original's writer: rewrite the whole file, then unlock
        os.lseek(fd, 0, 0)
        os.write(fd, sys.argv[2].encode())
        os.ftruncate(fd, len(sys.argv[2]))
    """
)


async def hold_lock(path: Path, *rewrite: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD, str(path), *rewrite, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 10) == b"locked\n"
    return process


async def release(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.write(b"go\n")
    await process.stdin.drain()
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_waits_for_another_writer_and_rereads_after_it(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_text(SHIPPED)
    # Another process holds the lock and, on release, rewrites the file with a new key:
    # our update must be based on ITS result, not on what was there before we waited.
    holder = await hold_lock(ha_conf, SHIPPED + "written_by_other=1\n")
    try:
        update = asyncio.create_task(apply_local_flags(ha_conf, local=True, manual=True, timeout=10))
        await asyncio.sleep(0.2)
        assert not update.done()  # blocked behind the lock...
        assert ha_conf.read_text() == SHIPPED  # ...and has written nothing
        await release(holder)
        await asyncio.wait_for(update, 10)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
    assert ha_conf.read_text() == "local_maintenance=True\nlocal_maintenance_manual=True\nwritten_by_other=1\n"


async def test_a_stuck_writer_makes_it_fail_at_the_deadline_without_blocking_the_loop(tmp_path: Path) -> None:
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_text(SHIPPED)
    holder = await hold_lock(ha_conf)
    try:
        lags: list[float] = []

        async def probe() -> None:
            while True:
                asked = time.monotonic()
                await asyncio.sleep(0.01)
                lags.append(time.monotonic() - asked - 0.01)

        prober = asyncio.create_task(probe())
        began = time.monotonic()
        with pytest.raises(MaintenanceFileError, match="another writer holds the lock"):
            await apply_local_flags(ha_conf, local=True, manual=True, timeout=0.5)
        waited = time.monotonic() - began
        prober.cancel()
        assert 0.5 <= waited < 5
        assert max(lags) < 0.1  # generous: the event loop kept running while we waited
        with pytest.raises(MaintenanceFileError, match="another writer holds the lock"):
            await read_local_flags(ha_conf, timeout=0.2)
    finally:
        await release(holder)
    assert ha_conf.read_text() == SHIPPED


WRITER = textwrap.dedent(
    """
    import asyncio, fcntl, os, sys, time
    from pathlib import Path
    from he_ha.maintenance import apply_local_flags

    path, role, rounds, stop = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])

    def original_increment():
        # The original's writer (and VDSM's): open r/w, LOCK_EX, re-read, rewrite, truncate.
        with open(path, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            lines = [l for l in handle.read().splitlines() if l]
            values = dict(l.split("=", 1) for l in lines if not l.startswith("#"))
            values["counter"] = str(int(values.get("counter", "0")) + 1)
            handle.seek(0)
            handle.write("".join(f"{k}={v}\\n" for k, v in values.items()))
            handle.truncate()

    async def ours():
        for n in range(rounds):
            await apply_local_flags(path, local=n % 2 == 0, manual=n % 3 == 0, timeout=30)

    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other writer
    if role == "original":
        done = 0
        while not stop.exists():  # keep writing for as long as ours does
            original_increment()
            done += 1
            time.sleep(0.001)
        print(done, flush=True)
    else:
        asyncio.run(ours())
    """
)


async def test_concurrent_writers_in_two_processes_are_serialised(tmp_path: Path) -> None:
    """Our writer and an original-style writer hammer the same file at once. Without the
    shared flock, read-modify-write races lose counter increments or our flags."""
    ha_conf = tmp_path / "ha.conf"
    ha_conf.write_text("# keep me\n" + SHIPPED + "counter=0\n")
    stop = tmp_path / "stop"
    rounds = 100
    root = Path(__file__).resolve().parents[2]
    original, ours = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            str(ha_conf),
            role,
            str(rounds),
            str(stop),
            cwd=root,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for role in ("original", "ours")
    ]
    try:
        for process in (original, ours):
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        for process in (original, ours):
            assert process.stdin is not None
            process.stdin.write(b"go\n")
        assert await asyncio.wait_for(ours.wait(), 120) == 0
        stop.touch()
        assert original.stdout is not None
        increments = int(await asyncio.wait_for(original.stdout.readline(), 30))
        assert await asyncio.wait_for(original.wait(), 30) == 0
    finally:
        for process in (original, ours):
            if process.returncode is None:
                process.kill()
                await process.wait()
    values = dict(line.split("=", 1) for line in ha_conf.read_text().splitlines() if "=" in line)
    assert increments > 0
    assert values["counter"] == str(increments)  # not one increment lost
    last = rounds - 1
    assert load_ha_conf(ha_conf) == LocalMaintenance(
        local_maintenance=last % 2 == 0, local_maintenance_manual=last % 3 == 0
    )

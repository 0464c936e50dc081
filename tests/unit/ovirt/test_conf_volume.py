"""The configuration volume on real files with O_DIRECT: reads of a truncated (file domain)
and a full-size volume, updates that never truncate, a concurrent writer detected, nothing
written when anything fails. The cross-host lock here is a threading.Lock (the sanlock lock
is tested with real daemons in tests/integration/conf_volume)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from he_ha.ovirt.conf_archive import ARCHIVE_SIZE, build_archive, edit_shared_hosted_engine_conf
from he_ha.ovirt.conf_volume import (
    CHANGED_BY_SOMEBODY_ELSE,
    ConfLockMissing,
    ConfVolumeChanged,
    ConfVolumeError,
    create_conf_volume,
    find_conf_lock,
    read_archive_bytes,
    read_conf_volume,
    update_conf_volume,
)
from tests.unit.ovirt.samples import MEMBERS_TEXT

GIB = 1024**3


def volume(path: Path, size: int, members: dict[str, str] | None = MEMBERS_TEXT) -> Path:
    """A sparse volume of ``size`` bytes with the archive at its start (None: blank)."""
    with open(path, "wb") as file:
        file.truncate(size)
        if members is not None:
            file.write(build_archive(members))
    return path


@pytest.fixture(params=[ARCHIVE_SIZE, GIB], ids=["truncated-by-dd", "1GiB"])
def conf_volume(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return volume(tmp_path / "conf.img", request.param)


def set_key(key: str, value: str):  # the edit callable
    return lambda text: edit_shared_hosted_engine_conf(text, key, value)


def test_read(conf_volume: Path) -> None:
    assert read_conf_volume(conf_volume) == MEMBERS_TEXT


def test_update_rewrites_the_member_and_keeps_the_volume_size(conf_volume: Path) -> None:
    size = conf_volume.stat().st_size
    lock = threading.Lock()
    members = update_conf_volume(conf_volume, "hosted-engine.conf", set_key("network_test", "ping"), lock)
    assert "network_test=ping\n" in members["hosted-engine.conf"]
    assert read_conf_volume(conf_volume) == members
    assert {name: text for name, text in members.items() if name != "hosted-engine.conf"} == {
        name: text for name, text in MEMBERS_TEXT.items() if name != "hosted-engine.conf"
    }
    assert conf_volume.stat().st_size == size  # never truncated
    assert not lock.locked()


def test_the_tail_of_a_block_volume_is_left_alone(tmp_path: Path) -> None:
    path = volume(tmp_path / "lv.img", 1024 * 1024)
    with open(path, "r+b") as file:
        file.seek(ARCHIVE_SIZE)
        file.write(b"stale" * 1000)
    update_conf_volume(path, "broker.conf", lambda text: text + "# edited\n", threading.Lock())
    data = path.read_bytes()
    assert data[ARCHIVE_SIZE : ARCHIVE_SIZE + 5000] == b"stale" * 1000
    assert read_conf_volume(path)["broker.conf"].endswith("# edited\n")


def test_update_runs_under_the_lock(conf_volume: Path) -> None:
    lock = threading.Lock()
    seen = []

    def edit(text: str) -> str:
        seen.append(lock.locked())
        return text + "x=1"

    update_conf_volume(conf_volume, "hosted-engine.conf", edit, lock)
    assert seen == [True]


def test_an_unchanged_value_writes_nothing(conf_volume: Path) -> None:
    before = conf_volume.stat().st_mtime_ns
    time.sleep(0.01)
    update_conf_volume(conf_volume, "hosted-engine.conf", set_key("fqdn", "engine.example.com"), threading.Lock())
    assert conf_volume.stat().st_mtime_ns == before


def test_a_writer_between_read_and_write_is_detected(conf_volume: Path) -> None:
    """Another host's original agent (no lock) rewrites the archive while we edit: refused,
    its archive stays, ours is not written."""
    theirs = build_archive({**MEMBERS_TEXT, "broker.conf": "[email]\nsmtp-server = theirs\n"})

    def edit_while_somebody_writes(text: str) -> str:
        with open(conf_volume, "r+b") as file:  # a plain write, as the original's dd does
            file.write(theirs)
        return edit_shared_hosted_engine_conf(text, "fqdn", "ours.example.com")

    with pytest.raises(ConfVolumeChanged) as caught:
        update_conf_volume(conf_volume, "hosted-engine.conf", edit_while_somebody_writes, threading.Lock())
    assert str(caught.value) == CHANGED_BY_SOMEBODY_ELSE
    assert read_archive_bytes(conf_volume) == theirs


def test_a_refused_edit_writes_nothing(conf_volume: Path) -> None:
    before = read_archive_bytes(conf_volume)

    def refuse(text: str) -> str:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        update_conf_volume(conf_volume, "hosted-engine.conf", refuse, threading.Lock())
    assert read_archive_bytes(conf_volume) == before


def test_too_large_for_the_archive_writes_nothing(conf_volume: Path) -> None:
    before = read_archive_bytes(conf_volume)
    with pytest.raises(ConfVolumeError, match=r"the members do not fit.*the configuration volume is unchanged"):
        update_conf_volume(conf_volume, "vm.conf", lambda text: text + "#" * 20000, threading.Lock())
    assert read_archive_bytes(conf_volume) == before


def test_past_the_deadline_nothing_is_written(conf_volume: Path) -> None:
    before = read_archive_bytes(conf_volume)
    with pytest.raises(ConfVolumeError, match="ran out of time before writing; the configuration volume is unchanged"):
        update_conf_volume(
            conf_volume, "hosted-engine.conf", set_key("fqdn", "x"), threading.Lock(), deadline=time.monotonic() - 1
        )
    assert read_archive_bytes(conf_volume) == before


def test_unknown_member() -> None:
    with pytest.raises(ValueError, match=re.escape("'ha.conf' is not a member")):
        update_conf_volume(Path("/nonexistent"), "ha.conf", str, threading.Lock())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: bytes(len(data)), "no archive: the first 512 bytes are all zero"),
        (lambda data: data[:3000], "cut short inside the tar header at offset 2560"),  # a half-written volume
        (lambda data: data[:3300], "cut short inside member 'hosted-engine.conf'"),
        (lambda data: b"\x17" * 512 + data[512:], "not a tar archive"),
    ],
    ids=["blank", "torn-header", "torn-member", "garbage"],
)
def test_a_broken_volume_is_named_and_left_unchanged(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "conf.img"
    path.write_bytes(damage(build_archive(MEMBERS_TEXT)))
    before = path.read_bytes()
    with pytest.raises(ConfVolumeError, match=f"configuration volume {path}: .*{message}"):
        read_conf_volume(path)
    with pytest.raises(ConfVolumeError, match=message):
        update_conf_volume(path, "hosted-engine.conf", set_key("fqdn", "x"), threading.Lock())
    assert path.read_bytes() == before


def test_a_missing_volume(tmp_path: Path) -> None:
    with pytest.raises(ConfVolumeError, match=f"configuration volume {tmp_path}/gone: .*No such file"):
        read_conf_volume(tmp_path / "gone")


def test_create_on_a_blank_volume_and_never_over_an_archive(tmp_path: Path) -> None:
    path = volume(tmp_path / "conf.img", GIB, None)
    create_conf_volume(path, MEMBERS_TEXT)
    assert read_conf_volume(path) == MEMBERS_TEXT
    assert path.stat().st_size == GIB
    other = {**MEMBERS_TEXT, "version": "0.1.0"}
    with pytest.raises(ConfVolumeError, match="not blank; refusing to replace them"):
        create_conf_volume(path, other)
    assert read_conf_volume(path) == MEMBERS_TEXT
    create_conf_volume(path, other, overwrite=True)
    assert read_conf_volume(path) == other


def test_the_lock_on_a_lockspace_volume_without_one(tmp_path: Path) -> None:
    blank = volume(tmp_path / "lockspace", 3 * 1024 * 1024, None)
    with pytest.raises(
        ConfLockMissing, match="holds no sanlock lockspace 'hosted-engine': run 'hosted-engine --init-storage'"
    ):
        find_conf_lock(blank)

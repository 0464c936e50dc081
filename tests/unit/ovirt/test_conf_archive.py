"""The configuration archive: both writers' dialects made by the real tools (GNU tar as
deploy runs it; an empty GNU tar archive appended to by Python's tarfile as the original's
rewrite does), what build_archive writes read back by GNU tar, every malformed case named."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from he_ha.ovirt.conf_archive import (
    ARCHIVE_SIZE,
    DEPLOY_ORDER,
    MEMBERS,
    ConfArchiveError,
    build_archive,
    edit_shared_hosted_engine_conf,
    minimal_fhanswers,
    parse_archive,
)
from tests.unit.ovirt.samples import HOSTED_ENGINE_CONF, MEMBERS_TEXT, SD, VMID


def tar(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["tar", *args], cwd=cwd, capture_output=True, check=True, timeout=30)


def write_members(directory: Path, members: dict[str, str]) -> None:
    for name, text in members.items():
        (directory / name).write_text(text, encoding="utf-8")


def deploy_archive(tmp_path: Path, members: dict[str, str] = MEMBERS_TEXT) -> bytes:
    """What the deploy's ansible task makes: GNU tar, owner vdsm/kvm, its member order."""
    source = tmp_path / "deploy"
    source.mkdir()
    write_members(source, members)
    tar(
        "--format=gnu",
        "--record-size=20480",
        "--owner=36",
        "--group=36",
        "-cf",
        "../deploy.tar",
        *DEPLOY_ORDER,
        cwd=source,
    )
    return (tmp_path / "deploy.tar").read_bytes()


def rewrite_archive(tmp_path: Path, members: dict[str, str] = MEMBERS_TEXT) -> bytes:
    """What the original's rewrite makes: an empty 20480-byte GNU tar archive, then Python's
    tarfile appending the members (uid/gid 0, mtime 0, mode 0644) in the rewrite's order."""
    target = tmp_path / "rewrite.tar"
    tar("--record-size=20480", "-cf", str(target), "--files-from", "/dev/null", cwd=tmp_path)
    assert target.read_bytes() == bytes(ARCHIVE_SIZE)
    with tarfile.open(target, mode="a") as archive:
        for name in MEMBERS:
            data = members[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return target.read_bytes()


def test_reads_the_deploy_dialect(tmp_path: Path) -> None:
    data = deploy_archive(tmp_path)
    assert len(data) == ARCHIVE_SIZE
    assert data[257:265] == b"ustar  \0"  # GNU headers
    assert parse_archive(data) == MEMBERS_TEXT


def test_reads_the_rewrite_dialect(tmp_path: Path) -> None:
    data = rewrite_archive(tmp_path)
    assert len(data) == ARCHIVE_SIZE
    assert data[257:263] == b"ustar\0"  # POSIX headers
    assert parse_archive(data) == MEMBERS_TEXT


@pytest.mark.parametrize("make", [deploy_archive, rewrite_archive])
def test_stale_bytes_after_the_archive_are_ignored(tmp_path: Path, make: Callable[[Path], bytes]) -> None:
    """On a block domain the LV keeps whatever followed the 20480 bytes; the end marker decides."""
    data = make(tmp_path)
    assert parse_archive(data + b"\x5a" * 65536) == MEMBERS_TEXT
    assert parse_archive(data + data) == MEMBERS_TEXT  # an older archive further on is not read either


def test_extra_members_are_ignored(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_members(source, {**MEMBERS_TEXT, "notes.txt": "left by an admin\n"})
    tar("--format=gnu", "--record-size=20480", "-cf", "../x.tar", "notes.txt", *DEPLOY_ORDER, cwd=source)
    assert parse_archive((tmp_path / "x.tar").read_bytes()) == MEMBERS_TEXT


def test_pax_headers_with_long_and_non_ascii_names(tmp_path: Path) -> None:
    """A pax 'path' record and a GNU long-name entry name the member that follows them."""
    source = tmp_path / "src"
    source.mkdir()
    long_name = "x" * 120 + "-é.txt"
    write_members(source, {**MEMBERS_TEXT, long_name: "other\n"})
    for fmt in ("pax", "gnu"):
        tar(f"--format={fmt}", "--record-size=20480", "-cf", f"../{fmt}.tar", long_name, *MEMBERS, cwd=source)
        assert parse_archive((tmp_path / f"{fmt}.tar").read_bytes()) == MEMBERS_TEXT


def test_build_writes_the_rewrite_dialect_that_gnu_tar_reads(tmp_path: Path) -> None:
    data = build_archive(MEMBERS_TEXT)
    assert len(data) == ARCHIVE_SIZE
    assert parse_archive(data) == MEMBERS_TEXT
    (tmp_path / "built.tar").write_bytes(data)
    listing = tar("-tvf", "built.tar", cwd=tmp_path).stdout.decode().splitlines()
    assert [line.split()[-1] for line in listing] == list(MEMBERS)
    assert all(line.startswith("-rw-r--r-- 0/0 ") and " 1970-01-01 00:00 " in line for line in listing)
    for name, text in MEMBERS_TEXT.items():
        assert tar("-xOf", "built.tar", name, cwd=tmp_path).stdout.decode() == text
    with tarfile.open(tmp_path / "built.tar") as archive:
        assert [(m.name, m.uid, m.gid, m.uname, m.gname, m.mtime, m.mode) for m in archive.getmembers()] == [
            (name, 0, 0, "", "", 0, 0o644) for name in MEMBERS
        ]


def test_build_reproduces_the_original_rewrite_byte_for_byte(tmp_path: Path) -> None:
    assert build_archive(MEMBERS_TEXT) == rewrite_archive(tmp_path)


def test_non_ascii_content_round_trips(tmp_path: Path) -> None:
    members = {**MEMBERS_TEXT, "broker.conf": "[email]\nsource-email = hé@example.com\n"}
    data = build_archive(members)
    assert parse_archive(data) == members
    (tmp_path / "built.tar").write_bytes(data)
    assert tar("-xOf", "built.tar", "broker.conf", cwd=tmp_path).stdout.decode() == members["broker.conf"]


def test_build_refuses_what_does_not_fit() -> None:
    big = {**MEMBERS_TEXT, "vm.conf": "x" * 16_000}
    with pytest.raises(
        ConfArchiveError,
        match=r"the members do not fit: as a tar archive they take \d+ bytes, "
        r"\d+ more than the 20480 bytes .* \(largest: 'vm.conf', 16000 bytes\)",
    ):
        build_archive(big)
    # the largest that fits: 5 headers, the end marker, contents rounded up to 512
    fitting = {name: "" for name in MEMBERS} | {"vm.conf": "y" * (ARCHIVE_SIZE - 6 * 512 - 1024)}
    assert parse_archive(build_archive(fitting)) == fitting


def test_build_needs_exactly_the_five_members() -> None:
    with pytest.raises(ConfArchiveError, match=re.escape("member 'vm.conf' missing")):
        build_archive({name: "" for name in MEMBERS if name != "vm.conf"})
    with pytest.raises(ConfArchiveError, match="unknown member 'extra'"):
        build_archive({name: "" for name in MEMBERS} | {"extra": ""})


# --- malformed archives --------------------------------------------------------------------------


def test_blank_volume() -> None:
    with pytest.raises(ConfArchiveError, match="no archive: the first 512 bytes are all zero"):
        parse_archive(bytes(ARCHIVE_SIZE))


def test_not_a_tar() -> None:
    with pytest.raises(ConfArchiveError, match="not a tar archive: the first 512 bytes are not a tar header"):
        parse_archive(b"[environment:default]\n" + bytes(ARCHIVE_SIZE))
    with pytest.raises(ConfArchiveError, match="not a tar archive: the first 512 bytes are not a tar header"):
        parse_archive(b"\x17" * ARCHIVE_SIZE)


def test_missing_member(tmp_path: Path) -> None:
    members = {name: text for name, text in MEMBERS_TEXT.items() if name != "broker.conf"}
    source = tmp_path / "src"
    source.mkdir()
    write_members(source, members)
    tar("--format=gnu", "--record-size=20480", "-cf", "../x.tar", *members, cwd=source)
    with pytest.raises(
        ConfArchiveError,
        match=r"the archive lacks member 'broker.conf' .*holds version, "
        r"fhanswers.conf, hosted-engine.conf, vm.conf",
    ):
        parse_archive((tmp_path / "x.tar").read_bytes())


def test_no_end_marker_within_the_archive_size() -> None:
    """Entry after entry up to byte 20480 and no zero block: too large for the volume."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name in MEMBERS:
            data = MEMBERS_TEXT[name].encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for number in range(40):  # empty files: one 512-byte header each, past 20480 bytes
            archive.addfile(tarfile.TarInfo(f"pad-{number}"))
        assert archive.offset > ARCHIVE_SIZE
    with pytest.raises(ConfArchiveError, match="no tar end marker within the first 20480 bytes after version, "):
        parse_archive(buffer.getvalue())


def test_cut_short_inside_a_member(tmp_path: Path) -> None:
    """A half-written volume: the data ends inside the third member (hosted-engine.conf)."""
    data = deploy_archive(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.getmember("hosted-engine.conf")
        second = archive.getmember("broker.conf")
    cut = member.offset_data + 100
    with pytest.raises(
        ConfArchiveError,
        match=rf"cut short inside member 'hosted-engine.conf': its data needs bytes "
        rf"\[{member.offset_data}, \d+\) but only {cut} bytes are there",
    ):
        parse_archive(data[:cut])
    with pytest.raises(
        ConfArchiveError,
        match=rf"cut short: it ends at byte {second.offset} after vm.conf with no "
        "tar end marker",
    ):
        parse_archive(data[: second.offset])


def test_damaged_header_in_the_middle() -> None:
    data = bytearray(build_archive(MEMBERS_TEXT))
    data[1024 + 10] ^= 0xFF  # the name of the second member's header
    with pytest.raises(ConfArchiveError, match="the tar header at offset 1024 is damaged: header checksum"):
        parse_archive(bytes(data))


def test_member_that_is_not_a_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_members(source, {name: text for name, text in MEMBERS_TEXT.items() if name != "vm.conf"})
    (source / "vm.conf").mkdir()
    tar("--format=gnu", "-cf", "../x.tar", *MEMBERS, cwd=source)
    with pytest.raises(ConfArchiveError, match=re.escape("member 'vm.conf' is a directory, not a file")):
        parse_archive((tmp_path / "x.tar").read_bytes())


def test_member_twice() -> None:
    data = build_archive(MEMBERS_TEXT)
    twice = data[:1024] + data[: ARCHIVE_SIZE - 1024]  # "version" (header + 1 block) again at the start
    with pytest.raises(ConfArchiveError, match="member 'version' appears twice"):
        parse_archive(twice)


def test_member_not_utf8() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name in MEMBERS:
            data = b"\xff\xfe latin-1 \xe9" if name == "vm.conf" else b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfArchiveError, match=re.escape("member 'vm.conf' is not UTF-8 text")):
        parse_archive(buffer.getvalue())


def test_member_extends_past_the_archive() -> None:
    data = bytearray(build_archive(MEMBERS_TEXT))
    header = bytearray(data[:512])
    header[124:136] = b"%011o\0" % 30000
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    data[:512] = header
    with pytest.raises(ConfArchiveError, match=r"member 'version' needs bytes \[512, 30512\), past the 20480-byte"):
        parse_archive(bytes(data))


# --- the he_shared edit rule --------------------------------------------------------------------------


def test_edit_replaces_the_line_and_keeps_everything_else() -> None:
    text = "# deployed\nfqdn=old.example.com\n\nhost_id=1\n#fqdn=commented\n"
    assert edit_shared_hosted_engine_conf(text, "fqdn", "new.example.com") == (
        "# deployed\nfqdn=new.example.com\n\nhost_id=1\n#fqdn=commented\n"
    )


def test_edit_of_the_same_value_keeps_the_line_as_written() -> None:
    text = "fqdn = engine.example.com\nhost_id=1"
    assert edit_shared_hosted_engine_conf(text, "fqdn", "engine.example.com") == (
        "fqdn = engine.example.com\nhost_id=1\n"
    )


def test_edit_appends_a_missing_key_without_a_newline() -> None:
    assert edit_shared_hosted_engine_conf("host_id=1\n", "network_test", "dns") == "host_id=1\nnetwork_test=dns"
    assert edit_shared_hosted_engine_conf("host_id=1", "tcp_t_port", "80") == "host_id=1\ntcp_t_port=80"
    assert edit_shared_hosted_engine_conf("", "x", "1") == "x=1"


def test_edit_of_a_value_holding_equals_signs() -> None:
    text = 'ca_subject="C=EN, L=Test"\n'
    assert edit_shared_hosted_engine_conf(text, "ca_subject", '"C=FR"') == 'ca_subject="C=FR"\n'


def test_edit_of_the_deployed_file() -> None:
    edited = edit_shared_hosted_engine_conf(HOSTED_ENGINE_CONF, "tcp_t_port", "443")
    assert edited == HOSTED_ENGINE_CONF.replace("tcp_t_port=\n", "tcp_t_port=443\n")


def test_minimal_fhanswers() -> None:
    text = minimal_fhanswers({"sdUUID": SD, "vmid": VMID, "domainType": "nfs", "spUUID": ""})
    assert text == (
        f"[environment:default]\nOVEHOSTED_STORAGE/sdUUID=str:{SD}\nOVEHOSTED_STORAGE/domainType=str:nfs\n"
        f"OVEHOSTED_VM/vmUUID=str:{VMID}\n"
    )

"""he_ha.atomicfile: the durable replace sequence, checked by recording the os calls and, at the
kernel's level, with strace; permissions and owner kept or set before the rename."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from he_ha import atomicfile
from he_ha.atomicfile import write_atomically
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """Wraps the os functions atomicfile uses; ``calls`` gets (name, detail) in call order."""

    NAMES = ("open", "write", "fchmod", "fchown", "fsync", "close", "rename", "unlink")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.paths: dict[int, str] = {}
        for name in self.NAMES:
            monkeypatch.setattr(atomicfile.os, name, self._wrap(name, getattr(os, name), fail == name))

    def _wrap(self, name: str, real: Any, fail: bool) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if fail:
                raise OSError(28, "No space left on device")
            result = real(*args, **kwargs)
            if name == "open":
                self.paths[result] = Path(args[0]).name
                self.calls.append((name, Path(args[0]).name))
            elif name in ("write", "fchmod", "fchown", "fsync", "close"):
                self.calls.append((name, self.paths.get(args[0], "?")))
            else:
                self.calls.append((name, tuple(Path(a).name for a in args)))
            return result

        return call


def test_sequence_write_mode_owner_fsync_rename_then_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "hosted-engine.conf"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    os.chown(target, 36, 36)  # vdsm:kvm on an oVirt host; we run as root
    recorder = Recorder(monkeypatch)
    write_atomically(target, "new\n")
    scratch = recorder.calls[0][1]
    assert re.fullmatch(r"\.hosted-engine\.conf\.[0-9a-f]{12}\.tmp", scratch)
    assert recorder.calls == [
        ("open", scratch),
        ("write", scratch),
        ("fchmod", scratch),
        ("fchown", scratch),
        ("fsync", scratch),
        ("close", scratch),
        ("rename", (scratch, "hosted-engine.conf")),
        ("open", tmp_path.name),
        ("fsync", tmp_path.name),
        ("close", tmp_path.name),
    ]
    st = target.stat()
    assert (target.read_text(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == ("new\n", 0o640, 36, 36)
    assert [p.name for p in tmp_path.iterdir()] == ["hosted-engine.conf"]


def test_scratch_name_differs_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = set()
    for _ in range(3):
        recorder = Recorder(monkeypatch)
        write_atomically(tmp_path / "f", "x")
        names.add(recorder.calls[0][1])
    assert len(names) == 3


def test_new_file_gets_the_mode_asked_or_the_umask_one(tmp_path: Path) -> None:
    write_atomically(tmp_path / "vm.conf", b"bytes too", mode=0o644)
    assert stat.S_IMODE((tmp_path / "vm.conf").stat().st_mode) == 0o644
    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "plain", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640


def test_a_failure_leaves_the_target_and_no_scratch_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ha.json"
    target.write_text("old")
    Recorder(monkeypatch, fail="fsync")
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["ha.json"]


def test_kernel_sees_fsync_before_rename_and_the_directory_fsync_after(tmp_path: Path) -> None:
    require_tool("strace", "strace")
    target = tmp_path / "ha.conf"
    target.write_text("local_maintenance=False\n")
    os.chmod(target, 0o600)
    script = (
        "import sys; from pathlib import Path; from he_ha.atomicfile import write_atomically; "
        "write_atomically(Path(sys.argv[1]), 'local_maintenance=True\\n')"
    )
    trace = tmp_path.parent / f"{tmp_path.name}.strace"
    subprocess.run(
        [
            "strace",
            "-qq",
            "-f",
            "-o",
            str(trace),
            "-e",
            "trace=openat,write,fchmod,fchown,fsync,close,rename,renameat,renameat2",
            sys.executable,
            "-c",
            script,
            str(target),
        ],
        check=True,
        cwd=REPO,
        timeout=60,
    )
    steps: list[str] = []
    labels: dict[str, str] = {}  # open fd -> "scratch" or "dir" (fd numbers are reused)
    for line in trace.read_text().splitlines():
        call = re.sub(r"^\d+\s+", "", line)
        name, _, rest = call.partition("(")
        fd = rest.split(",")[0].split(")")[0]
        result = call.rsplit("= ", 1)[-1]
        if name == "openat" and ".ha.conf." in call:
            assert "O_EXCL" in call and "0600" in call
            labels[result] = "scratch"
        elif name == "openat" and f'"{tmp_path}"' in call and "O_DIRECTORY" in call:
            labels[result] = "dir"
        elif name.startswith("rename") and "ha.conf" in call:
            steps.append("rename")
        elif name in ("write", "fchmod", "fchown", "fsync", "close") and fd in labels:
            steps.append(f"{name}-{labels[fd]}")
            if name == "close":
                del labels[fd]
    assert steps == [
        "write-scratch",
        "fchmod-scratch",
        "fsync-scratch",
        "close-scratch",
        "rename",
        "fsync-dir",
        "close-dir",
    ]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "local_maintenance=True\n"

"""The logging pipeline (he_ha/logsetup.py, he_ha/journal.py): journald's native protocol on a real
unix datagram socket, every library's records through the same renderer (--log-json), the
optional rotated log file."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web

from he_ha import __version__
from he_ha.journal import encode, field_name, stderr_is_journal
from he_ha.logsetup import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.configure(**config)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[socket.socket]:
    """A real AF_UNIX datagram socket standing in for /run/systemd/journal/socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.socket"))
    sock.settimeout(5)
    yield sock
    sock.close()


def parse_native(data: bytes) -> dict[str, str]:
    """journald's side of the native protocol, written from its specification."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            pos = end + 1
        else:  # NAME\n, 64-bit little-endian length, the value, \n
            name = line
            (length,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + length]
            assert data[end + 9 + length : end + 10 + length] == b"\n"
            pos = end + 10 + length
        assert name.decode().replace("_", "").isalnum() and name.isupper() and not name.startswith(b"_"), name
        fields[name.decode()] = value.decode()
    return fields


def receive(sock: socket.socket) -> dict[str, str]:
    return parse_native(sock.recv(1 << 20))


def test_journal_entries_have_priority_fields_and_no_timestamp(journal: socket.socket, tmp_path: Path) -> None:
    assert configure_logging(level="DEBUG", target="journal", journal_socket=tmp_path / "journal.socket") == "journal"
    log = structlog.get_logger("he_ha.supervisor.core")
    log.info("tick", state="EngineUp", score=3400, **{"host-id": 1})
    entry = receive(journal)
    assert entry == {
        "MESSAGE": "tick state=EngineUp score=3400 host-id=1",
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "he-ha",
        "LOGGER": "he_ha.supervisor.core",
        "HE_HA_VERSION": __version__,
        "STATE": "EngineUp",
        "SCORE": "3400",
        "HOST_ID": "1",
    }
    for method, priority in (("debug", "7"), ("warning", "4"), ("error", "3"), ("critical", "2")):
        getattr(log, method)("x")
        assert receive(journal)["PRIORITY"] == priority
    log.info("clash", message="m", priority=1)  # journald's own names are not overwritten
    entry = receive(journal)
    assert (entry["PRIORITY"], entry["HE_HA_MESSAGE"], entry["HE_HA_PRIORITY"]) == ("6", "m", "1")


def test_a_traceback_stays_in_its_entry_binary_encoded(journal: socket.socket, tmp_path: Path) -> None:
    configure_logging(target="journal", journal_socket=tmp_path / "journal.socket")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        structlog.get_logger("he_ha.x").exception("failed", step="publish")
    entry = receive(journal)
    first, *rest = entry["MESSAGE"].split("\n")
    assert first == "failed step=publish" and entry["PRIORITY"] == "3"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "value"


def test_library_records_reach_the_journal_with_their_logger(journal: socket.socket, tmp_path: Path) -> None:
    configure_logging(target="journal", journal_socket=tmp_path / "journal.socket")
    logging.getLogger("aiosmtplib").warning("connection lost to %s", "mail.example.org")
    entry = receive(journal)
    assert (entry["MESSAGE"], entry["LOGGER"], entry["PRIORITY"]) == (
        "connection lost to mail.example.org",
        "aiosmtplib",
        "4",
    )


def test_an_entry_too_big_for_a_datagram_goes_in_a_sealed_memfd(journal: socket.socket, tmp_path: Path) -> None:
    configure_logging(target="journal", journal_socket=tmp_path / "journal.socket")
    structlog.get_logger("he_ha.x").info("big", blob="x" * (1 << 20))
    data, fds, _, _ = socket.recv_fds(journal, 1 << 16, 1)
    (fd,) = fds
    try:
        assert data == b""
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & (fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW) == (
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        )
        entry = parse_native(os.pread(fd, 4 << 20, 0))
    finally:
        os.close(fd)
    assert entry["BLOB"] == "x" * (1 << 20)


def test_without_journald_the_entry_goes_to_stderr_with_its_priority(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(target="journal", journal_socket=tmp_path / "absent.socket")
    structlog.get_logger("he_ha.x").error("storage stalled", seconds=5)
    structlog.get_logger("he_ha.x").warning("still")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "<3>storage stalled seconds=5"
    assert lines[1].startswith("<3>(journald did not take this entry: ")
    assert lines[2:] == ["<4>still"]


def test_auto_means_journal_only_when_stderr_is_journald_s_stream(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream.fileno())
        assert not stderr_is_journal({}, stream.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "junk"}, stream.fileno())
    assert configure_logging(environ={}) == "stderr"


def test_field_names_follow_the_protocol() -> None:
    assert [field_name(k) for k in ("host_id", "vm-state", "_hidden", "2nd", "message", "x" * 80)] == [
        "HOST_ID",
        "VM_STATE",
        "HIDDEN",
        "F_2ND",
        "HE_HA_MESSAGE",
        "X" * 64,
    ]
    assert encode({"A": "one", "B": "two\nlines"}) == b"A=one\nB\n" + struct.pack("<Q", 9) + b"two\nlines\n"


async def test_log_json_makes_every_library_line_json(capfd: pytest.CaptureFixture[str]) -> None:
    """Real records of asyncio (a slow callback in debug mode), aiohttp (a failing handler) and
    warnings, beside he-ha's own: each one JSON line with its logger and the version."""
    configure_logging(json=True, level="DEBUG", target="auto")
    structlog.get_logger("he_ha.supervisor.core").info("tick", score=3400)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    await asyncio.sleep(0.1)
    loop.set_debug(False)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("handler bug")

    app = web.Application()
    app.router.add_get("/", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as response:
        assert response.status == 500
    await runner.cleanup()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
    lines = [line for line in capfd.readouterr().err.splitlines() if line]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all(r["version"] == __version__ and r["logger"] and r["timestamp"] and r["level"] for r in records)
    loggers = {r["logger"] for r in records}
    assert {"he_ha.supervisor.core", "asyncio", "aiohttp.server", "py.warnings"} <= loggers, loggers
    (failure,) = [r for r in records if r["logger"] == "aiohttp.server"]
    assert failure["level"] == "error" and "RuntimeError: handler bug" in failure["exception"]


def test_log_file_in_the_original_place_rotates_daily_keeping_seven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ovirt-hosted-engine-ha" / "agent.log"
    configure_logging(target="stderr", log_file=path)
    structlog.get_logger("he_ha.supervisor.daemon").info("he-ha starting")
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    text = path.read_text()
    assert "he-ha starting" in text and "[he_ha.supervisor.daemon]" in text and f"version={__version__}" in text
    assert "Task exception was never retrieved" in text and "[asyncio]" in text
    assert "he-ha starting" in capsys.readouterr().err  # and stderr still gets everything
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.TimedRotatingFileHandler)]
    assert (handler.when, handler.backupCount) == ("MIDNIGHT", 7)

    def dated(day: int) -> Callable[[str], str]:
        return lambda name: f"{path}.2026-01-{day + 1:02d}"

    for day in range(10):  # ten midnights
        handler.namer = dated(day)  # rotation_filename() asks it: pins each rotation's file name
        handler.doRollover()
    handler.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["agent.log"] + [
        f"agent.log.2026-01-{d:02d}" for d in range(4, 11)
    ]


def test_warnings_reach_the_log_after_a_catch_warnings_block_ended(capfd: pytest.CaptureFixture[str]) -> None:
    """configure_logging() called again after a warnings.catch_warnings() block put its own
    showwarning back (as pytest and libraries do) still routes warnings into the log."""
    with warnings.catch_warnings():
        configure_logging(json=True, level="INFO", target="stderr")
    configure_logging(json=True, level="INFO", target="stderr")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("after the block", UserWarning, stacklevel=1)
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    assert [r["logger"] for r in records if "after the block" in json.dumps(r)] == ["py.warnings"], records

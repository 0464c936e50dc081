"""The lease keeper outside he-ha.service's kill path: under systemd ``start_detached`` runs it
in a transient scope (systemd-run --scope); anywhere else its command is exactly as before."""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import Any

import pytest

from he_ha.lease import LeaseError
from he_ha.lease import keeper as lease_keeper
from he_ha.lease.keeper import SCOPE_PREFIX, scope_prefix, under_systemd


def test_not_under_systemd_without_invocation_id() -> None:
    assert not under_systemd({}, booted=True)
    assert not under_systemd({"INVOCATION_ID": "ab12"}, booted=False)  # not a systemd-booted host
    assert under_systemd({"INVOCATION_ID": "ab12"}, booted=True)
    assert scope_prefix({}, booted=True, systemd_run="/usr/bin/systemd-run") == []
    assert scope_prefix({"INVOCATION_ID": "ab12"}, booted=False, systemd_run="/usr/bin/systemd-run") == []


def test_under_systemd_the_keeper_gets_its_own_scope() -> None:
    words = scope_prefix({"INVOCATION_ID": "ab12"}, booted=True, systemd_run="/usr/bin/systemd-run")
    assert words[:2] == ["/usr/bin/systemd-run", "--scope"]
    assert "--collect" in words and "--quiet" in words
    units = [w for w in words if w.startswith("--unit=")]
    assert len(units) == 1 and units[0].startswith(f"--unit={SCOPE_PREFIX}")
    again = scope_prefix({"INVOCATION_ID": "ab12"}, booted=True, systemd_run="/usr/bin/systemd-run")
    assert [w for w in again if w.startswith("--unit=")] != units  # one scope per keeper


class _Starter:
    """Stands in for the intermediate process: says it is ready, then exits."""

    def __init__(self) -> None:
        self.stdout = asyncio.StreamReader()
        self.stdout.feed_data(b"ready 4242\n")
        self.stdout.feed_eof()

    async def wait(self) -> int:
        return 0


async def _argv_of_start_detached(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    async def fake_exec(*argv: str, **kwargs: Any) -> _Starter:
        seen.extend(argv)
        assert kwargs["start_new_session"] is True
        return _Starter()

    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
    assert await lease_keeper.start_detached() == 4242
    return seen


async def test_start_detached_outside_systemd_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert await _argv_of_start_detached(monkeypatch) == [sys.executable, "-m", lease_keeper.MODULE, "--detach"]


async def test_start_detached_under_systemd_runs_in_a_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    monkeypatch.setattr(lease_keeper.os.path, "isdir", lambda path: path == "/run/systemd/system")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    argv = await _argv_of_start_detached(monkeypatch)
    assert argv[:2] == ["/usr/bin/systemd-run", "--scope"]
    assert argv[-4:] == [sys.executable, "-m", lease_keeper.MODULE, "--detach"]


async def test_a_keeper_that_says_nothing_useful_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent(_Starter):
        def __init__(self) -> None:
            self.stdout = asyncio.StreamReader()
            self.stdout.feed_eof()

    async def fake_exec(*argv: str, **kwargs: Any) -> Silent:
        return Silent()

    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
    with pytest.raises(LeaseError):
        await lease_keeper.start_detached()

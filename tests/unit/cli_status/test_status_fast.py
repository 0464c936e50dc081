"""The lean path of ``--vm-status [--json]`` (cli/status_fast.py, issue 16 item 2): the same
bytes and exit status as the full path, taken only on a hosted-engine.conf the full path has
accepted exactly as it is now, and without loading pydantic, structlog, aiohttp or libvirt.

Each case runs the command twice against a real admin server: the first run takes the full
path (no record yet) and records the file; the second takes the lean path (the full path's
fetch is replaced by one that fails the test, so a fall-back would show).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pydantic
import pytest

import cli.cmd_status
from cli.environment import DEFAULT_HOSTED_ENGINE_CONF
from cli.status_fast import RECORD, vm_status_fast
from cli.status_source import MODEL_FIELDS
from he_ha.admin.contract import AlertView, ClusterStatus, VmDefinitionView
from he_ha.config import ConfigPaths
from tests.unit.cli_status.conftest import HostFiles, Result, golden
from tests.unit.cli_status.daemon import FixtureDaemon
from tests.unit.cli_status.fixtures import STATUSES, host1

Run = Callable[..., Result]
REPO = Path(__file__).resolve().parents[3]
HEAVY = ("pydantic", "pydantic_core", "structlog", "aiohttp", "libvirt", "yaml", "he_ha.config", "he_ha.admin")


def _extra_cases() -> dict[str, Callable[[], ClusterStatus]]:
    normal = STATUSES["normal"]
    problem = VmDefinitionView(usable=False, source=None, path=None, age=None, problem="no source gives one")
    return {
        "storage_error": lambda: normal().model_copy(
            update={"storage_error": "read timed out", "whiteboard_age": 31.4}
        ),
        "never_read": lambda: STATUSES["zero_hosts"]().model_copy(update={"whiteboard_age": None}),
        "slot0_unreadable": lambda: normal().model_copy(update={"global_maintenance": None}),
        "definition_problem": lambda: normal().model_copy(update={"vm_definition": problem}),
        "priority": lambda: ClusterStatus.model_validate(
            {**normal().model_dump(), "hosts": [host1(priority=7).model_dump()]}
        ),
        "liveness_and_alerts": lambda: normal().model_copy(
            update={
                "engine_liveness": "silent",
                "gave_up": True,
                "alerts": [AlertView(kind="gave-up.no-eligible-host", reason="no host can start the VM", age=301.0)],
            }
        ),
    }


CASES = {**STATUSES, **_extra_cases()}


@pytest.fixture
def full_path_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Appends True each time the full path fetches the status."""
    taken: list[bool] = []
    fetch = cli.cmd_status.fetch_status

    def spy(*args: object, **kwargs: object) -> object:
        taken.append(True)
        return fetch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli.cmd_status, "fetch_status", spy)
    yield taken


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_lean_path_prints_what_the_full_path_prints(
    case: str, mode: list[str], host: HostFiles, run: Run, full_path_taken: list[bool]
) -> None:
    with FixtureDaemon(host.socket, CASES[case]()):
        full = run("--vm-status", *mode)
        assert full_path_taken == [True]
        assert (host.socket.parent / RECORD).is_file()
        lean = run("--vm-status", *mode)
    assert full_path_taken == [True], "the second run fell back to the full path"
    assert lean == full
    golden_file = f"{case}.json" if mode else f"{case}.txt"
    if (Path(__file__).parent / "golden" / golden_file).exists():
        assert lean.out == golden(golden_file)


def test_daemon_down_is_reported_by_the_lean_path(host: HostFiles, run: Run, full_path_taken: list[bool]) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        run("--vm-status")  # records the file
    for mode in ([], ["--json"]):
        lean = run("--vm-status", *mode)
        assert lean.code == 1 and "does not answer" in lean.err
    assert full_path_taken == [True]
    full = []
    for mode in ([], ["--json"]):
        (host.socket.parent / RECORD).unlink()
        full.append(run("--vm-status", *mode))
    assert full_path_taken == [True, True, True]
    assert lean == full[1]
    assert run("--vm-status") == full[0]
    assert full_path_taken == [True, True, True]


def test_a_changed_conf_takes_the_full_path_again(host: HostFiles, run: Run, full_path_taken: list[bool]) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        run("--vm-status")
        run("--vm-status")
        assert len(full_path_taken) == 1
        host.hosted_engine_conf.write_text(host.hosted_engine_conf.read_text() + "he_ha_priority=5\n")
        run("--vm-status")
        assert len(full_path_taken) == 2  # checked again, and recorded
        run("--vm-status")
        assert len(full_path_taken) == 2
        host.hosted_engine_conf.write_text(host.hosted_engine_conf.read_text().replace("host_id=1", "host_id=0"))
        bad = run("--vm-status")
        again = run("--vm-status")
    assert len(full_path_taken) == 2  # refused before fetching, both times
    assert bad == again and bad.code == 1 and "host_id" in bad.err


def test_a_rejected_conf_is_never_recorded(host: HostFiles, run: Run) -> None:
    host.hosted_engine_conf.write_text(
        host.hosted_engine_conf.read_text().replace("network_test=none", "network_test=x")
    )
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        result = run("--vm-status")
    assert result.code == 1 and "network_test" in result.err
    assert not (host.socket.parent / RECORD).exists()


def test_a_record_of_other_code_or_another_file_is_not_trusted(
    host: HostFiles, run: Run, full_path_taken: list[bool]
) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        run("--vm-status")
        record_path = host.socket.parent / RECORD
        record = json.loads(record_path.read_text())
        for changed in ({"code": [*record["code"][:-1], None]}, {"conf": "/elsewhere.conf"}):
            record_path.write_text(json.dumps({**record, **changed}))
            run("--vm-status")
        assert len(full_path_taken) == 3


def test_a_missing_vm_conf_takes_the_full_path(host: HostFiles, run: Run) -> None:
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        run("--vm-status")
        host.vm_conf.unlink()
        result = run("--vm-status")
    assert result.code == 1 and result.out.startswith("The hosted engine configuration has not been retrieved")


def test_an_answer_it_cannot_read_goes_to_the_full_path(
    host: HostFiles, run: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon older than a field: nothing printed, the full path validates (and fills in defaults)."""
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        run("--vm-status")
    answer = STATUSES["normal"]().model_dump(mode="json")
    del answer["vm_definition"]
    monkeypatch.setattr("cli.status_source.daemon_get", lambda *args: answer)
    capsys.readouterr()
    assert vm_status_fast([], os.environ) is None  # the text shows this host's vm_definition
    assert capsys.readouterr() == ("", "")
    del answer["hosts"][0]["hostname"]
    assert vm_status_fast(["--json"], os.environ) is None
    assert capsys.readouterr() == ("", "")
    assert vm_status_fast(["--watch"], os.environ) is None


def test_the_console_script_path_loads_no_heavy_library(host: HostFiles, run: Run) -> None:
    """What cockpit runs, in a process of its own: same bytes, none of the heavy modules loaded."""
    code = (
        "import sys, cli.hosted_engine\n"
        "try:\n"
        "    code = cli.hosted_engine.main(['--vm-status', '--json'])\n"
        "finally:\n"
        "    sys.stdout.flush()\n"
        f"    heavy = sorted(n for n in sys.modules if n.startswith({HEAVY!r}))\n"
        "    print('loaded:', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    with FixtureDaemon(host.socket, STATUSES["corrupt_slot"]()):
        full = run("--vm-status", "--json")
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.stderr.splitlines()[-1] == "loaded: []"
    assert (done.returncode, done.stdout, "\n".join(done.stderr.splitlines()[:-1]) + "\n") == (
        full.code,
        full.out,
        full.err,
    )


def test_the_default_conf_path_is_the_configuration_models_default() -> None:
    assert ConfigPaths().hosted_engine_conf == DEFAULT_HOSTED_ENGINE_CONF


def test_model_fields_are_the_contracts_fields_holding_models() -> None:
    """``status_view`` wraps exactly the fields whose values are models (or lists of them)."""

    def holds_model(annotation: object) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            return True
        return any(holds_model(arg) for arg in typing.get_args(annotation))

    found: set[str] = set()
    pending: list[type[pydantic.BaseModel]] = [ClusterStatus]
    seen: set[type[pydantic.BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            if holds_model(info.annotation):
                found.add(name)
                pending.extend(arg for arg in _models_in(info.annotation))
    assert found == MODEL_FIELDS


def _models_in(annotation: object) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]

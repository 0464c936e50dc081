"""Exit codes and messages of the storage commands before any storage is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.hosted_engine import main

VMID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hosted-engine.conf"
    monkeypatch.setenv("HE_HA_HOSTED_ENGINE_CONF", str(path))
    monkeypatch.setenv("HE_HA_ADMIN_SOCKET", str(tmp_path / "admin.sock"))
    monkeypatch.setenv("SANLOCK_RUN_DIR", str(tmp_path / "no-sanlock"))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args), prog="hosted-engine")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "without --storage or --lockspace/--metadata the volumes come from hosted-engine.conf: "),
        (["--host-id=1"], "hosted-engine.conf: file not found"),
        (["--storage=/s"], "--host-id=N is needed"),
        (["--host-id=0", "--storage=/s"], "--host-id=0 is outside 1..2000"),
        (["--host-id=x", "--storage=/s"], "--host-id='x' is not a number"),
        (["--host-id=1", "--storage=/s", "--lockspace=/l"], "not both"),
        (["--host-id=1", "--lockspace=/l"], "give both --lockspace=PATH and --metadata=PATH"),
        (["--host-id=1", "--storage=/s", "--vm-uuid=nope"], "'nope' is not a UUID"),
        (["--host-id=1", "--storage=/s", "--io-timeout=0"], "--io-timeout=0 is outside 1..300"),
        (["--host-id=1", "--storage=/s", "--network-test=icmp"], "is not one of ping, dns, tcp, none"),
        (["--host-id=1", "--storage=/s", "--tcp-target=host"], "needs ADDRESS:PORT"),
        (["--host-id=1", "--storage=/s", "--tcp-target=host:99999"], "port=99999 is outside 1..65535"),
        (["--host-id=1", "--storage=/s", "--bogus"], "Invalid option '--bogus' for --init-storage"),
        (["--host-id", "--storage=/s"], "option --host-id needs a value"),
    ],
)
def test_init_storage_usage_errors(
    conf: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "--init-storage", *args)
    assert (code, out) == (1, "")
    assert message in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--host-id=x"], "--host-id='x' is not a number"),
        (["--host-id=2001"], "--host-id=2001 is outside 1..2000"),
        (["--host-id=2", "--unreadable"], "--host-id and --unreadable exclude each other"),
        (["--force-clea=1"], "--clean-metadata: --force-cleanup option does not take a value"),
        (["--host-id"], "--clean-metadata: --host-id option requires 1 argument"),
        (["--h"], "--clean-metadata: ambiguous option: --h (--help, --host-id?)"),
        (["--bogus"], "--clean-metadata: no such option: --bogus"),
        (["-f"], "--clean-metadata: no such option: -f"),
    ],
)
def test_clean_metadata_usage_errors(
    conf: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, "--clean-metadata", *args)
    assert code == 1 and message in err


def test_reinitialize_usage_errors(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--reinitialize-lockspace", "--io-timeout=301")
    assert code == 1 and "--io-timeout=301 is outside 1..300" in err
    code, _, err = run(capsys, "--reinitialize-lockspace", "--forced")
    assert code == 1 and "Invalid option '--forced'" in err  # not the original's: this command is destructive
    code, _, err = run(capsys, "--reinitialize-lockspace", "--dry-run", "--force")
    assert (code, err.splitlines()[0]) == (
        1,
        "--reinitialize-lockspace: ignored argument --force (the original hosted-engine ignores it too)",
    )


def test_clean_metadata_help_as_optparse_gives_it(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--clean-metadata", "--host-id=2", "--hel")
    assert code == 0 and out.startswith("Usage: hosted-engine --clean-metadata ")


@pytest.mark.parametrize("command", ["--clean-metadata", "--reinitialize-lockspace"])
def test_not_deployed(conf: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert run(capsys, command) == (1, "You must run deploy first\n", "")
    conf.write_text("host_id=1\n")  # no vmid: not deployed either
    assert run(capsys, command) == (1, "You must run deploy first\n", "")


@pytest.mark.parametrize("command", ["--clean-metadata", "--reinitialize-lockspace"])
def test_not_configured_is_a_failure_with_a_reason(
    conf: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    conf.write_text(f"host_id=1\nvmid={VMID}\nnetwork_test=none\nconfigured=False\n")
    code, _, err = run(capsys, command)
    assert code == 1  # the original exited 0 (reinitialize) or 255 (clean)
    assert f"Hosted Engine is not configured. ('configured' is not True in {conf})" in err


@pytest.mark.parametrize("command", ["--clean-metadata", "--reinitialize-lockspace"])
def test_shared_paths_are_needed(conf: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    conf.write_text(f"host_id=1\nvmid={VMID}\nnetwork_test=none\nmetadata_path=/s/md\n")
    code, _, err = run(capsys, command)
    assert code == 1 and "key 'lockspace_image_UUID': required to find the lockspace volume" in err
    conf.write_text(f"host_id=x\nvmid={VMID}\n")
    code, _, err = run(capsys, command)
    assert code == 1 and "key 'host_id'" in err


@pytest.mark.parametrize(
    "command, text",
    [
        ("--init-storage", "additional host it verifies them"),
        ("--clean-metadata", "Remove host's metadata from the global status database."),
        ("--reinitialize-lockspace", "This WIPES all locks."),
    ],
)
def test_help(conf: Path, capsys: pytest.CaptureFixture[str], command: str, text: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"Usage: hosted-engine {command} ") and text in out
    code, again, _ = run(capsys, "--help", command)
    assert (code, again) == (0, out)
    code, usage, _ = run(capsys, "--help")
    assert code == 0 and f"        {command}" in usage


def test_missing_area_files_are_a_clean_failure(conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf.write_text(
        f"host_id=1\nvmid={VMID}\nnetwork_test=none\nmetadata_path={tmp_path}/md\nlockspace_path={tmp_path}/ls\n"
    )
    code, _, err = run(capsys, "--clean-metadata", "--dry-run")
    assert code == 1 and "Traceback" not in err
    assert f"{tmp_path}/md" in err and "No such file or directory" in err

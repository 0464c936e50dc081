"""--get-shared-config / --set-shared-config on real files: texts, key resolution, values
checked with the daemon's loaders before writing, atomic writes, the ha.conf lock."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest

from cli import config_files
from he_ha import atomicfile
from tests.unit.cli_commands.conftest import HostFiles, Run, not_deployed


def shown(key: str, value: str, kind: str) -> str:
    return f"\n{key} : {value}, type : {kind}\n\n"


@pytest.mark.parametrize(
    ("args", "out"),
    [
        (["fqdn"], shown("fqdn", "engine.invalid", "he_local")),
        (["fqdn", "--type=he_local"], shown("fqdn", "engine.invalid", "he_local")),
        (["--type=", "fqdn"], shown("fqdn", "engine.invalid", "he_local")),  # empty type: any
        (["spUUID"], shown("spUUID", "00000000-0000-0000-0000-000000000000", "he_local")),  # he-ha's default
        (["gateway"], shown("gateway", "None", "he_local")),
        (["local_maintenance"], shown("local_maintenance", "False", "ha")),
        (["email.smtp-server"], shown("email.smtp-server", "mail.example.com", "broker")),
        (["email.smtp-port", "--type=broker"], shown("email.smtp-port", "25", "broker")),
    ],
)
def test_get(run: Run, host: HostFiles, args: list[str], out: str) -> None:
    result = run("--get-shared-config", *args)
    assert (result.status, result.out, result.err) == (0, out, "")


def test_unknown_key_lists_the_available_keys(run: Run, host: HostFiles) -> None:
    result = run("--get-shared-config", "nokey")
    assert (result.status, result.out) == (1, "")
    lines = result.err.splitlines()
    assert lines[:2] == ["Invalid configuration key nokey.", "Available keys are:"]
    assert [line.split(" : ")[0] for line in lines[2:]] == ["he_local", "ha", "broker"]
    assert lines[3] == "ha : ['local_maintenance', 'local_maintenance_manual']"
    assert "'fqdn'" in lines[2] and "'email.smtp-server'" in lines[4] and "'notify.state_transition'" in lines[4]


def test_key_of_another_type(run: Run, host: HostFiles) -> None:
    result = run("--get-shared-config", "fqdn", "--type=ha")
    assert (result.status, result.err) == (
        1,
        "Invalid configuration key fqdn.\nAvailable keys are:\nha : ['local_maintenance', 'local_maintenance_manual']\n",
    )


def test_keys_in_the_file_count(run: Run, host: HostFiles) -> None:
    with host.hosted_engine_conf.open("a") as conf:
        conf.write('ca_subject="C=EN, L=Test, O=Test, CN=Test"\n')
    assert run("--get-shared-config", "ca_subject").out == shown(
        "ca_subject", "C=EN, L=Test, O=Test, CN=Test", "he_local"
    )


def test_duplicate_key(run: Run, host: HostFiles) -> None:
    with host.hosted_engine_conf.open("a") as conf:
        conf.write("local_maintenance=True\n")
    result = run("--get-shared-config", "local_maintenance")
    assert (result.status, result.err) == (
        1,
        "Duplicate key local_maintenance, please specify the key type. Available types are: ['he_local', 'ha']\n",
    )
    assert run("--get-shared-config", "local_maintenance", "--type=ha").out == shown("local_maintenance", "False", "ha")


@pytest.mark.parametrize("command", ["--get-shared-config", "--set-shared-config"])
def test_he_shared_and_unknown_types(run: Run, host: HostFiles, command: str) -> None:
    values = ["fqdn"] if command == "--get-shared-config" else ["fqdn", "e.example"]
    result = run(command, *values, "--type=he_shared")
    assert (
        result.status == 1 and "names no configuration volume (conf_image_UUID and conf_volume_UUID are" in result.err
    )
    assert "--type=he_local" in result.err
    result = run(command, *values, "--type=shared")
    assert (result.status, result.err) == (
        1,
        "Invalid configuration type 'shared'. Available types are: he_local, ha, broker\n",
    )


def test_missing_arguments_come_before_the_deployed_check(run: Run, host: HostFiles) -> None:
    not_deployed(host)
    assert (run("--get-shared-config").status, run("--get-shared-config").out) == (1, "You must specify a key to get\n")
    assert run("--get-shared-config", "--type=ha").out == "You must specify a key to get\n"
    assert run("--set-shared-config").out == "You must specify a key to set\n"
    assert run("--set-shared-config", "fqdn").out == "You must specify a new value to set\n"
    result = run("--set-shared-config", "fqdn", "x")
    assert (result.status, result.out) == (1, "You must run deploy first\n")


def test_bad_arguments(run: Run, host: HostFiles) -> None:
    result = run("--get-shared-config", "fqdn", "--type")
    assert (result.status, result.err) == (1, "--get-shared-config: option --type needs a value: --type=<value>\n")


@pytest.mark.parametrize(
    ("args", "ignored"),
    [
        (["--get-shared-config", "fqdn", "vmid"], "argument vmid (the original hosted-engine ignores it too)"),
        (
            ["--get-shared-config", "fqdn", "--kind=ha"],
            "argument --kind=ha (the original hosted-engine ignores it too)",
        ),
        (
            ["--set-shared-config", "gateway", "192.0.2.9", "b", "--type=he_local"],
            "argument b (the original hosted-engine ignores it too)",
        ),
    ],
)
def test_extra_arguments_are_ignored_as_by_the_original(
    run: Run, host: HostFiles, args: list[str], ignored: str
) -> None:
    result = run(*args)
    assert (result.status, result.err) == (0, f"{args[0]}: ignored {ignored}\n")


def test_set_he_local_keeps_comments_mode_and_the_symlink(run: Run, host: HostFiles) -> None:
    real = host.root / "real-hosted-engine.conf"
    real.write_text("# written by deploy\n" + host.hosted_engine_conf.read_text())
    real.chmod(0o640)
    host.hosted_engine_conf.unlink()
    host.hosted_engine_conf.symlink_to(real)
    before = real.stat().st_ino
    result = run("--set-shared-config", "fqdn", "engine.example.com:8080")
    assert (result.status, result.out, result.err) == (0, "", "")
    assert host.hosted_engine_conf.is_symlink()
    text = real.read_text()
    assert text.startswith("# written by deploy\n") and "fqdn=engine.example.com:8080\n" in text
    assert "fqdn=engine.invalid" not in text
    assert real.stat().st_mode & 0o7777 == 0o640
    assert real.stat().st_ino != before  # replaced by rename: a reader sees old or new, never half
    assert not list(host.root.glob("*.tmp"))
    assert run("--get-shared-config", "fqdn").out == shown("fqdn", "engine.example.com:8080", "he_local")


def test_set_and_get_the_host_priority(run: Run, host: HostFiles) -> None:
    """Issue 14: he_ha_priority is a he_local key (default 0), set like any other."""
    assert run("--get-shared-config", "he_ha_priority").out == shown("he_ha_priority", "0", "he_local")
    assert run("--set-shared-config", "he_ha_priority", "10", "--type=he_local").status == 0
    assert "he_ha_priority=10\n" in host.hosted_engine_conf.read_text()
    assert run("--get-shared-config", "he_ha_priority").out == shown("he_ha_priority", "10", "he_local")


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("host_id", "0", "key 'host_id' = '0': Input should be greater than or equal to 1"),
        ("network_test", "icmp", "key 'network_test' = 'icmp'"),
        ("network_test", "ping", "network_test=ping needs 'gateway'"),  # the file as a whole must load
        ("tcp_t_port", "http", "key 'tcp_t_port' = 'http'"),
        ("he_ha_priority", "high", "key 'he_ha_priority' = 'high': Value error, must be an integer from -1000 to 1000"),
    ],
)
def test_invalid_he_local_value_leaves_the_file_untouched(
    run: Run, host: HostFiles, key: str, value: str, why: str
) -> None:
    before = host.hosted_engine_conf.read_bytes()
    result = run("--set-shared-config", key, value)
    assert result.status == 1
    assert result.err.startswith(f"Refusing to set {key} to {value!r}: the file would be invalid: ")
    assert why in result.err and str(host.hosted_engine_conf) in result.err
    assert result.err.endswith(f"{host.hosted_engine_conf} is unchanged\n")
    assert host.hosted_engine_conf.read_bytes() == before


@pytest.mark.parametrize("value", ["a\nvmid=other", "a\rb", "a\0b"])
def test_multi_line_values_are_refused(run: Run, host: HostFiles, value: str) -> None:
    before = host.hosted_engine_conf.read_bytes()
    result = run("--set-shared-config", "fqdn", value)
    assert result.status == 1 and "the value must be one line of text" in result.err
    assert host.hosted_engine_conf.read_bytes() == before


def test_set_broker_options(run: Run, host: HostFiles) -> None:
    host.broker_conf.write_text(
        "# notifications\n[email]\nsmtp-server = mail.example.com\n# the port\n\n[other]\nx = 1\n"
    )
    host.broker_conf.chmod(0o600)  # may hold the SMTP password
    assert run("--set-shared-config", "email.smtp-port", "2525").status == 0
    assert run("--set-shared-config", "email.smtp-server", "smtp.example.com", "--type=broker").status == 0
    assert run("--set-shared-config", "notify.state_transition", "").status == 0  # an empty value is a value
    assert host.broker_conf.read_text() == (
        "# notifications\n[email]\nsmtp-server = smtp.example.com\n# the port\nsmtp-port = 2525\n\n"
        "[other]\nx = 1\n\n[notify]\nstate_transition = \n"
    )
    assert host.broker_conf.stat().st_mode & 0o7777 == 0o600
    assert run("--get-shared-config", "email.smtp-port").out == shown("email.smtp-port", "2525", "broker")


def test_invalid_broker_value_is_refused(run: Run, host: HostFiles) -> None:
    before = host.broker_conf.read_bytes()
    for key, value, why in [
        ("email.smtp-port", "abc", "key 'smtp-port' = 'abc'"),
        ("notify.state_transition", "up(", "not a valid regular expression"),
        ("email.smtp-starttls", "maybe", "key 'smtp-starttls' = 'maybe'"),
    ]:
        result = run("--set-shared-config", key, value)
        assert result.status == 1 and why in result.err, result.err
        assert f"Refusing to set {key} to {value!r}" in result.err
    assert host.broker_conf.read_bytes() == before


def test_bare_broker_keys_are_section_default(run: Run, host: HostFiles) -> None:
    result = run("--set-shared-config", "smtp-server", "x", "--type=broker")
    assert result.status == 1 and result.err.startswith("Invalid configuration key smtp-server.\n")
    host.broker_conf.write_text("[default]\nlegacy = 1\n[email]\nsmtp-server = mail\n")
    assert run("--get-shared-config", "legacy").out == shown("legacy", "1", "broker")
    assert run("--set-shared-config", "legacy", "2").status == 0
    assert host.broker_conf.read_text() == "[default]\nlegacy = 2\n[email]\nsmtp-server = mail\n"


def test_broker_conf_created_when_missing(run: Run, host: HostFiles) -> None:
    host.broker_conf.unlink()
    assert run("--get-shared-config", "email.smtp-server").out == shown("email.smtp-server", "localhost", "broker")
    assert run("--set-shared-config", "email.smtp-server", "mail.example.com").status == 0
    assert host.broker_conf.read_text() == "[email]\nsmtp-server = mail.example.com\n"


def test_set_ha_in_place(run: Run, host: HostFiles) -> None:
    host.ha_conf.write_text("# kept\nlocal_maintenance=False\nlocal_maintenance_manual=False\n")
    inode = host.ha_conf.stat().st_ino
    assert run("--set-shared-config", "local_maintenance", "True").status == 0
    assert host.ha_conf.read_text() == "# kept\nlocal_maintenance=True\nlocal_maintenance_manual=False\n"
    assert host.ha_conf.stat().st_ino == inode  # never renamed: other writers lock this inode
    result = run("--set-shared-config", "local_maintenance_manual", "perhaps")
    assert result.status == 1 and "key 'local_maintenance_manual' = 'perhaps': expected True or False" in result.err
    assert host.ha_conf.read_text() == "# kept\nlocal_maintenance=True\nlocal_maintenance_manual=False\n"


def test_set_ha_waits_for_the_maintenance_lock(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer honours the flock every ha.conf writer takes (he_ha/maintenance.py)."""
    monkeypatch.setattr(config_files, "HA_CONF_TIMEOUT", 0.3)
    before = host.ha_conf.read_bytes()
    holder = os.open(host.ha_conf, os.O_RDWR)  # another open file description: a competing writer
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = run("--set-shared-config", "local_maintenance", "True")
        assert result.status == 1 and "another writer holds the lock" in result.err
        assert host.ha_conf.read_bytes() == before
    finally:
        os.close(holder)
    assert run("--set-shared-config", "local_maintenance", "True").status == 0
    assert "local_maintenance=True" in host.ha_conf.read_text()


def test_malformed_file_is_reported(run: Run, host: HostFiles) -> None:
    host.ha_conf.write_text("local_maintenance\n")
    result = run("--get-shared-config", "local_maintenance")
    assert result.status == 1 and f"{host.ha_conf}: line 1 is not 'key=value'" in result.err
    host.broker_conf.write_text("smtp-server = x\n")  # no section header
    result = run("--get-shared-config", "email.smtp-server", "--type=broker")
    assert result.status == 1 and f"{host.broker_conf}: not a valid INI file" in result.err


def test_write_failure_is_reported_and_the_file_kept(
    run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = host.broker_conf.read_bytes()
    names = sorted(p.name for p in host.broker_conf.parent.iterdir())

    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomicfile, "_write_all", disk_full)
    result = run("--set-shared-config", "email.smtp-server", "x")
    assert result.status == 1
    assert result.err.startswith(f"{host.broker_conf}: cannot write: [Errno 28] No space left on device")
    assert host.broker_conf.read_bytes() == before
    assert sorted(p.name for p in host.broker_conf.parent.iterdir()) == names  # no scratch file left

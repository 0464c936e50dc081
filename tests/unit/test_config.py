"""Configuration files: the original's formats, defaults, and errors that name file, key and value."""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from he_ha.config import (
    ConfigError,
    ConfigPaths,
    ScoreConfig,
    load_broker_config,
    load_ha_conf,
    load_host_config,
    load_hosted_engine_conf,
    load_score_config,
    load_vm_conf,
    parse_flat_file,
    to_bool,
)

DEPLOYED_CONF = """\
# written by deploy
fqdn=engine.example.com
vm_disk_id=0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e
vmid="8f2ddd55-fa2a-4bbc-9fc2-18e6f3dbc1a1"
storage=nfs.example.com:/he
mnt_options=
conf=/var/run/ovirt-hosted-engine-ha/vm.conf
host_id=2
console=vnc
domainType=nfs
spUUID=00000000-0000-0000-0000-000000000000
sdUUID=6ea35b4d-5cbd-4b3b-9f08-b07a1f14b0d2
connectionUUID=e29cf818-5ee5-46e1-85c1-8aeefa33e95d
ca_cert=/etc/pki/vdsm/libvirt-spice/ca-cert.pem
gateway=192.168.1.1
bridge=ovirtmgmt
metadata_volume_UUID=a1
metadata_image_UUID=a2
lockspace_volume_UUID=a3
lockspace_image_UUID=a4
network_test=dns
tcp_t_address=
tcp_t_port=
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_deployed_hosted_engine_conf_loads(tmp_path: Path) -> None:
    conf = load_hosted_engine_conf(write(tmp_path, "hosted-engine.conf", DEPLOYED_CONF))
    assert conf.host_id == 2
    assert conf.vmid == "8f2ddd55-fa2a-4bbc-9fc2-18e6f3dbc1a1"  # double quotes stripped
    assert conf.network_test == "dns"
    assert conf.gateway == "192.168.1.1"
    assert conf.bridge == "ovirtmgmt"
    assert conf.sd_uuid == "6ea35b4d-5cbd-4b3b-9f08-b07a1f14b0d2"
    assert conf.vm_conf == Path("/var/run/ovirt-hosted-engine-ha/vm.conf")
    assert conf.configured is True
    assert conf.conf_is_up_to_date is True


def test_flat_file_splits_on_first_equals_and_skips_comments(tmp_path: Path) -> None:
    values = parse_flat_file(write(tmp_path, "f", "# c\n\n  a = b=c  \nempty=\n"))
    assert values == {"a": "b=c", "empty": ""}


def test_flat_file_line_without_equals_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosted-engine.conf", "host_id=1\nthis is junk\n")
    with pytest.raises(ConfigError, match=r"hosted-engine.conf: line 2 is not 'key=value': 'this is junk'"):
        parse_flat_file(path)


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("host_id=two\ngateway=g\n", "host_id", "'two'"),
        ("host_id=0\ngateway=g\n", "host_id", "'0'"),
        ("host_id=2001\ngateway=g\n", "host_id", "'2001'"),
        ("gateway=g\n", "host_id", "required key is missing or empty"),
        ("host_id=1\ngateway=g\nnetwork_test=icmp\n", "network_test", "'icmp'"),
        ("host_id=1\nnetwork_test=tcp\ntcp_t_address=h\ntcp_t_port=99999\n", "tcp_t_port", "'99999'"),
        ("host_id=1\ngateway=g\nhe_ha_priority=high\n", "he_ha_priority", "'high'"),
        ("host_id=1\ngateway=g\nhe_ha_priority=1001\n", "he_ha_priority", "from -1000 to 1000"),
        ("host_id=1\ngateway=g\nhe_ha_priority=2.5\n", "he_ha_priority", "higher is preferred"),
        ("host_id=1\ngateway=g\nhe_ha_priority=1_0\n", "he_ha_priority", "'1_0'"),
    ],
)
def test_bad_hosted_engine_conf_names_key_and_value(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = write(tmp_path, "hosted-engine.conf", text)
    with pytest.raises(ConfigError) as info:
        load_hosted_engine_conf(path)
    message = str(info.value)
    assert str(path) in message
    assert f"key {key!r}" in message
    assert fragment in message
    assert info.value.key == key


def test_host_priority_key(tmp_path: Path) -> None:
    """he_ha_priority (issue 14): default 0 when absent or empty; -1000..1000; the original
    ignores the key (it reads the keys it knows only, spec §10)."""
    assert load_hosted_engine_conf(write(tmp_path, "he.conf", DEPLOYED_CONF)).he_ha_priority == 0
    for text, value in (("5", 5), ("-1000", -1000), (" +7 ", 7), ('"3"', 3), ("", 0), ("None", 0)):
        conf = load_hosted_engine_conf(write(tmp_path, "he.conf", f"host_id=1\ngateway=g\nhe_ha_priority={text}\n"))
        assert conf.he_ha_priority == value, text


def test_network_test_needs_its_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="network_test=ping needs 'gateway'"):
        load_hosted_engine_conf(write(tmp_path, "he.conf", "host_id=1\n"))
    with pytest.raises(ConfigError, match="network_test=tcp needs"):
        load_hosted_engine_conf(write(tmp_path, "he.conf", "host_id=1\nnetwork_test=tcp\n"))
    conf = load_hosted_engine_conf(write(tmp_path, "he.conf", "host_id=1\nnetwork_test=none\n"))
    assert conf.network_test == "none"


def test_configured_must_be_exactly_true(tmp_path: Path) -> None:
    conf = load_hosted_engine_conf(write(tmp_path, "he.conf", "host_id=1\ngateway=g\nconfigured=true\n"))
    assert conf.configured is False


def test_old_pool_layout_is_not_up_to_date(tmp_path: Path) -> None:
    conf = load_hosted_engine_conf(write(tmp_path, "he.conf", "host_id=1\ngateway=g\nspUUID=1234\n"))
    assert conf.conf_is_up_to_date is False


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.conf: file not found"):
        load_hosted_engine_conf(tmp_path / "nope.conf")


def test_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "he.conf"
    path.write_bytes(b"host_id=1\ngateway=\xff\n")
    with pytest.raises(ConfigError, match=r"he.conf: not UTF-8 text"):
        load_hosted_engine_conf(path)


def test_score_defaults_without_file(tmp_path: Path) -> None:
    score = load_score_config(tmp_path / "agent.conf")
    assert score == ScoreConfig()
    assert (
        score.base_score,
        score.network_score_penalty,
        score.not_uptodate_config_penalty,
        score.mgmt_bridge_score_penalty,
        score.free_memory_score_penalty,
        score.cpu_load_score_penalty,
        score.engine_retry_score_penalty,
        score.cpu_load_penalty_min,
        score.cpu_load_penalty_max,
    ) == (3400, 1600, 1000, 600, 400, 1000, 50, 0.4, 0.9)


def test_score_file_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.conf", "[score]\nbase-score=3000\ncpu-load-penalty-max=0.8\n")
    score = load_score_config(path)
    assert score.base_score == 3000
    assert score.cpu_load_penalty_max == 0.8
    assert score.network_score_penalty == 1600


def test_score_bad_value_names_file_key_value(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.conf", "[score]\nbase-score=lots\n")
    with pytest.raises(ConfigError, match=r"agent.conf: key 'base-score' = 'lots'"):
        load_score_config(path)


IGNORED = "ignoring configuration keys he-ha does not use"


def ignored_warnings(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == IGNORED]


def test_agent_conf_from_an_older_release_loads_with_one_warning(tmp_path: Path) -> None:
    # gateway-score-penalty: the older releases' key; base-scor: a typo; [tuning]: a section he-ha never reads.
    path = write(
        tmp_path,
        "agent.conf",
        "[score]\nbase-score=3000\ngateway-score-penalty=1600\nbase-scor=2\n[tuning]\nx=1\ny=not-a-number\n",
    )
    with capture_logs() as logs:
        score = load_score_config(path)
    assert score.base_score == 3000
    assert score.network_score_penalty == 1600  # the default: the legacy key's value is not taken over
    (warning,) = ignored_warnings(logs)
    assert warning["log_level"] == "warning"
    assert warning["path"] == str(path)
    assert warning["keys"] == ["[score] base-scor", "[score] gateway-score-penalty", "[tuning] x", "[tuning] y"]
    assert warning["legacy"] == {
        "[score] gateway-score-penalty": "left from an older release (network-score-penalty replaced it); ignored"
    }
    assert warning["did_you_mean"] == {"[score] base-scor": "base-score"}


def test_agent_conf_without_leftovers_logs_nothing(tmp_path: Path) -> None:
    with capture_logs() as logs:
        load_score_config(write(tmp_path, "agent.conf", "[score]\nbase-score=3000\n"))
    assert logs == []


def test_agent_conf_wrong_value_beside_leftovers_names_file_key_value(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.conf", "[score]\ngateway-score-penalty=1600\nbase-score=lots\nold-knob=yes\n")
    with pytest.raises(
        ConfigError, match=r"agent.conf: key 'base-score' = 'lots': Input should be a valid integer"
    ) as caught:
        load_score_config(path)
    assert (caught.value.path, caught.value.key, caught.value.value) == (path, "base-score", "lots")
    with pytest.raises(ConfigError, match=r"key 'cpu-load-penalty-max' = '1.5'"):
        load_score_config(write(tmp_path, "agent.conf", "[score]\ngateway-score-penalty=x\ncpu-load-penalty-max=1.5\n"))


def test_default_section_applies_to_score_as_in_configparser(tmp_path: Path) -> None:
    path = write(
        tmp_path, "agent.conf", "[DEFAULT]\nbase-score=2500\nverbose=1\n[score]\nmgmt-bridge-score-penalty=500\n"
    )
    with capture_logs() as logs:
        score = load_score_config(path)
    assert (score.base_score, score.mgmt_bridge_score_penalty) == (2500, 500)
    (warning,) = ignored_warnings(logs)
    assert warning["keys"] == ["[DEFAULT] verbose"]
    # Without a [score] section nothing takes the [DEFAULT] keys: all of them are named.
    with capture_logs() as logs:
        assert load_score_config(write(tmp_path, "agent.conf", "[DEFAULT]\nbase-score=2500\n")) == ScoreConfig()
    assert ignored_warnings(logs)[0]["keys"] == ["[DEFAULT] base-score"]


def test_score_min_above_max_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.conf", "[score]\ncpu-load-penalty-min=0.9\ncpu-load-penalty-max=0.5\n")
    with pytest.raises(ConfigError, match="cpu-load-penalty-min is above cpu-load-penalty-max"):
        load_score_config(path)


def test_broken_ini_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "agent.conf", "base-score=1\n")
    with pytest.raises(ConfigError, match=r"agent.conf: not a valid INI file"):
        load_score_config(path)


def test_broker_conf_package_default(tmp_path: Path) -> None:
    text = (
        "[email]\nsmtp-server=localhost\nsmtp-port=25\nsmtp-timeout=10\n"
        "destination-emails=root@localhost,ops@example.com\nsource-email=root@localhost\n"
        "[notify]\nstate_transition=maintenance|start|stop|up|down\n"
    )
    broker = load_broker_config(write(tmp_path, "broker.conf", text))
    assert broker.email.smtp_port == 25
    assert broker.email.destinations == ["root@localhost", "ops@example.com"]
    assert broker.email.smtp_starttls is False
    assert broker.notify.state_transition == "maintenance|start|stop|up|down"


# A broker.conf as the original's tools leave it: set-shared-config puts a bare key in [default],
# [notify] may name other event types, [email] may carry keys of other versions or tools.
LEFTOVER_BROKER_CONF = """\
[email]
smtp-server = mail.example.org
smtp-port = 2525
smtp-timeout = 10
destination-emails = ops@example.org
source-email = ha@example.org
smtp-ssl = False

[notify]
state_transition = maintenance|start|stop|migrate|up|down
engine_health = bad

[default]
smtp-server = ignored.example.org
"""


def test_broker_conf_with_leftovers_loads_with_one_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "broker.conf", LEFTOVER_BROKER_CONF)
    with capture_logs() as logs:
        broker = load_broker_config(path)
    assert (broker.email.smtp_server, broker.email.smtp_port, broker.email.smtp_timeout) == (
        "mail.example.org",
        2525,
        10,
    )
    assert broker.notify.state_transition == "maintenance|start|stop|migrate|up|down"
    (warning,) = ignored_warnings(logs)
    assert warning["path"] == str(path)
    assert warning["keys"] == ["[default] smtp-server", "[email] smtp-ssl", "[notify] engine_health"]
    assert "legacy" not in warning


@pytest.mark.parametrize(
    ("replace", "by", "says"),
    [
        ("smtp-port = 2525", "smtp-port = smtp", r"key 'smtp-port' = 'smtp'"),
        ("smtp-timeout = 10", "smtp-timeout = ten", r"key 'smtp-timeout' = 'ten'"),
        (
            "state_transition = maintenance|start|stop|migrate|up|down",
            "state_transition = up|(down",
            r"key 'state_transition' = 'up\|\(down'.*regular expression",
        ),
    ],
)
def test_broker_conf_wrong_value_beside_leftovers_names_file_key_value(
    tmp_path: Path, replace: str, by: str, says: str
) -> None:
    path = write(tmp_path, "broker.conf", LEFTOVER_BROKER_CONF.replace(replace, by))
    with pytest.raises(ConfigError, match=rf"broker.conf: {says}"):
        load_broker_config(path)


def test_broker_conf_bad_regex_and_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'state_transition' = 'up\|\(down'.*regular expression"):
        load_broker_config(write(tmp_path, "broker.conf", "[notify]\nstate_transition=up|(down\n"))
    with pytest.raises(ConfigError, match=r"key 'smtp-port' = 'smtp'"):
        load_broker_config(write(tmp_path, "broker.conf", "[email]\nsmtp-port=smtp\n"))


def test_ha_conf_flags(tmp_path: Path) -> None:
    assert load_ha_conf(tmp_path / "missing").active is False
    both_false = load_ha_conf(write(tmp_path, "ha.conf", "local_maintenance=False\nlocal_maintenance_manual=False\n"))
    assert both_false.active is False
    manual = load_ha_conf(write(tmp_path, "ha.conf", "local_maintenance=False\nlocal_maintenance_manual=True\n"))
    assert manual.active is True
    with pytest.raises(ConfigError, match=r"key 'local_maintenance' = 'maybe'"):
        load_ha_conf(write(tmp_path, "ha.conf", "local_maintenance=maybe\n"))


@pytest.mark.parametrize(
    ("text", "expected"), [("True", True), ("yes", True), ("1", True), ("False", False), ("no", False), ("0", False)]
)
def test_to_bool(text: str, expected: bool) -> None:
    assert to_bool(text) is expected


def test_to_bool_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        to_bool("maybe")


def test_vm_conf_with_libvirt_xml(tmp_path: Path) -> None:
    xml = "<domain type='qemu'><name>HostedEngine</name></domain>"
    text = f"vmId=8f2ddd55\nmemSize=4096\nvmName=HostedEngine\nxmlBase64={base64.b64encode(xml.encode()).decode()}\n"
    vm = load_vm_conf(write(tmp_path, "vm.conf", text))
    assert (vm.vm_id, vm.mem_size_mib, vm.domain_xml) == ("8f2ddd55", 4096, xml)


def test_vm_conf_bad_xml_base64(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'xmlBase64' = '\*\*\*'"):
        load_vm_conf(write(tmp_path, "vm.conf", "vmId=a\nmemSize=1\nxmlBase64=***\n"))


def test_host_config_with_all_paths_overridden(tmp_path: Path) -> None:
    paths = ConfigPaths(
        hosted_engine_conf=write(tmp_path, "hosted-engine.conf", DEPLOYED_CONF),
        agent_conf=write(tmp_path, "agent.conf", "[score]\nbase-score=2000\n"),
        broker_conf=tmp_path / "absent-broker.conf",
        ha_conf=tmp_path / "absent-ha.conf",
    )
    config = load_host_config(paths)
    assert config.engine.host_id == 2
    assert config.score.base_score == 2000
    assert config.broker.email.smtp_server == "localhost"

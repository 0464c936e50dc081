"""`he-ha run` on files kept from the original: leftover keys and template fields start with a
warning; a wrong value beside them still stops start-up naming the file, the key and the value."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller as SmtpController

from he_ha.devcluster.cluster import Cluster, SupervisorProcess, state_of
from tests.integration.supervisor.test_lifecycle import Mailbox, free_port

pytestmark = pytest.mark.root

AGENT_CONF = "[score]\ncpu-load-score-penalty = 0\ngateway-score-penalty = 1600\n"
BROKER_CONF = (
    "[email]\nsmtp-server = 127.0.0.1\nsmtp-port = {port}\nsmtp-timeout = 10\nsmtp-ssl = False\n"
    "[notify]\nstate_transition = start\nengine_health = bad\n"
    "[default]\nsource-email = old@example.org\n"
)
TEMPLATE = "From: {source-email}\nTo: {destination-emails}\nSubject: {type} {detail} at {time} {foo}\n\nbody\n"


def log_events(supervisor: SupervisorProcess) -> list[dict[str, Any]]:
    events = []
    for line in supervisor.log_path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def test_leftover_keys_and_template_fields_start_with_warnings(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, libvirtd=False)
    host = cluster.hosts[0]
    mailbox, port = Mailbox(), free_port()
    smtp = SmtpController(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    (host.root / "agent.conf").write_text(AGENT_CONF)
    (host.root / "broker.conf").write_text(BROKER_CONF.format(port=port))
    template = host.root / "state_transition.txt"
    template.write_text(TEMPLATE)
    try:
        supervisor = host.start_supervisor("--notification-template", str(template))
        host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
        deadline = time.monotonic() + 30
        while not any("EngineDown-EngineStart" in subject for subject in mailbox.subjects):
            assert time.monotonic() < deadline, (mailbox.subjects, supervisor.log_tail())
            time.sleep(0.1)
    finally:
        smtp.stop()
    subject = " ".join(next(s for s in mailbox.subjects if "EngineDown-EngineStart" in s).split())  # unfolded
    # The detail may carry more transitions (coalesced): "state_transition A-B-C, X-Y at <time> {foo}".
    match = re.fullmatch(r"state_transition (.*EngineDown-EngineStart\S*) at (\S+) \{foo\}", subject)
    assert match is not None, subject
    assert abs(datetime.fromisoformat(match.group(2)).timestamp() - time.time()) < 120

    events = log_events(supervisor)
    ignored = {e["path"]: e for e in events if e["event"] == "ignoring configuration keys he-ha does not use"}
    assert set(ignored) == {str(host.root / "agent.conf"), str(host.root / "broker.conf")}
    agent = ignored[str(host.root / "agent.conf")]
    assert agent["level"] == "warning" and agent["keys"] == ["[score] gateway-score-penalty"]
    assert "left from an older release" in agent["legacy"]["[score] gateway-score-penalty"]
    broker = ignored[str(host.root / "broker.conf")]
    assert broker["keys"] == ["[default] source-email", "[email] smtp-ssl", "[notify] engine_health"]
    (fields,) = [e for e in events if e["event"].startswith("notification template uses fields he-ha does not know")]
    assert (fields["template"], fields["fields"]) == (str(template), ["{foo}"])
    supervisor.terminate()


def test_a_wrong_value_beside_leftovers_stops_start_up(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1, libvirtd=False)
    host = cluster.hosts[0]
    agent_conf = host.root / "agent.conf"
    agent_conf.write_text(AGENT_CONF + "base-score = lots\n")
    supervisor = host.start_supervisor()
    assert supervisor.process.wait(timeout=60) == 2
    assert f"{agent_conf}: key 'base-score' = 'lots': Input should be a valid integer" in supervisor.log_tail()

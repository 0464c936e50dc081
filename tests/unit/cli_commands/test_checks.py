"""--check-deployed and --check-liveliness against real HTTP servers on 127.0.0.1 (a
health page, error statuses, a server that drops the connection, one that never answers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli import cmd_checks
from tests.unit.cli_commands.conftest import HostFiles, Run, not_deployed

UP = "Hosted Engine is up!\n"
NOT_UP = "Hosted Engine is not up!\n"


def test_deployed(run: Run, host: HostFiles) -> None:
    result = run("--check-deployed")
    assert (result.status, result.out) == (0, "The hosted engine has been deployed\n")


def test_not_deployed(run: Run, host: HostFiles) -> None:
    not_deployed(host)
    assert (run("--check-deployed").status, run("--check-deployed").out) == (
        1,
        "The hosted engine has not been deployed\n",
    )
    host.hosted_engine_conf.unlink()
    result = run("--check-deployed")
    assert (result.status, result.out, result.err) == (1, "The hosted engine has not been deployed\n", "")


def test_unparsable_conf_is_not_deployed_and_says_why(run: Run, host: HostFiles) -> None:
    host.hosted_engine_conf.write_text("vmid=1\nthis line has no equals sign\n")
    result = run("--check-deployed")
    assert (result.status, result.out) == (1, "The hosted engine has not been deployed\n")
    assert "line 2 is not 'key=value'" in result.err


def test_check_deployed_ignores_arguments_as_the_original(run: Run, host: HostFiles) -> None:
    result = run("--check-deployed", "--quiet")
    assert (result.status, result.out, result.err) == (
        0,
        "The hosted engine has been deployed\n",
        "--check-deployed: ignored argument --quiet (the original hosted-engine ignores it too)\n",
    )


class Page:
    """A real HTTP server; ``answer`` decides the status and the body of each GET."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"DB Up!Welcome to Health Status!"
        self.paths: list[str] = []
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page.paths.append(self.path)
                if page.status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    return
                self.send_response(page.status)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def fqdn(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def page(host: HostFiles) -> Iterator[Page]:
    served = Page()
    served.thread.start()
    host.hosted_engine_conf.write_text(f"vmid=x\nfqdn={served.fqdn}\n")
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def test_engine_up(run: Run, page: Page) -> None:
    result = run("--check-liveliness")
    assert (result.status, result.out, result.err) == (0, UP, "")
    assert page.paths == ["/ovirt-engine/services/health"]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"DB Down!Welcome to Health Status!", "engine replied 'DB Down!Welcome to Health Status!'"),
        (200, b"Welcome\nDB Up!", "engine replied 'Welcome'"),  # only the first line counts
        (200, b"", "engine replied ''"),
        (500, b"DB Up!", "HTTP 500"),
        (404, b"DB Up!", "HTTP 404"),
        (0, b"", "RemoteDisconnected"),
    ],
)
def test_engine_not_up(run: Run, page: Page, status: int, body: bytes, reason: str) -> None:
    page.status, page.body = status, body
    result = run("--check-liveliness")
    assert (result.status, result.out) == (1, NOT_UP)
    assert reason in result.err and "Traceback" not in result.err


def test_nothing_listening(run: Run, host: HostFiles) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host.hosted_engine_conf.write_text(f"vmid=x\nfqdn=127.0.0.1:{port}\n")
    result = run("--check-liveliness")
    assert (result.status, result.out) == (1, NOT_UP)
    assert "Connection refused" in result.err


def test_no_answer_within_the_timeout(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmd_checks, "HEALTH_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        host.hosted_engine_conf.write_text(f"vmid=x\nfqdn=127.0.0.1:{silent.getsockname()[1]}\n")
        result = run("--check-liveliness")
    assert (result.status, result.out) == (1, NOT_UP)
    assert "timed out" in result.err


@pytest.mark.parametrize("fqdn", ["engine example", "[::1", "127.0.0.1:99999"])
def test_malformed_fqdn_is_not_up_without_a_traceback(run: Run, host: HostFiles, fqdn: str) -> None:
    host.hosted_engine_conf.write_text(f"vmid=x\nfqdn={fqdn}\n")
    result = run("--check-liveliness")
    assert (result.status, result.out) == (1, NOT_UP)
    assert "Traceback" not in result.err and result.err


def test_configuration_errors_exit_2(run: Run, host: HostFiles) -> None:
    host.hosted_engine_conf.write_text("vmid=x\nfqdn=\n")
    result = run("--check-liveliness")
    assert (result.status, result.out, result.err) == (
        2,
        "",
        "Incomplete configuration, missing FQDN of the hosted engine VM\n",
    )
    host.hosted_engine_conf.unlink()
    result = run("--check-liveliness")
    assert (result.status, result.out) == (2, "")
    assert result.err.startswith("Error reading the configuration file\n") and "file not found" in result.err


def test_liveliness_needs_no_vmid_and_ignores_arguments(run: Run, page: Page, host: HostFiles) -> None:
    host.hosted_engine_conf.write_text(f"fqdn={page.fqdn}\n")
    assert run("--check-liveliness").status == 0
    result = run("--check-liveliness", "--verbose")
    assert (result.status, result.err) == (
        0,
        "--check-liveliness: ignored argument --verbose (the original hosted-engine ignores it too)\n",
    )

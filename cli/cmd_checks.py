"""``--check-deployed`` and ``--check-liveliness`` (spec/hosted-engine-cli.md §9, §10).

``--check-liveliness`` is a contract: the HA daemons of the original ran it and read only
its exit status (0 up, 1 not up, 2 configuration error). It needs nothing but
hosted-engine.conf's ``fqdn`` (which may carry ``:port``) and the engine's health page:
``http://<fqdn>/ovirt-engine/services/health`` within 20 s, "up" iff the body's FIRST line
contains ``DB Up``. Unlike the original, no network failure leaks as a traceback: every
one means "not up", and the reason goes to stderr.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Sequence

from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, EXIT_OK, Command, deployed_vmid, error
from cli.environment import CliEnvironment
from he_ha.config import ConfigError, parse_flat_file

EXIT_CONFIG = 2
HEALTH_PATH = "/ovirt-engine/services/health"
HEALTH_TIMEOUT = 20.0
MAX_BODY = 64 * 1024  # the page is one short line; never read an endless body
UP_MARK = "DB Up"
NO_OPTIONS = Syntax(rules=Rules.FIXED)  # the original took no argument and ignored any


def _check_deployed(args: Sequence[str], env: CliEnvironment) -> int:
    NO_OPTIONS.parse("--check-deployed", args)
    try:
        vmid = deployed_vmid(env)
    except ConfigError as exc:  # a file we cannot read names no engine VM
        print("The hosted engine has not been deployed")
        error(str(exc))
        return EXIT_FAILED
    if vmid is None:
        print("The hosted engine has not been deployed")
        return EXIT_FAILED
    print("The hosted engine has been deployed")
    return EXIT_OK


def engine_health(fqdn: str, timeout: float) -> tuple[bool, str]:
    """(up, what the page said or why it could not be read)."""
    url = f"http://{fqdn}{HEALTH_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # http by contract
            body = response.read(MAX_BODY).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return False, f"{url}: {exc.reason}"
    except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, resets, bad URL
        return False, f"{url}: {type(exc).__name__}: {exc}"
    first_line = body.splitlines()[0] if body else ""
    return UP_MARK in first_line, f"{url}: engine replied {first_line[:200]!r}"


def _check_liveliness(args: Sequence[str], env: CliEnvironment) -> int:
    NO_OPTIONS.parse("--check-liveliness", args)
    try:
        fqdn = parse_flat_file(env.paths.hosted_engine_conf).get("fqdn", "")
    except ConfigError as exc:
        error("Error reading the configuration file")
        error(str(exc))
        return EXIT_CONFIG
    if not fqdn:
        error("Incomplete configuration, missing FQDN of the hosted engine VM")
        return EXIT_CONFIG
    up, said = engine_health(fqdn, HEALTH_TIMEOUT)
    if up:
        print("Hosted Engine is up!")
        return EXIT_OK
    print("Hosted Engine is not up!")
    error(said)
    return EXIT_FAILED


COMMANDS = (
    Command(
        "--check-deployed",
        "--check-deployed",
        "check whether the hosted engine has been deployed already",
        "--check-deployed",
        "    Report whether the hosted engine has been deployed on this host (hosted-engine.conf\n"
        "    names the engine VM). Exit status 0 if so, 1 if not.",
        _check_deployed,
    ),
    Command(
        "--check-liveliness",
        "--check-liveliness",
        "checks liveliness page of engine",
        "--check-liveliness",
        "    Check the liveliness (health) page of the engine at the FQDN in hosted-engine.conf.\n"
        "    Exit status 0 if the engine is up, 1 if not, 2 if the configuration is unusable.",
        _check_liveliness,
    ),
)

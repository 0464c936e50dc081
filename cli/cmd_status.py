"""``--vm-status`` (the original's, plus ``--watch``) and ``--explain`` (ours).

Flow of ``--vm-status`` (spec/hosted-engine-cli.md §3.1): deployed? (else the failed-deploy
check, exit 2, or "You must run deploy first", exit 1); vm.conf readable? (else the
original's three lines, exit 1); then the status from the local daemon. A daemon that does
not answer is the original's dead broker: its lines on stderr, exit 1. ``--from-storage``
reads the whiteboard from shared storage instead (every host stale), daemon or not. Other
arguments are ignored as by the original, with one stderr line saying so. Fixed quirks: with
``--json`` stdout holds one valid JSON document on every path (``{"exception": ...}`` on
failure); zero host slots in text mode still exit 1 but say why; unreadable slots are shown
(text) or named on stderr (JSON).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cli.arguments import Rules, Syntax, UsageError
from cli.command import (
    CANNOT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    NOT_DEPLOYED,
    Command,
    deployed_vmid,
    error,
)
from cli.status_fast import remember_checked_conf
from cli.status_render import (
    BROKER_FAILED,
    FAILED_DEPLOY,
    RETRIEVE_FAILED,
    exception_json,
    readable_hosts,
    render_json,
    render_text,
    skipped_slot_notes,
    unreadable_hosts,
)
from cli.status_source import (
    MAX_DECISIONS,
    Fetched,
    SourceError,
    decisions_from_daemon,
    failed_deploy_leftover,
    fetch_status,
)
from cli.vm_conf_check import vm_conf_missing

if TYPE_CHECKING:
    from cli.environment import CliEnvironment

EXIT_FAILED_DEPLOY = 2
FROM_STORAGE = "--from-storage"
VM_STATUS_SYNTAX = Syntax(flags=("--json", "--watch", FROM_STORAGE), valued=("--watch",), rules=Rules.FIXED)
EXPLAIN_SYNTAX = Syntax(flags=("--json",), valued=("--limit",))
DEFAULT_WATCH = 2.0
DEFAULT_EXPLAIN_LIMIT = 5
CLEAR_SCREEN = "\x1b[H\x1b[2J"


class Reporter:
    """Prints failures where the mode wants them: text mode keeps the original's stream;
    JSON mode puts ``{"exception": ...}`` on stdout (so it always parses) and the words on stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode

    def fail(self, lines: Sequence[str], *, stdout: bool = False, code: int = EXIT_FAILED) -> int:
        if self.json_mode:
            print(exception_json(" ".join(text for text in lines if text)))
        for text in lines:
            print(text, file=sys.stdout if stdout and not self.json_mode else sys.stderr)
        return code


# --- --vm-status -------------------------------------------------------------------------------


def _vm_status(args: Sequence[str], env: CliEnvironment) -> int:
    report = Reporter("--json" in args)  # the original's rule: any argument equal to --json
    try:
        options = VM_STATUS_SYNTAX.parse("--vm-status", args).options
        interval = _watch_interval(options.get("--watch"))
    except UsageError as exc:
        return report.fail([str(exc)])
    refused = _preconditions(env, report)
    if refused is not None:
        return refused
    from_storage = FROM_STORAGE in options
    if interval is None:
        return _show(env, report, from_storage)
    return _watch(env, report, interval, from_storage)


def _watch_interval(option: str | bool | None) -> float | None:
    if option is None:
        return None
    if option is True:
        return DEFAULT_WATCH
    try:
        seconds = float(str(option))
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--vm-status: --watch takes a number of seconds above 0, e.g. --watch=5; got {option!r}")
    return seconds


def _preconditions(env: CliEnvironment, report: Reporter) -> int | None:
    """None when deployed with a readable vm.conf; else the exit status, after saying why.
    A hosted-engine.conf that passes is remembered for the lean path (cli/status_fast.py)."""
    from he_ha.config import ConfigError

    try:
        content = env.paths.hosted_engine_conf.read_bytes()
    except OSError:
        content = None  # the checks below say what is wrong with it
    try:
        vmid = deployed_vmid(env)
        conf = env.engine_conf() if vmid is not None else None
    except ConfigError as exc:
        return report.fail([str(exc)])
    if conf is None:
        leftover, why_unknown = failed_deploy_leftover(env.libvirt_uri)
        if why_unknown is not None:
            error(why_unknown)
        if leftover:
            return report.fail([FAILED_DEPLOY], stdout=True, code=EXIT_FAILED_DEPLOY)
        return report.fail([NOT_DEPLOYED], stdout=True)
    missing = vm_conf_missing(env, conf.vm_conf)
    if missing is not None:
        return report.fail(missing, stdout=True)
    if content is not None:
        remember_checked_conf(env.paths.hosted_engine_conf, content, conf.vm_conf, env.run_dir)
    return None


def _show(env: CliEnvironment, report: Reporter, from_storage: bool) -> int:
    try:
        fetched = fetch_status(env, from_storage=from_storage)
    except SourceError as exc:
        return source_failed(exc, report, from_storage)
    return emit(*shown(fetched, report.json_mode))


def source_failed(exc: SourceError, report: Reporter, from_storage: bool) -> int:
    """The status source gave nothing: the original's dead-broker lines (daemon), or why (storage)."""
    if from_storage:
        return report.fail([str(exc)])
    if report.json_mode:
        print(exception_json(f"{exc}\n{CANNOT_CONNECT}"))
    for text in (str(exc), CANNOT_CONNECT, RETRIEVE_FAILED, BROKER_FAILED):
        error(text)
    return EXIT_FAILED


Output = list[tuple[bool, str]]  # (to stderr, text with its line ends), in the order printed


def shown(fetched: Fetched, json_mode: bool) -> tuple[int, Output]:
    """What a fetched status prints, and the exit status. Computed whole before anything is
    printed, so that the lean path can hand a status it cannot render to the full path."""
    output = _notes(fetched)
    status = fetched.status
    if json_mode:
        output.append((False, render_json(status) + "\n"))
        output.extend((True, text + "\n") for text in skipped_slot_notes(status))
        return EXIT_OK, output
    output.append((False, render_text(status)))
    if readable_hosts(status):
        return EXIT_OK, output
    # The original exited 1 here with nothing said (quirk 2); the status stays, the silence goes.
    unreadable = len(unreadable_hosts(status))
    if unreadable:
        why = f"he-ha: no host slot on the whiteboard can be read ({unreadable} unreadable, shown above)"
    elif fetched.storage_note is None and status.whiteboard_age is None:
        why = "he-ha: the he-ha daemon has not read the whiteboard yet (starting?); try again in a few seconds"
    else:
        why = "he-ha: no host has published its status on the whiteboard yet"
    output.append((True, why + "\n"))
    return EXIT_FAILED, output


def emit(code: int, output: Output) -> int:
    for to_stderr, text in output:
        print(text, end="", file=sys.stderr if to_stderr else sys.stdout)
    return code


def _notes(fetched: Fetched) -> Output:
    """One stderr line for each reason to distrust what is shown."""
    status = fetched.status
    notes = []
    if fetched.storage_note is not None:
        notes.append(f"he-ha: {fetched.storage_note}")
    if status.storage_error is not None:
        age = "" if status.whiteboard_age is None else f"; the status shown is {status.whiteboard_age:.0f} s old"
        notes.append(f"he-ha: the daemon's last whiteboard read failed: {status.storage_error}{age}")
    if status.global_maintenance is None:
        notes.append("he-ha: the global maintenance flag (whiteboard slot 0) cannot be read; shown as off")
    return [(True, text + "\n") for text in notes]


def _watch(env: CliEnvironment, report: Reporter, interval: float, from_storage: bool) -> int:
    """Redraw (text) or print one JSON line per refresh until Ctrl-C, which exits 0."""
    try:
        while True:
            if not report.json_mode:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                print(f"{CLEAR_SCREEN}Every {interval:g} s: hosted-engine --vm-status    {stamp}    (Ctrl-C to stop)")
            _show(env, report, from_storage)
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return EXIT_OK


# --- --explain ---------------------------------------------------------------------------------


def _explain(args: Sequence[str], env: CliEnvironment) -> int:
    # Here, not at the top: it loads the state machine's code, which --vm-status never needs.
    from cli.status_explain import UnreadableDecision, newest, raw_entries, render

    report = Reporter("--json" in args)
    try:
        options = EXPLAIN_SYNTAX.parse("--explain", args).options
        limit = _limit(options.get("--limit"))
    except UsageError as exc:
        return report.fail([str(exc)])
    try:
        entries = decisions_from_daemon(env)
    except SourceError as exc:
        return report.fail([str(exc), CANNOT_CONNECT])
    shown = newest(entries, limit)
    if report.json_mode:
        print(json.dumps({"decisions": raw_entries(shown)}))
        return EXIT_OK
    if not shown:
        print("The he-ha daemon has not recorded a decision yet.")
        return EXIT_OK
    try:
        text = render(shown)
    except UnreadableDecision as exc:
        return report.fail([str(exc)])
    host = shown[-1].newest.get("record", {}).get("host_id", "?")
    count = "decision" if len(shown) == 1 else f"{len(shown)} decisions"
    print(f"The latest {count} of the he-ha daemon of host id {host}, newest last:\n")
    print(text, end="")
    return EXIT_OK


def _limit(option: str | bool | None) -> int:
    if option is None:
        return DEFAULT_EXPLAIN_LIMIT
    text = str(option)
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_DECISIONS):
        raise UsageError(f"--explain: --limit takes a whole number from 1 to {MAX_DECISIONS}; got {text!r}")
    return int(text)


VM_STATUS_HELP = """\
    Report the status of the engine VM and of every HA host, as the he-ha
    daemon of this host sees it. If the daemon does not answer, the command
    says so and exits 1, as the original did when its broker was down.
    Besides the original fields, each host shows its score breakdown (base,
    each penalty and its reason), its HA state and sanlock's view of it.
    Available options:
        --json
            produce the output in JSON format, machine readable.
        --watch[=<seconds>]
            redraw the status every <seconds> (default 2) until Ctrl-C;
            with --json, print one JSON line per refresh.
        --from-storage
            read the status straight from the metadata volume on shared
            storage instead of asking the daemon (works while it is down);
            every host is then shown as not up-to-date.
"""

EXPLAIN_HELP = """\
    Explain the latest decisions of the he-ha daemon of this host: when it
    decided, the state change, the rule and why it applied, what woke it,
    the actions taken, its score breakdown, the best engine and the best
    peer. Answers "why is the engine VM here, and why not there".
    Repeats of one decision count once.
    Available options:
        --limit=<n>
            show the latest <n> decisions (default 5, at most 1000).
        --json
            print the decision records behind them as JSON.
"""

COMMANDS = (
    Command(
        "--vm-status",
        "--vm-status [--json] [--watch[=<seconds>]] [--from-storage]",
        "VM status according to the HA daemon",
        "--vm-status [--json] [--watch[=<seconds>]] [--from-storage]",
        VM_STATUS_HELP,
        _vm_status,
    ),
    Command(
        "--explain",
        "--explain [--limit=<n>] [--json]",
        "why the HA daemon did what it did: its latest decisions",
        "--explain [--limit=<n>] [--json]",
        EXPLAIN_HELP,
        _explain,
    ),
)

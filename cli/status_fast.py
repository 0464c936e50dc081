"""The lean path of ``hosted-engine --vm-status [--json]`` (issue 16 item 2): cockpit's
hosted-engine page runs it every second while the page is open.

The full path (cli/cmd_status.py) validates hosted-engine.conf with the configuration models
and the daemon's answer with the admin contract's models, both pydantic: importing them costs
more than everything else the command does. This path loads neither. It runs the same flow with
the same code (``Reporter``, ``shown``, ``source_failed`` and the renderers of
cli/status_render.py), replacing only the two validations:

- hosted-engine.conf: the full path, once it has found a hosted-engine.conf deployed and valid,
  records the SHA-256 of its exact content in ``<run dir>/vm-status-conf.json`` together with
  what the check found (the vm.conf path) and which code checked it (the he-ha version and the
  size and mtime of the files that hold the checks). This path goes on only when the file's
  content, its path and the code are exactly those recorded; otherwise (no record, the file
  changed, he-ha upgraded, the run directory not writable) it hands over to the full path,
  which checks the file again and records it. A record therefore never says more than "the
  full path accepted exactly this content".
- the daemon's answer: read through ``status_view`` (attribute access to the JSON, as the
  daemon's ``model_dump`` of the same contract wrote it). An answer the renderers cannot read
  (a daemon older than a field) goes to the full path, which validates it, fills in defaults
  or says what does not parse.

Anything else than exactly ``--vm-status`` or ``--vm-status --json`` (``--watch``,
``--from-storage``, ignored arguments, ``--help``) takes the full path. A daemon that does not
answer or answers an error is reported here, by the full path's own ``source_failed``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cli.environment import admin_socket_path, hosted_engine_conf_path, run_dir_path

RECORD = "vm-status-conf.json"  # in the daemon's run directory
# The modules whose code decides whether a hosted-engine.conf passes --vm-status's checks.
CHECKING_MODULES = ("he_ha.config", "cli.command", "cli.cmd_status")


def vm_status_fast(args: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """The exit status after printing what the full path would print; None when this path
    cannot tell (the caller then runs the full path, which has printed nothing yet)."""
    if list(args) not in ([], ["--json"]):
        return None
    conf = hosted_engine_conf_path(environ)
    vm_conf = checked_vm_conf(conf, run_dir_path(environ))
    if vm_conf is None:
        return None
    from cli.cmd_status import Reporter, emit, shown, source_failed
    from cli.status_source import DAEMON_TIMEOUT, Fetched, SourceError, daemon_get, status_view
    from cli.vm_conf_check import vm_conf_readable

    if not vm_conf_readable(vm_conf):
        return None  # the full path says so, in the original's words
    report = Reporter(json_mode=bool(args))
    try:
        answer = daemon_get(admin_socket_path(environ), "/v1/status", DAEMON_TIMEOUT)
    except SourceError as exc:
        return source_failed(exc, report, from_storage=False)
    try:
        outcome = shown(Fetched(status_view(answer), None), report.json_mode)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # not what this version's daemon sends: the full path validates it
    return emit(*outcome)


def _code_stamp() -> list[Any]:
    """Which code checked: he-ha's version and each checking module's file size and mtime."""
    import importlib.util

    from he_ha import __version__

    stamp: list[Any] = [__version__]
    for name in CHECKING_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        info = os.stat(origin) if origin else None
        stamp.append([origin, info.st_size, info.st_mtime_ns] if info else None)
    return stamp


def _record(conf: Path, content: bytes, vm_conf: Path | str) -> dict[str, Any]:
    import hashlib

    return {
        "code": _code_stamp(),
        "conf": str(conf),
        "sha256": hashlib.sha256(content).hexdigest(),
        "vm_conf": str(vm_conf),
    }


def checked_vm_conf(conf: Path, run_dir: Path) -> Path | None:
    """The vm.conf path the full path found in ``conf``, if it accepted exactly the content
    the file holds now, with the code installed now; else None."""
    try:
        content = conf.read_bytes()
        record = json.loads((run_dir / RECORD).read_bytes())
        vm_conf = record["vm_conf"]
    except (OSError, ValueError, TypeError, KeyError):  # no record, unreadable
        return None
    if not isinstance(vm_conf, str) or record != _record(conf, content, vm_conf):
        return None
    return Path(vm_conf)


def remember_checked_conf(conf: Path, content: bytes, vm_conf: Path, run_dir: Path) -> None:
    """Called by the full path once ``conf`` has passed its checks, with the content it read
    before checking. Written only when the file still holds that content and the record
    differs; nothing when the run directory does not exist or cannot be written (the full
    path then always runs)."""
    try:
        if not run_dir.is_dir() or conf.read_bytes() != content:
            return
        record = _record(conf, content, vm_conf)
        path = run_dir / RECORD
        try:
            if json.loads(path.read_bytes()) == record:
                return
        except (OSError, ValueError):
            pass
        from he_ha.atomicfile import write_atomically

        write_atomically(path, json.dumps(record))
    except (OSError, ValueError):
        return

"""Logging set-up: one pipeline for he-ha's structlog events AND every library's stdlib records.

structlog hands its events to the standard ``logging`` module (``ProcessorFormatter``), so
asyncio's, aiohttp's, aiosmtplib's and any other library's records are rendered by the same
processors: ``--log-json`` is JSON for every line, and every line names its logger and
he-ha's version. Where they go:

- **journal** (``--log-target journal``, or ``auto`` when stderr is connected to journald,
  i.e. ``$JOURNAL_STREAM`` names it, as systemd sets it for ``StandardError=journal``): each
  record is one datagram of journald's native protocol (he_ha/journal.py): PRIORITY from the
  level, no timestamp of ours (journald's is the only one), the event's key-value pairs as
  journal fields, a traceback kept in its entry. Chosen over ``<N>``-prefixed stderr lines
  because those carry only the priority, and a multi-line record splits into entries of which
  only the first has it.
- **stderr** (outside systemd, or with ``--log-json``): one line per record, ISO timestamp (UTC),
  readable ``key=value`` or JSON.
- an optional **file** besides either (``--log-file``, the original agent's
  /var/log/ovirt-hosted-engine-ha/agent.log), rotated at midnight, 7 kept, as the
  original's log configuration did.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog

from he_ha import __version__
from he_ha.journal import JOURNAL_SOCKET, JournalHandler, journal_fields, stderr_is_journal

LogTarget = Literal["auto", "journal", "stderr"]
LOG_TARGETS: tuple[LogTarget, ...] = ("auto", "journal", "stderr")
DEFAULT_LOG_FILE = Path("/var/log/ovirt-hosted-engine-ha/agent.log")  # the original agent's
LOG_FILE_KEEP = 7  # days, as the original's agent-log.conf

_OURS = "_he_ha_handler"  # marks the handlers installed here: replaced on a new call, nobody else's


def add_version(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("version", __version__)
    return event


def _shared_processors() -> list[structlog.types.Processor]:
    """What every record gets, whether it comes from structlog or from a stdlib logger."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_version,
        structlog.processors.format_exc_info,
    ]


def _line_renderer(json: bool) -> list[structlog.types.Processor]:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return [structlog.processors.TimeStamper(fmt="iso", utc=True), renderer]


def _strip_message(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["event"] = str(event.get("event", "")).rstrip()  # warnings' text ends in a line feed
    return event


def _formatter(renderers: list[structlog.types.Processor]) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_strip_message, *_shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (pytest swaps it per test)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(
    *,
    json: bool = False,
    level: str = "INFO",
    target: LogTarget = "auto",
    log_file: Path | None = None,
    log_file_keep: int = LOG_FILE_KEEP,
    journal_socket: Path = JOURNAL_SOCKET,
    environ: MutableMapping[str, str] | None = None,
) -> LogTarget:
    """Route structlog and the standard library's logging through one pipeline; returns the
    target in use (``auto`` resolved). ``journal_socket`` and ``environ``: for tests."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    if target not in LOG_TARGETS:
        raise ValueError(f"unknown log target {target!r}; use {', '.join(LOG_TARGETS)}")
    if target == "auto":
        # --log-json asks for JSON lines: on stderr, whoever reads it.
        env = os.environ if environ is None else environ
        target = "journal" if not json and stderr_is_journal(env) else "stderr"
    main: logging.Handler = JournalHandler(journal_socket) if target == "journal" else _StderrHandler()
    main.setFormatter(_formatter([journal_fields] if target == "journal" else _line_renderer(json)))
    handlers = [main]
    if log_file is not None:
        handlers.append(_file_handler(log_file, log_file_keep, json))
    _install(handlers, numeric)
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    return target


def _file_handler(path: Path, keep: int, json: bool) -> logging.Handler:
    import logging.handlers  # here: only --log-file uses it, which is off by default (idle RSS, issue 16 item 3)

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.TimedRotatingFileHandler(path, when="midnight", backupCount=keep, encoding="utf-8")
    handler.setFormatter(_formatter(_line_renderer(json)))
    return handler


def _install(handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(level)
    # warnings.warn() from libraries: through the same pipeline. Re-armed, not just armed: a
    # warnings.catch_warnings() that ended since an earlier call put its own showwarning back,
    # and captureWarnings(True) alone does nothing once it has been called.
    logging.captureWarnings(False)
    logging.captureWarnings(True)

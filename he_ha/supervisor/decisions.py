"""The decision log: every tick's replayable entry, in memory (a ring) and optionally a file.

Entries are ``he_ha.fsm.log_entry`` objects plus a ``meta`` object (tick number, wall
time, what woke the ticker and when, when the tick started), one JSON object per line.
The ring keeps each entry as that line: 3.5 KiB of text instead of ~19 KiB of dicts, lists
and numbers, 1.9 MiB of the supervisor's idle RSS once the default ring of 100 is full
(issue 16 item 3); ``newest`` parses the lines it returns (an admin request, not a tick).
The file is appended by a thread of its own, so a slow disk never holds up a tick; if the
thread falls behind by ``MAX_QUEUED`` entries, new entries are dropped and counted. A file
renamed away (logrotate: packaging/logrotate/he-ha) is followed by a new one at the path
before the next entry.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

import structlog

from he_ha.fsm import DecisionRecord, FsmState, Observation, log_entry

log = structlog.get_logger(__name__)

MAX_QUEUED = 1000


class DecisionLog:
    def __init__(self, path: Path | None, ring: int) -> None:
        if ring < 1:
            raise ValueError(f"decision ring must hold at least 1 entry, got {ring}")
        self.path = path
        self._ring: deque[str] = deque(maxlen=ring)
        self.dropped = 0
        self._queue: queue.Queue[str | None] = queue.Queue(MAX_QUEUED)  # None: stop
        self._thread: threading.Thread | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a").close()  # fail at start-up, not in the writer, if it cannot be written
            self._thread = threading.Thread(target=self._write, args=(path,), name="decision-log", daemon=True)
            self._thread.start()

    def decided(self, before: FsmState, obs: Observation, record: DecisionRecord, meta: dict[str, Any]) -> None:
        """A step's decision (env.DecisionSink): its replayable entry plus ``meta``."""
        entry: dict[str, Any] = log_entry(before, obs, record)
        entry["meta"] = meta
        self.add(entry)

    def add(self, entry: dict[str, Any]) -> None:
        try:
            line = json.dumps(entry, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            log.error("decision log entry is not JSON; not logged", error=str(exc))
            return
        self._ring.append(line)
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("decision log writer behind; entries dropped", path=str(self.path), dropped=self.dropped)

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` entries, newest last."""
        if limit <= 0:
            return []
        return [json.loads(line) for line in list(self._ring)[-limit:]]

    def close(self, timeout: float = 2.0) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("decision log writer did not catch up; the last entries are lost", path=str(self.path))
            return
        self._thread.join(timeout)

    def _write(self, path: Path) -> None:
        out: TextIO = path.open("a", encoding="utf-8")
        try:
            while True:
                line = self._queue.get()
                if line is None:
                    return
                try:
                    out = _reopened_if_moved(out, path)
                    out.write(line + "\n")
                    out.flush()
                except OSError as exc:
                    log.error("decision log write failed", path=str(path), error=str(exc))
        finally:
            out.close()


def _reopened_if_moved(out: TextIO, path: Path) -> TextIO:
    """``out``, or a new file at ``path`` when the open one is no longer there (logrotate
    renamed it, or someone deleted it): rotation needs no signal and loses no entry."""
    try:
        st = os.stat(path)
        current = os.fstat(out.fileno())
        if (st.st_dev, st.st_ino) == (current.st_dev, current.st_ino):
            return out
    except FileNotFoundError:
        pass
    out.close()
    return path.open("a", encoding="utf-8")

"""A wall clock of one process tree that can be moved while it runs (libfaketime).

``WallClock(directory)`` keeps an offset file; ``env()`` is the environment that makes a
process (and its children) read CLOCK_REALTIME through libfaketime, shifted by the offset in
that file, re-read on every call; the monotonic clocks stay real. ``jump(seconds)`` sets the
offset relative to the real clock, so ``jump(3600)`` then ``jump(0)`` is a jump of +1 h and
then one of -1 h, as NTP stepping a host's clock or an administrator's ``date -s`` would do.
Only the processes started with ``env()`` see it: the rest of the machine keeps its clock.

Needs Debian's ``libfaketime`` (scripts/apt-packages.txt); a missing library is an error
naming the package.
"""

from __future__ import annotations

import os
from pathlib import Path

LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


class WallClock:
    def __init__(self, directory: Path) -> None:
        if not LIBRARY.exists():
            raise AssertionError(f"{LIBRARY} is missing (Debian package libfaketime)")
        directory.mkdir(parents=True, exist_ok=True)
        self.offset_file = directory / "faketime-offset"
        self.offset = 0.0
        self.jump(0)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBRARY),
            "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
            "FAKETIME_NO_CACHE": "1",  # read the offset file at every clock call
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def jump(self, seconds: float) -> None:
        """From now on the processes' wall clock reads the real time + ``seconds``."""
        tmp = self.offset_file.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+.0f}\n")
        os.replace(tmp, self.offset_file)  # never a half-written offset
        self.offset = seconds

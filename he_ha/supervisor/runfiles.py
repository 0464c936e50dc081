"""Small state files in the run directory (keeper record, fence target)."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a reader (a restarted supervisor, sanlock's
    fence command) sees the old content or the new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    os.replace(scratch, path)

"""Small state files in the run directory (keeper record, fence target)."""

from __future__ import annotations

from pathlib import Path

from he_ha.atomicfile import write_atomically


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating the run directory if needed: a reader
    (a restarted supervisor, sanlock's fence command) never sees a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)

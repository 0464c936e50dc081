"""Replace a small file so that a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Blocking: write ``text`` to a scratch file beside ``path``, then rename it over ``path``."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)

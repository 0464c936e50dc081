"""Running ``ip`` for the namespace/bridge tests."""

from __future__ import annotations

import subprocess


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

"""Commands the tests need from Debian packages that scripts/setup.sh installs. A missing one
is a test failure naming the package, never a skip: CI runs on a machine set up by setup.sh."""

from __future__ import annotations

import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    """The path of command ``name``; the test fails if it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {package}; scripts/setup.sh installs it)")
    return path

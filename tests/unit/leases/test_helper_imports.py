"""The helper processes stay small (issue 16 item 3): the lease worker and the lease keeper
import neither structlog nor asyncio, pydantic, aiohttp or libvirt (each would cost several
MiB of RSS in a process that lives as long as the host). bench/bench_supervisor.py measures
their RSS; this only guards what they import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("structlog", "asyncio", "pydantic", "aiohttp", "libvirt", "yaml", "he_ha.config")


@pytest.mark.parametrize("module", ["he_ha.lease.worker", "he_ha.lease.keeper"])
def test_a_helper_process_module_loads_no_heavy_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {HEAVY!r} or n in {HEAVY!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_the_lazy_logger_logs_through_structlog(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from he_ha.lazylog import get_logger

    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
    )
    try:
        get_logger("t").error("lease worker: unreadable request", error="bad json")
    finally:
        structlog.configure(**saved)
    assert capsys.readouterr().out == "event='lease worker: unreadable request' error='bad json'\n"

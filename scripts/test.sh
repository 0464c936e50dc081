#!/usr/bin/env bash
# The README's test command: set up this machine if needed, then the gates and every test tier.
# Without arguments: ruff (lint and format check) and mypy on the whole tree first
# (pyproject.toml configures them), then every tier side by side (pytest-xdist, 8 workers on
# any machine: most tests wait on sanlock's host-dead times and timeouts, not on the CPU;
# tests/conftest.py schedules them: long tests first, never two on one worker, at most three
# CPU-bound simulator slices at once while other work waits, files with an expensive module
# fixture on one worker). With arguments they are pytest's own:
# `bash scripts/test.sh tests/unit -x` runs those tests one after another, without the gates.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup.sh"
cd "$repo"
if [ "$#" -eq 0 ]; then
    echo "gates: ruff check, ruff format --check, mypy"
    "$repo/.venv/bin/ruff" check he_ha cli tests bench packaging
    "$repo/.venv/bin/ruff" format --check he_ha cli tests bench packaging
    "$repo/.venv/bin/mypy"
    set -- -n 8 --durations=30
fi
exec "$repo/.venv/bin/python" -m pytest "$@"

#!/usr/bin/env bash
# The README's test command: set up this machine if needed, then the gates and every test tier.
# Without arguments: ruff (lint and format check) and mypy on the whole tree first
# (pyproject.toml configures them), then the tiers side by side (pytest-xdist, 5 workers: most tests wait on sanlock's
# host-dead times and timeouts, not on the CPU; tests/conftest.py keeps each file on one worker
# and the QEMU guests to two at a time). With arguments they are pytest's own:
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
    set -- -n 5 --dist loadgroup --durations=30
fi
exec "$repo/.venv/bin/python" -m pytest "$@"

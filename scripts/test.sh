#!/usr/bin/env bash
# The README's test command: set up this machine if needed, then run every test tier.
# Without arguments the tiers run side by side (pytest-xdist, 5 workers: most tests wait on
# sanlock's host-dead times and timeouts, not on the CPU; tests/conftest.py keeps each file on
# one worker and the CPU-bound tests from running two at a time). With arguments they are
# pytest's own: `bash scripts/test.sh tests/unit -x` runs those tests one after another.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup.sh"
cd "$repo"
if [ "$#" -eq 0 ]; then
    set -- -n 5 --dist loadgroup --durations=30
fi
exec "$repo/.venv/bin/python" -m pytest "$@"

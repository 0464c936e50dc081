#!/usr/bin/env bash
# The README's main command: set up this machine if needed, then run the local cluster demo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/setup.sh"
cd "$repo"
exec "$repo/.venv/bin/he-ha" demo "$@"

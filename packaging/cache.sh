# Sourced by packaging/build.sh and packaging/systemd-test/rootfs.sh: where their downloaded
# and built inputs are cached. Outside the checkout, so that a fresh clone on the same machine
# (CI clones afresh each run) does not download and build them again; the test cluster's
# memlock shim is cached in the same place (he_ha/devcluster/sanlockd.py). Each entry is keyed
# by its inputs and by the ISO week, so the distribution's and PyPI's updates reach the
# packages within a week; entries older than 15 days (never a current week's) are removed.
#   HE_HA_CACHE_DIR   overrides the place (default: ${XDG_CACHE_HOME:-~/.cache}/he-ha)
cache="${HE_HA_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/var/tmp}/.cache}/he-ha}/packaging"
cache_week=$(date -u +%G-W%V)
mkdir -p "$cache"
find "$cache" -mindepth 1 -maxdepth 1 -mtime +15 -exec rm -rf {} + 2>/dev/null || true

#!/usr/bin/env bash
# A Debian 12 root file system with systemd as its init, for the booted-systemd test
# (tests/packaging/test_systemd_boot.py boots a copy of it with systemd-nspawn and installs
# the .deb into the copy). Built with mmdebstrap from the distribution's packages and cached
# (packaging/cache.sh, as packaging/build.sh caches its wheels), keyed by this script's
# content and the week: a rerun is instant, an edit of the package list rebuilds it.
#   bash packaging/systemd-test/rootfs.sh        # prints the root directory
# Needs root (mmdebstrap's root mode) and the Debian mirror.
set -euo pipefail
umask 022
repo=$(cd "$(dirname "$0")/../.." && pwd)
# systemd + dbus: the init and the bus systemd-run --scope talks to; the .deb's Depends
# (python3, python3-libvirt, python3-sanlock, sanlock) so `dpkg -i` needs no network;
# libvirt-daemon: a libvirtd serving the test driver as the host's hypervisor; procps and
# iproute2 for looking around.
packages=systemd,systemd-sysv,dbus,python3,python3-libvirt,python3-sanlock,sanlock,libvirt-daemon,libvirt-clients,procps,iproute2
# shellcheck source=packaging/cache.sh
source "$repo/packaging/cache.sh"
key=$( { cat "$0"; echo "$packages"; echo "$cache_week"; } | sha256sum | cut -c1-16)
root="$cache/systemd-rootfs-$key"
if [ ! -d "$root" ]; then
    tmp=$(mktemp -d "$cache/.rootfs.XXXXXX")
    chmod 0755 "$tmp"
    log="$tmp.log"
    if ! mmdebstrap --variant=minbase --include="$packages" bookworm "$tmp/root" >"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$tmp" "$log"
        echo "rootfs: mmdebstrap failed (log above)" >&2
        exit 1
    fi
    rm -f "$log"
    # a machine id of its own for each booted copy (systemd makes one at first boot)
    : > "$tmp/root/etc/machine-id"
    mv -T "$tmp/root" "$root" 2>/dev/null || rm -rf "$tmp/root"  # another build won: keep its copy
    rmdir "$tmp"
fi
echo "$root"

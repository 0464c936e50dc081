#!/usr/bin/env bash
# Idempotent set-up on a Debian 12 machine: apt packages, then a venv in .venv with
# he-ha installed editable and Debian's sanlock binding (not on PyPI) linked in.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv="$repo/.venv"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mapfile -t packages < <(grep -v '^\s*#' "$repo/scripts/apt-packages.txt" | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing apt packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's QEMU driver wants these even for libvirt's embedded (no-daemon) mode.
getent group kvm >/dev/null || as_root groupadd -r kvm
getent group libvirt-qemu >/dev/null || as_root groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    as_root useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# Debian's python3 matches the ABI of python3-sanlock (cpython-311).
if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    /usr/bin/python3 -m venv "$venv"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for so in /usr/lib/python3/dist-packages/sanlock*.so; do
    ln -sf "$so" "$site/$(basename "$so")"
done

stamp="$venv/.he-ha-installed"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    echo "setup: installing he-ha and its test dependencies into $venv"
    log="$venv/pip-install.log"
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e "$repo[test]"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi
"$venv/bin/python" -c 'import sanlock, libvirt, he_ha' || { echo "setup: imports failed" >&2; exit 1; }

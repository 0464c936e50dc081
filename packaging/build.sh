#!/usr/bin/env bash
# Build he-ha's Debian 12 package (dpkg-deb) and EL9 RPM (rpmbuild) on this Debian machine.
#   bash packaging/build.sh [OUTDIR]        # default OUTDIR: build/packages
# How the Python stack ships (docs/systemd.md): a private environment /usr/lib/he-ha (a venv
# whose bin/python links to the distribution's Python 3.11) with he-ha and its PyPI
# dependencies vendored; the deb uses Debian's python3-libvirt and python3-sanlock through
# system site packages, the RPM vendors both bindings for Python 3.11 (EL9's are for 3.9).
# The vendored dependencies are cached (packaging/cache.sh), keyed by their list and the week.
set -euo pipefail
umask 022
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/build/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
version=$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import he_ha; print(he_ha.__version__)' "$repo")
site=usr/lib/he-ha/lib/python3.11/site-packages
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}

# --- the vendored Python dependencies (all of pyproject's except libvirt-python) ------------
deps=$("$py" - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.lower().startswith("libvirt-python")))
PY
)
# shellcheck source=packaging/cache.sh
source "$repo/packaging/cache.sh"
key=$(printf '%s\n' "$deps" "$cache_week" | sha256sum | cut -c1-16)
depdir="$cache/deps-$key"
if [ ! -d "$depdir" ]; then
    echo "build: vendoring $deps"
    tmp=$(mktemp -d "$cache/.deps.XXXXXX")  # concurrent builds (pytest -n) each fill their own
    chmod 0755 "$tmp"
    # shellcheck disable=SC2086
    "$py" -m pip install -q --no-compile --only-binary=:all: --target "$tmp" $deps
    rm -rf "$tmp/bin"
    mv -T "$tmp" "$depdir" 2>/dev/null || rm -rf "$tmp"  # another build won: keep its copy
fi
lvver=$("$py" -c 'import importlib.metadata as m; print(m.version("libvirt-python"))')
lvdir="$cache/libvirt-python-$lvver-$cache_week"
if [ ! -d "$lvdir" ]; then
    echo "build: libvirt-python $lvver for the RPM"
    tmp=$(mktemp -d "$cache/.libvirt.XXXXXX")
    chmod 0755 "$tmp"
    "$py" -m pip install -q --no-compile --no-deps --target "$tmp" "libvirt-python==$lvver"
    mv -T "$tmp" "$lvdir" 2>/dev/null || rm -rf "$tmp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the tree both packages share ----------------------------------------------------------
stage() {  # stage DIR PYTHON SYSTEM_SITE
    local root=$1 python=$2 system_site=$3
    mkdir -p "$root/$site" "$root/usr/lib/he-ha/bin" "$root/usr/bin" "$root/usr/share/man/man8" \
        "$root/usr/share/bash-completion/completions" "$root/etc/logrotate.d" "$root/usr/share/doc/he-ha"
    cp -a "$depdir/." "$root/$site/"
    (cd "$repo" && find he_ha cli -name '*.py' -not -path '*/__pycache__/*' -print0 |
        xargs -0 -I{} install -D -m 0644 {} "$root/$site/{}")
    ln -s "$python" "$root/usr/lib/he-ha/bin/python"
    printf 'home = %s\ninclude-system-site-packages = %s\nversion = 3.11\n' \
        "$(dirname "$python")" "$system_site" > "$root/usr/lib/he-ha/pyvenv.cfg"
    for tool in he-ha:he_ha.main:main hosted-engine:cli.hosted_engine:entry_point; do
        IFS=: read -r name module func <<<"$tool"
        printf '#!/usr/lib/he-ha/bin/python\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' \
            "$module" "$func" "$func" > "$root/usr/lib/he-ha/bin/$name"
        chmod 0755 "$root/usr/lib/he-ha/bin/$name"
    done
    ln -s ../lib/he-ha/bin/he-ha "$root/usr/bin/he-ha"
    gzip -9n < "$repo/packaging/man/he-ha.8" > "$root/usr/share/man/man8/he-ha.8.gz"
    gzip -9n < "$repo/packaging/man/hosted-engine.8" > "$root/usr/share/man/man8/hosted-engine.he-ha.8.gz"
    install -m 0644 "$repo/packaging/completion/he-ha" "$repo/packaging/completion/hosted-engine" \
        "$root/usr/share/bash-completion/completions/"
    install -m 0644 "$repo/packaging/logrotate/he-ha" "$root/etc/logrotate.d/he-ha"
    install -m 0644 "$repo/docs/systemd.md" "$repo/docs/operations.md" "$root/usr/share/doc/he-ha/"
    # vendored modules that are imported, never run, keep no "#!" line (rpmlint: non-executable-script)
    find "$root/$site" -name "*.py" -type f ! -perm -u+x -exec sed -i "1{/^#!/d}" {} +
    mkdir -p "$root/var/log/he-ha"
    find "$root" -name '*.pyc' -delete
    find "$root" -depth -name __pycache__ -type d -exec rmdir {} \;
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# --- Debian 12 -----------------------------------------------------------------------------
deb="$work/deb"
stage "$deb" /usr/bin/python3 true
install -D -m 0644 "$repo/packaging/systemd/he-ha.service" "$deb/lib/systemd/system/he-ha.service"
install -D -m 0644 "$repo/packaging/deb/default" "$deb/etc/default/he-ha"
install -m 0644 "$repo/packaging/deb/copyright" "$deb/usr/share/doc/he-ha/copyright"
printf 'he-ha (%s) unstable; urgency=medium\n\n  * Package built from the he-ha repository.\n\n -- he-ha developers <he-ha-devel@lists.example.org>  %s\n' \
    "$version" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$deb/usr/share/doc/he-ha/changelog.gz"
install -D -m 0644 "$repo/packaging/deb/lintian-overrides" "$deb/usr/share/lintian/overrides/he-ha"
gzip -9n "$deb/usr/share/doc/he-ha/systemd.md" "$deb/usr/share/doc/he-ha/operations.md"
mkdir -p "$deb/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$deb" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$repo/packaging/deb/control.in" > "$deb/DEBIAN/control"
printf '/etc/default/he-ha\n/etc/logrotate.d/he-ha\n' > "$deb/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 0755 "$repo/packaging/deb/$script" "$deb/DEBIAN/$script"; done
(cd "$deb" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum > DEBIAN/md5sums)
find "$deb" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/he-ha_${version}_amd64.deb" >/dev/null

# --- EL9 -----------------------------------------------------------------------------------
rpmroot="$work/rpm"
stage "$rpmroot" /usr/bin/python3.11 false
cp -a "$lvdir/." "$rpmroot/$site/"
rm -rf "$rpmroot/$site/bin"
install -m 0644 /usr/lib/python3/dist-packages/sanlock.cpython-311-x86_64-linux-gnu.so "$rpmroot/$site/"
install -D -m 0644 "$repo/packaging/systemd/he-ha.service" "$rpmroot/usr/lib/systemd/system/he-ha.service"
install -D -m 0644 "$repo/packaging/deb/default" "$rpmroot/etc/sysconfig/he-ha"
install -D -m 0644 /usr/share/common-licenses/Apache-2.0 "$rpmroot/usr/share/licenses/he-ha/LICENSE"
find "$rpmroot" -name '*.pyc' -delete
find "$rpmroot" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rpmbuild -bb --quiet --nodeps \
    --define "_topdir $work/rpmbuild" --define "_rpmdir $out" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "dist .el9" --define "he_ha_version $version" --define "he_ha_tree $rpmroot" \
    --define "_binary_payload w19.zstdio" --define "use_source_date_epoch_as_buildtime 1" \
    "$repo/packaging/rpm/he-ha.spec" >/dev/null
ls -l "$out"/he-ha_"$version"_amd64.deb "$out"/he-ha-"$version"-1.el9.x86_64.rpm

#!/usr/bin/env bash
# Make a copy of the cached root file system (rootfs.sh) into a test host for he-ha, before it
# boots: install the .deb the way an administrator would (dpkg -i, which runs postinst), then
# give the host what a deployed oVirt host has and a container lacks.
#   bash packaging/systemd-test/prepare.sh ROOT DEB MEMLOCK_SHIM
# - sanlock.service as shipped by Debian, plus a drop-in preloading the memlock shim
#   (he_ha/devcluster/sanlockd.py: this sandbox lacks CAP_SYS_RESOURCE, and sanlock exits
#   when setrlimit(RLIMIT_MEMLOCK) fails) and -w 0 (no wdmd: a container has no
#   /dev/watchdog; wdmd.service is masked);
# - libvirtd.service: a libvirtd serving only libvirt's test driver (no QEMU in a container),
#   under the name he-ha.service Wants=; he-ha-test-pin.service holds a connection to its
#   shared "default" node, which keeps the engine VM defined across he-ha restarts as a real
#   libvirtd keeps its QEMU domains;
# - he-ha-test-health.service: the engine's health page ("DB Up!") on 127.0.0.1:8080;
# - /etc/default/he-ha: the libvirt URI, the health URL and the short timings of the dev
#   cluster (sanlock io_timeout 1, 1 s ticks), so the VM starts within seconds;
# - broker.conf with no state-transition mails (no SMTP server), /etc/hosts;
# - /usr/local/sbin/he-ha-test-init-storage: `hosted-engine --init-storage` on file storage,
#   run once the container has booted (it needs the sanlock daemon).
# The he-ha unit itself is the package's, unchanged.
set -euo pipefail
root=$1 deb=$2 shim=$3
nspawn() { systemd-nspawn -q -D "$root" --register=no --keep-unit --pipe "$@"; }

nspawn --bind-ro="$(dirname "$(realpath "$deb")")":/mnt/he-ha-packages \
    dpkg -i "/mnt/he-ha-packages/$(basename "$deb")" >/dev/null

install -D -m 0644 "$shim" "$root/usr/local/lib/he-ha-test/memlock-shim.so"
mkdir -p "$root/etc/systemd/system/sanlock.service.d"
printf '[Service]\nEnvironment=LD_PRELOAD=/usr/local/lib/he-ha-test/memlock-shim.so\n' \
    > "$root/etc/systemd/system/sanlock.service.d/he-ha-test.conf"
printf 'sanlock_opts="-w 0 -U root -G root"\n' > "$root/etc/default/sanlock"
ln -sf /dev/null "$root/etc/systemd/system/wdmd.service"

mkdir -p "$root/etc/he-ha-test/no-drivers"
printf 'auth_unix_rw = "none"\nauth_unix_ro = "none"\n' > "$root/etc/he-ha-test/libvirtd.conf"
cat > "$root/etc/systemd/system/libvirtd.service" <<'UNIT'
[Unit]
Description=libvirtd serving only the test driver (he-ha's booted-systemd test)
[Service]
Environment=LIBVIRT_DRIVER_DIR=/etc/he-ha-test/no-drivers
ExecStart=/usr/sbin/libvirtd -f /etc/he-ha-test/libvirtd.conf
[Install]
WantedBy=multi-user.target
UNIT
cat > "$root/etc/systemd/system/he-ha-test-pin.service" <<'UNIT'
[Unit]
Description=Hold the libvirt test driver's default node (its domains live while it is open)
BindsTo=libvirtd.service
After=libvirtd.service
[Service]
ExecStart=/usr/bin/python3 -c "import libvirt, signal; c = libvirt.open('test+unix:///default'); signal.pause()"
Restart=on-failure
RestartSec=1
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/srv/he-ha-test/ovirt-engine/services"
printf 'DB Up!Welcome to Health Status!' > "$root/srv/he-ha-test/ovirt-engine/services/health"
cat > "$root/etc/systemd/system/he-ha-test-health.service" <<'UNIT'
[Unit]
Description=The engine's health page for he-ha's booted-systemd test
[Service]
ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 --directory /srv/he-ha-test 8080
[Install]
WantedBy=multi-user.target
UNIT
for unit in libvirtd he-ha-test-pin he-ha-test-health; do
    ln -sf "/etc/systemd/system/$unit.service" "$root/etc/systemd/system/multi-user.target.wants/$unit.service"
done

cat > "$root/etc/he-ha-test/engine.xml" <<'XML'
<domain type='test'><name>HostedEngine</name><uuid>5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>
XML
cat > "$root/etc/default/he-ha" <<'CONF'
HE_HA_OPTIONS="--libvirt-uri test+unix:///default --health-url http://127.0.0.1:8080/ovirt-engine/services/health --io-timeout 1 --tick-period 1 --monitor-interval 1 --peer-poll 0.5 --storage-timeout 3 --timing liveness=3 --timing lease_busy_backoff=2"
CONF
# no state-transition mails (there is no SMTP server), and the localhost line a host has
mkdir -p "$root/var/lib/ovirt-hosted-engine-ha"
printf '[notify]\nstate_transition =\n' > "$root/var/lib/ovirt-hosted-engine-ha/broker.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
cat > "$root/usr/local/sbin/he-ha-test-init-storage" <<'SH'
#!/bin/sh
# The HA part of deployment on file storage: lockspace, VM lease, metadata, hosted-engine.conf.
set -e
mkdir -p /var/lib/he-ha-test/storage /etc/ovirt-hosted-engine
exec hosted-engine --init-storage --storage=/var/lib/he-ha-test/storage --host-id=1 \
    --vm-uuid=5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f --vm-conf=/etc/he-ha-test/engine.xml \
    --io-timeout=1 --network-test=none --bridge=lo --fqdn=engine.invalid \
    --conf-out=/etc/ovirt-hosted-engine/hosted-engine.conf
SH
chmod 0755 "$root/usr/local/sbin/he-ha-test-init-storage"

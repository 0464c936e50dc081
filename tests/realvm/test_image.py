"""The engine VM's boot image and domain XML: what the initramfs holds (read back with the
real ``cpio`` tool), module order, the cache, and the errors that name a missing package."""

from __future__ import annotations

import gzip
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from he_ha.devcluster.realvm import EngineImage, ImageError, engine_image
from he_ha.devcluster.realvm import image as image_module
from he_ha.devcluster.realvm.cpio import CpioError, archive, directory, file
from he_ha.devcluster.realvm.guest import QEMU_NS, engine_domain_xml
from he_ha.vm import LeaseSpec, inject_lease, leases_in, parse_domain_xml

pytestmark = pytest.mark.slow

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


def _cpio(image: EngineImage, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["cpio", "--quiet", *args],
        input=gzip.decompress(image.initrd.read_bytes()),
        capture_output=True,
        cwd=cwd,
        timeout=60,
        check=True,
    )
    return done.stdout.decode()


def test_the_initramfs_holds_init_busybox_the_nic_modules_and_the_health_page(
    image: EngineImage, tmp_path: Path
) -> None:
    listing = _cpio(image, "-itv")
    names = {line.split()[-1]: line for line in listing.splitlines()}
    for name in (
        "init",
        "bin/busybox",
        "lib/modules/virtio_net.ko",
        "lib/modules/virtio_pci.ko",
        "lib/modules/net_failover.ko",
        "lib/modules/failover.ko",
        "www/ovirt-engine/services/health",
    ):
        assert name in names, listing
    assert names["dev/console"].startswith("crw") and "5,   1" in names["dev/console"]
    assert names["init"].startswith("-rwxr-xr-x")
    _cpio(image, "-id", "www/ovirt-engine/services/health", "init", cwd=tmp_path)
    assert (tmp_path / "www/ovirt-engine/services/health").read_bytes() == image_module.HEALTH_BODY
    assert "httpd -p 80 -h /www" in (tmp_path / "init").read_text()
    assert image.kernel.read_bytes() == (image_module.BOOT / f"vmlinuz-{image.kernel_version}").read_bytes()


def test_modules_are_loaded_after_what_they_depend_on(image: EngineImage) -> None:
    modules = image_module.MODULES / image.kernel_version
    order = [p.name for p in image_module.module_closure(modules, ("virtio_pci", "virtio_net"))]
    assert order[-1] == "virtio_net.ko"
    for dependency in ("virtio.ko", "virtio_ring.ko", "failover.ko", "net_failover.ko"):
        assert order.index(dependency) < order.index("virtio_net.ko")
    assert order.index("virtio_ring.ko") < order.index("virtio.ko") < order.index("virtio_pci.ko")
    with pytest.raises(ImageError, match="no_such_module"):
        image_module.module_closure(modules, ("no_such_module",))


def test_the_image_is_built_once_per_cache(tmp_path: Path) -> None:
    first = engine_image(tmp_path)
    built = first.initrd.stat().st_mtime_ns
    again = engine_image(tmp_path)
    assert again == first and again.initrd.stat().st_mtime_ns == built
    assert [p.name for p in (tmp_path / "engine-image").iterdir()] == [first.initrd.parent.name]  # no scratch left


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(image_module, "BUSYBOX", Path("/bin/ls"))  # dynamically linked
    with pytest.raises(ImageError, match="busybox-static"):
        image_module.static_busybox()
    monkeypatch.setattr(image_module, "BUSYBOX", tmp_path / "busybox")
    with pytest.raises(ImageError, match="busybox-static"):
        image_module.static_busybox()
    monkeypatch.setattr(image_module, "BOOT", tmp_path)
    with pytest.raises(ImageError, match="linux-image-amd64"):
        engine_image(tmp_path)


def test_cpio_refuses_bad_entries() -> None:
    with pytest.raises(CpioError, match="relative"):
        file("/init", b"x")
    with pytest.raises(CpioError, match=r"\.\."):
        directory("www/../etc")
    with pytest.raises(CpioError, match="duplicate"):
        archive([directory("bin"), directory("bin")])


def test_the_lease_transform_keeps_the_forwarded_port(image: EngineImage, tmp_path: Path) -> None:
    xml = engine_domain_xml("HostedEngine", UUID, image, http_port=8123, console=tmp_path / "console.log")
    lease = LeaseSpec("hosted-engine", UUID, tmp_path / "lockspace", 1048576)
    launched = inject_lease(parse_domain_xml(xml, "test"), lease)
    assert leases_in(launched) == [lease]
    root = ET.fromstring(launched.xml)
    args = [arg.get("value") for arg in root.iter(f"{{{QEMU_NS}}}arg")]
    assert "user,id=henet0,hostfwd=tcp:127.0.0.1:8123-:80" in args
    assert root.findtext("os/kernel") == str(image.kernel) and root.findtext("os/initrd") == str(image.initrd)

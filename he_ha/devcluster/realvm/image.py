"""The tiny engine VM's boot image: the installed Debian kernel and a busybox initramfs.

The initramfs holds busybox-static, the kernel modules the virtio network card needs (the
closure of virtio_pci and virtio_net in the kernel's modules.dep: Debian builds them all as
modules) and an ``/init`` that loads them, configures QEMU user networking's guest address
and runs busybox ``httpd`` serving the engine's health page. The build is cached: the
directory name is a hash of every input (kernel, modules, busybox, init script), so an
upgraded kernel or busybox builds a new image and an unchanged one is reused at once.
Building into a temporary directory and renaming it keeps concurrent builders apart.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from he_ha.devcluster.realvm import cpio
from he_ha.devcluster.sanlockd import default_cache_dir

log = structlog.get_logger(__name__)

BOOT = Path("/boot")
MODULES = Path("/lib/modules")
BUSYBOX = Path("/bin/busybox")
NEEDED_MODULES = ("virtio_pci", "virtio_net")  # the NIC; their dependencies come from modules.dep
HEALTH_PATH = "/ovirt-engine/services/health"
HEALTH_BODY = b"DB Up!Welcome to Health Status!"
READY_LINE = "he-ha engine: health page served"  # printed on the serial console when up
GUEST_ADDRESS = "10.0.2.15/24"  # QEMU user networking's fixed guest address and gateway
GUEST_GATEWAY = "10.0.2.2"
KERNEL_CMDLINE = "console=ttyS0 quiet panic=1"
BUILDER_VERSION = b"1"  # bump when the layout below changes without any input changing


class ImageError(RuntimeError):
    """The image cannot be built here; the message says which package or file is missing."""


@dataclass(frozen=True)
class EngineImage:
    kernel: Path
    initrd: Path
    kernel_version: str


def init_script(modules: list[str]) -> str:
    loads = "\n".join(f"insmod /lib/modules/{name}.ko" for name in modules)
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{loads}
ip link set lo up
ip link set eth0 up
ip addr add {GUEST_ADDRESS} dev eth0
ip route add default via {GUEST_GATEWAY}
httpd -p 80 -h /www
echo "{READY_LINE}"
while true; do sleep 3600; done
"""


def engine_image(cache_dir: Path | None = None) -> EngineImage:
    """Build the image once (a second or two), then return the cached one."""
    version = kernel_version()
    kernel = BOOT / f"vmlinuz-{version}"
    module_files = module_closure(MODULES / version, NEEDED_MODULES)
    busybox = static_busybox()
    script = init_script([_module_name(path) for path in module_files])
    inputs = [BUILDER_VERSION, kernel.read_bytes(), busybox, script.encode()]
    inputs += [_module_bytes(path) for path in module_files]
    key = hashlib.sha256(b"".join(hashlib.sha256(part).digest() for part in inputs)).hexdigest()[:16]
    target = (cache_dir or default_cache_dir()) / "engine-image" / f"{version}-{key}"
    image = EngineImage(target / "vmlinuz", target / "initrd.img", version)
    if image.initrd.exists():
        return image
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    scratch.chmod(0o755)  # mkdtemp makes it private; QEMU may run as another user
    try:
        shutil.copyfile(kernel, scratch / "vmlinuz")
        entries = _tree(busybox, script, {_module_name(p): _module_bytes(p) for p in module_files})
        (scratch / "initrd.img").write_bytes(gzip.compress(cpio.archive(entries), mtime=0))
        try:
            os.rename(scratch, target)
        except OSError:  # a concurrent builder won; its image is the same
            if not image.initrd.exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("engine image built", kernel=version, initrd=str(image.initrd), modules=len(module_files))
    return image


def _tree(busybox: bytes, script: str, modules: dict[str, bytes]) -> list[cpio.Entry]:
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "lib", "lib/modules", "www")]
    entries.append(cpio.char_device("dev/console", 5, 1))  # init's stdio before devtmpfs is mounted
    entries.append(cpio.file("bin/busybox", busybox, 0o755))
    entries.append(cpio.symlink("bin/sh", "busybox"))
    entries.append(cpio.file("init", script.encode(), 0o755))
    entries += [cpio.file(f"lib/modules/{name}.ko", data) for name, data in modules.items()]
    parts = HEALTH_PATH.strip("/").split("/")
    entries += [cpio.directory("www/" + "/".join(parts[:n])) for n in range(1, len(parts))]
    entries.append(cpio.file("www/" + "/".join(parts), HEALTH_BODY))
    return entries


def kernel_version() -> str:
    """The newest /boot/vmlinuz-<version> whose modules include virtio_net."""
    versions = [p.name.removeprefix("vmlinuz-") for p in BOOT.glob("vmlinuz-*")]
    usable = [v for v in versions if "virtio_net.ko" in _read_text(MODULES / v / "modules.dep")]
    if not usable:
        raise ImageError(
            f"no kernel in {BOOT} with virtio_net under {MODULES}: install the Debian package "
            f"linux-image-amd64 (found vmlinuz versions: {versions or 'none'})"
        )
    return max(usable, key=lambda v: [int(n) for n in re.findall(r"\d+", v)])


def module_closure(module_dir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """The .ko files of ``wanted`` and everything they depend on, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in _read_text(module_dir / "modules.dep").splitlines():
        module, _, needs = line.partition(":")
        deps[module] = needs.split()
    by_name = {_module_name(Path(m)): m for m in deps}
    order: list[str] = []

    def visit(module: str) -> None:
        if module not in order:
            for dependency in deps[module]:
                visit(dependency)
            order.append(module)

    for name in wanted:
        if name not in by_name:
            raise ImageError(f"module {name} is not in {module_dir / 'modules.dep'}")
        visit(by_name[name])
    return [module_dir / m for m in order]


def static_busybox() -> bytes:
    """/bin/busybox, refused if dynamically linked (it would not run in the initramfs)."""
    try:
        data = BUSYBOX.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{BUSYBOX} is missing: install the Debian package busybox-static") from None
    if _has_interpreter(data):
        raise ImageError(f"{BUSYBOX} is dynamically linked: install the Debian package busybox-static")
    return data


def _has_interpreter(elf: bytes) -> bool:
    """An ELF64 little-endian executable with a PT_INTERP program header is dynamic."""
    if elf[:6] != b"\x7fELF\x02\x01":
        raise ImageError(f"{BUSYBOX} is not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    """The module's ELF bytes; busybox insmod cannot load compressed ones."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix != ".ko":
        raise ImageError(f"{path}: compressed with {path.suffix}, which this builder cannot unpack")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""

"""The real-VM tier: real libvirtd + QEMU (TCG) per simulated host, the engine VM's lease
held by QEMU through libvirt's sanlock plugin (he_ha/devcluster/realvm, docs/realvm.md).
Needs root and the Debian packages that scripts/setup.sh installs; a missing one fails
the tests by name rather than skipping them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from he_ha.devcluster.realvm import EngineImage, RealVmCluster, engine_image

COMMANDS = {
    "libvirtd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "sanlock": "sanlock",
    "unshare": "util-linux",
    "setpriv": "util-linux",
}


@pytest.fixture(scope="session")
def image() -> EngineImage:
    missing = [
        f"{command} (Debian package {package})"
        for command, package in COMMANDS.items()
        if shutil.which(command) is None
    ]
    if missing:
        pytest.fail("the real-VM tier needs " + ", ".join(missing))
    return engine_image()


@pytest.fixture
def make_realvm(image: EngineImage) -> Iterator[Callable[[int], RealVmCluster]]:
    """``make_realvm(count)``: started hosts with real QEMU, killed and removed afterwards
    (checked: no process of theirs and none of their directories is left)."""
    clusters: list[RealVmCluster] = []

    def make(count: int) -> RealVmCluster:
        cluster = RealVmCluster(count, image=image).__enter__()
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        owned = cluster.cluster.owned_paths()
        cluster.__exit__(None, None, None)
        # Nothing may survive the clean-up: no QEMU, libvirtd, sanlock daemon, supervisor, dir.
        assert cluster.cluster.leftovers == [], f"processes left behind (killed now): {cluster.cluster.leftovers}"
        assert [path for path in owned if path.exists()] == []

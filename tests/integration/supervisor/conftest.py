"""Simulated hosts running real ``he-ha run`` processes: real sanlock daemons, real
libvirtd processes serving the test driver, real files and sockets (see he_ha/devcluster/cluster.py).
Needs root (sanlock's memlock shim, libvirtd)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.cluster import Cluster, health_page


@pytest.fixture(scope="package")
def health_url() -> Iterator[str]:
    with health_page() as url:
        yield url


@pytest.fixture
def make_cluster(health_url: str) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(count, libvirtd=True)``: started hosts, stopped and removed afterwards."""
    if shutil.which("libvirtd") is None or shutil.which("sanlock") is None:
        pytest.fail("needs the Debian packages sanlock and libvirt-daemon")
    clusters: list[Cluster] = []

    def make(count: int = 1, *, libvirtd: bool = True, metadata: Path | None = None) -> Cluster:
        cluster = Cluster(count, libvirtd=libvirtd, health_url=health_url, metadata=metadata).__enter__()
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.__exit__(None, None, None)

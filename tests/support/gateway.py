"""A host's default gateway that a test can take away: a network namespace holding the
gateway's address at the end of a veth pair.

``Gateway(index)`` creates namespace ``hehagw<pid>-<index>`` and a veth pair: this machine's
end gets ``10.<net>.<index>.1/24``, the namespace's end ``10.<net>.<index>.2/24`` (``address``,
what hosted-engine.conf's ``gateway`` names). A supervisor pinging ``address`` from the root
namespace gets answers from the namespace's network stack. ``cut()`` takes the namespace's
end down (the gateway is gone: no ARP answer, the route is link-down), ``restore()`` brings it
back. Every simulated host gets a gateway of its own, so one host's loss is not its peers'.
Needs root (``ip netns``, Debian iproute2) and ``ping`` (iputils-ping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(("-n", netns) if netns else ()), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {result.stderr.strip()}")


class Gateway:
    def __init__(self, index: int) -> None:
        if shutil.which("ip") is None:
            raise AssertionError("the ip command is missing (Debian package iproute2)")
        net = 100 + os.getpid() % 150  # apart from other test runs' gateways on this machine
        self.netns = f"hehagw{os.getpid()}-{index}"
        self.outer = f"hgw{os.getpid() % 100000}o{index}"  # interface names: at most 15 bytes
        self.inner = f"hgw{os.getpid() % 100000}i{index}"
        self.address = f"10.{net}.{index}.2"
        self._local = f"10.{net}.{index}.1/24"
        self._made = False

    def __enter__(self) -> Gateway:
        _ip("netns", "add", self.netns)
        self._made = True
        try:
            _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _ip("link", "set", self.inner, "netns", self.netns)
            _ip("addr", "add", self._local, "dev", self.outer)
            _ip("link", "set", self.outer, "up")
            _ip("addr", "add", f"{self.address}/24", "dev", self.inner, netns=self.netns)
            _ip("link", "set", "lo", "up", netns=self.netns)
            _ip("link", "set", self.inner, "up", netns=self.netns)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cut(self) -> None:
        _ip("link", "set", self.inner, "down", netns=self.netns)

    def restore(self) -> None:
        _ip("link", "set", self.inner, "up", netns=self.netns)

    def answers(self) -> bool:
        """One ping from this machine's namespace (as the supervisor's) got an answer."""
        result = subprocess.run(
            ["ping", "-n", "-c", "1", "-W", "1", self.address], capture_output=True, timeout=10, check=False
        )
        return result.returncode == 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._made:
            subprocess.run(["ip", "link", "del", self.outer], capture_output=True, timeout=30, check=False)
            _ip("netns", "del", self.netns)  # deletes the namespace's end too
            self._made = False

"""libvirt's own event loop in one daemon thread, registered once per process.

Why not libvirtaio: libvirt calls the registered handle/timer functions from whichever
thread is inside a libvirt call. Our blocking calls run in executor threads, so libvirtaio
would call ``loop.add_reader`` and ``asyncio.ensure_future`` from those threads; asyncio
(and uvloop even more) is not thread-safe there. Measured with a remote connection: 100
calls from worker threads made ~800 such off-loop calls. libvirt's default implementation
is thread-safe by design (its own lock and wake-up pipe), so it runs in one thread here and
every callback is handed to the asyncio loop with ``call_soon_threadsafe`` by its user.
Being process-wide, it also works unchanged with one event loop per test.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import libvirt
import structlog

from he_ha.vm.errors import EventLoopConflict

log = structlog.get_logger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_event_thread() -> None:
    """Register libvirt's default event implementation and run it; idempotent.

    Must happen before the first connection is opened, or that connection gets no events
    (keepalive, close callback and domain events all ride on the event loop).
    """
    global _thread
    with _lock:
        if _thread is not None:
            return
        aio = sys.modules.get("libvirtaio")
        if aio is not None and aio.getCurrentImpl() is not None:
            raise EventLoopConflict(
                "libvirtaio is already registered in this process; he_ha.vm needs libvirt's "
                "default event implementation (see he_ha/vm/eventthread.py for why)"
            )
        if libvirt.virEventRegisterDefaultImpl() < 0:
            raise EventLoopConflict("virEventRegisterDefaultImpl failed")
        # libvirt prints every error to stderr by default; we raise them as exceptions
        # and log them where they are handled, so its printing is switched off.
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        _thread = threading.Thread(target=_run, name="libvirt-events", daemon=True)
        _thread.start()
        log.debug("libvirt event thread started")


def post_to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a libvirt callback's work to the asyncio loop (called in the event thread)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop was closed while a callback was still registered
        log.debug("libvirt callback after its event loop closed; dropped", callback=getattr(fn, "__qualname__", fn))


def _run() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            log.error("libvirt event loop iteration failed")
            time.sleep(0.1)  # do not spin if the failure repeats


def _ignore_libvirt_error(_ctx: object, _error: object) -> None:
    """Must allocate next to nothing. It runs between libvirt recording the thread's error
    and the binding reading it; an allocation there can start a garbage collection that
    frees a libvirt object, and virDomainFree resets the thread's error, so the raised
    libvirtError loses its code (measured: a structlog call here lost 11 codes in 20000
    failing calls, this handler none)."""

"""libvirt errors whose details were lost (thread error reset by a GC-run virDomainFree)."""

from __future__ import annotations

import libvirt
import pytest

from he_ha.vm.connection import retry_lost_errors


def _detail_less_error() -> libvirt.libvirtError:
    # What the binding builds when the thread's last error was reset before it looked.
    libvirt.virResetLastError()
    error = libvirt.libvirtError("virDomainLookupByName() failed")
    assert error.get_error_code() is None
    return error


def test_a_call_whose_error_lost_its_details_is_made_again() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise _detail_less_error()
        return "answer"

    assert retry_lost_errors(flaky) == "answer"
    assert len(calls) == 2


def test_a_real_error_is_not_retried() -> None:
    conn = libvirt.open("test:///default")
    calls: list[int] = []

    def lookup() -> None:
        calls.append(1)
        conn.lookupByName("no-such-domain")

    try:
        with pytest.raises(libvirt.libvirtError) as caught:
            retry_lost_errors(lookup)
        assert caught.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
        assert len(calls) == 1
    finally:
        conn.close()


def test_gives_up_after_the_last_attempt() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise _detail_less_error()

    with pytest.raises(libvirt.libvirtError):
        retry_lost_errors(always, attempts=3)
    assert len(calls) == 3

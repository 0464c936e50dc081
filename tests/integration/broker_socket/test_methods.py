"""The broker's methods with the original's argument and result types, called through the
original-style client (tests/support/broker_client.py) on a real socket."""

from __future__ import annotations

import asyncio
import xmlrpc.client
from xmlrpc.client import APPLICATION_ERROR, INVALID_METHOD_PARAMS, METHOD_NOT_FOUND, Binary

import pytest

from he_ha.admin.contract import CommandResult
from he_ha.broker_socket import AGENT_ONLY
from he_ha.supervisor.board import BoardRead
from he_ha.whiteboard import SLOT_BYTES, GlobalBlock, decode_whiteboard, encode_global_block, encode_host_slot
from tests.integration.broker_socket.conftest import Broker, eventually
from tests.support.broker_client import global_block, slots
from tests.unit.whiteboard.samples import host_slot


def board_with(slots_at: dict[int, bytes]) -> BoardRead:
    buffer = bytearray(SLOT_BYTES * 8)
    for index, data in slots_at.items():
        buffer[index * SLOT_BYTES : index * SLOT_BYTES + len(data)] = data
    return BoardRead(decode_whiteboard(bytes(buffer)), read_at=100.0, duration=0.01)


async def test_get_stats_serves_every_slot_whose_first_byte_is_not_nul_as_stored(broker: Broker) -> None:
    leftover = bytearray(SLOT_BYTES)
    leftover[10] = 7
    stored = {
        0: encode_global_block(GlobalBlock(maintenance=True)),
        1: encode_host_slot(host_slot(1)),
        3: b"not|a|slot".ljust(SLOT_BYTES, b"\0"),  # unusable, but served: clients judge it themselves
        5: bytes(leftover),  # leftover data behind a NUL: no slot, as for the original
    }
    broker.backend.board = board_with(stored)
    answer = await broker.call("get_stats")
    assert sorted(answer) == ["0", "1", "3"]  # struct keys are decimal host-id strings
    assert all(isinstance(blob, Binary) for blob in answer.values())
    assert slots(answer) == {index: stored[index] for index in (0, 1, 3)}


async def test_get_stats_without_a_read_says_why(broker: Broker) -> None:
    fault = await broker.fault("get_stats")
    assert fault.faultCode == APPLICATION_ERROR
    assert fault.faultString == (
        "get_stats: no whiteboard read yet: the daemon has not read the metadata volume since it started"
    )
    broker.backend.error = "whiteboard read of /m: no answer within 5 s"
    fault = await broker.fault("get_stats")
    assert fault.faultString.endswith("the metadata volume cannot be read: whiteboard read of /m: no answer within 5 s")


async def test_is_host_alive_is_the_daemons_liveness_view(broker: Broker) -> None:
    assert await broker.call("is_host_alive") == []
    broker.backend.live = [1, 4]
    assert await broker.call("is_host_alive") == [1, 4]


@pytest.mark.parametrize(
    ("text", "on"),
    [("maintenance=1", True), ("maintenance=0", False), ("maintenance=True", True), ("\nmaintenance=no\n", False)],
)
async def test_put_stats_of_the_global_block_sets_global_maintenance(broker: Broker, text: str, on: bool) -> None:
    assert await broker.call("put_stats", 0, Binary(text.encode().ljust(SLOT_BYTES, b"\0"))) == "ok"
    assert broker.backend.global_writes == [on]


async def test_put_stats_as_the_original_client_sends_it(broker: Broker) -> None:
    assert await broker.call("put_stats", 0, Binary(global_block(True))) == "ok"
    assert await broker.call("put_stats", 0, global_block(False)) == "ok"  # bytes go out as base64 too
    assert broker.backend.global_writes == [True, False]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"maintenance=1", "the global block is 13 bytes; it must be 4096 (key=value text, NUL-padded)"),
        (b"maintenance=1".ljust(SLOT_BYTES + 1, b"\0"), "the global block is 4097 bytes"),
        (b"maintenance=1\ncolour=blue", "unknown key(s) in the global block: 'colour'; only 'maintenance' is known"),
        (b"\n\n", "the global block sets no 'maintenance' value"),
        (b"", "the global block sets no 'maintenance' value"),
        (b"maintenance=perhaps", "maintenance value 'perhaps' is not a boolean"),
        (b"maintenance", "line 'maintenance' is not key=value"),
        (b"maintenance=\xff", "text is not UTF-8"),
    ],
)
async def test_put_stats_refuses_a_block_the_original_client_would_not_parse(
    broker: Broker, block: bytes, message: str
) -> None:
    data = block if len(block) > SLOT_BYTES or block == b"maintenance=1" else block.ljust(SLOT_BYTES, b"\0")
    fault = await broker.fault("put_stats", 0, Binary(data))
    assert fault.faultCode == INVALID_METHOD_PARAMS
    assert message in fault.faultString
    assert broker.backend.global_writes == []


async def test_put_stats_into_a_host_slot_is_refused(broker: Broker) -> None:
    fault = await broker.fault("put_stats", 1, Binary(encode_host_slot(host_slot(1))))
    assert fault.faultCode == APPLICATION_ERROR
    assert fault.faultString == (
        "put_stats: refused: the slot of host 1 is written only by the HA daemon of that "
        "host; only the global block (host id 0) is accepted here"
    )
    assert broker.backend.global_writes == []


@pytest.mark.parametrize(
    "params",
    [(), ("0", global_block(True)), (False, global_block(True)), (0, "maintenance=1"), (0, global_block(True), 1)],
)
async def test_put_stats_takes_an_int_and_a_base64_blob(broker: Broker, params: tuple[object, ...]) -> None:
    fault = await broker.fault("put_stats", *params)
    assert fault.faultCode == INVALID_METHOD_PARAMS
    assert fault.faultString.startswith("put_stats(host_id: int, data: base64) called with (")


async def test_a_failed_global_write_is_a_fault_not_nil(broker: Broker) -> None:
    broker.backend.result = CommandResult(
        ok=False,
        message="global maintenance on: not written and read back: whiteboard write of /m: no answer within 5 s",
    )
    fault = await broker.fault("put_stats", 0, Binary(global_block(True)))
    assert fault.faultCode == APPLICATION_ERROR
    assert fault.faultString == (
        "put_stats: global maintenance on: not written and read back: whiteboard write of /m: no answer within 5 s"
    )


async def test_reset_lockspace_answers_ok_or_the_refusal(broker: Broker) -> None:
    assert await broker.call("reset_lockspace") == "ok"
    broker.backend.result = CommandResult(ok=False, message="reset_lockspace refused:\nevidence")
    fault = await broker.fault("reset_lockspace")
    assert (fault.faultCode, fault.faultString) == (APPLICATION_ERROR, "reset_lockspace refused:\nevidence")
    assert broker.backend.resets == 2


async def test_one_reset_at_a_time(broker: Broker) -> None:
    broker.backend.release.clear()
    first = asyncio.create_task(broker.call("reset_lockspace"))
    await eventually(lambda: broker.backend.resets == 1)
    fault = await broker.fault("reset_lockspace")
    assert fault.faultString == "reset_lockspace: another reset is under way"
    broker.backend.release.set()
    assert await first == "ok"


async def test_calls_are_answered_while_a_write_is_under_way(broker: Broker) -> None:
    """The original served one call at a time; here a pending put_stats holds nobody up."""
    broker.backend.board = board_with({1: encode_host_slot(host_slot(1))})
    broker.backend.release.clear()
    pending = asyncio.create_task(broker.call("put_stats", 0, Binary(global_block(True))))
    await eventually(lambda: broker.backend.global_writes)
    assert slots(await broker.call("get_stats")) == {1: encode_host_slot(host_slot(1))}
    assert await broker.call("is_host_alive") == []
    assert not pending.done()
    broker.backend.release.set()
    assert await pending == "ok"


@pytest.mark.parametrize("method", sorted(AGENT_ONLY))
async def test_the_agents_methods_say_he_ha_replaces_it(broker: Broker, method: str) -> None:
    fault = await broker.fault(method, "x")
    assert fault.faultCode == APPLICATION_ERROR
    assert fault.faultString == (
        f"{method}: he-ha replaces ovirt-ha-agent and ovirt-ha-broker on this host; this "
        "method serves only the original agent, which must not run beside he-ha "
        "(systemctl disable --now ovirt-ha-agent ovirt-ha-broker)"
    )


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("get_stat", 'method "get_stat" is not supported'),
        ("system.listMethods", 'method "system.listMethods" is not supported'),
        ("_handlers", 'method "_handlers" is not supported: names starting with "_" are not callable'),
        ("_dispatch", 'method "_dispatch" is not supported: names starting with "_" are not callable'),
    ],
)
async def test_unknown_and_private_names_are_faults(broker: Broker, method: str, message: str) -> None:
    fault = await broker.fault(method)
    assert (fault.faultCode, fault.faultString) == (METHOD_NOT_FOUND, message)


async def test_reads_take_no_arguments(broker: Broker) -> None:
    fault = await broker.fault("is_host_alive", 1)
    assert (fault.faultCode, fault.faultString) == (INVALID_METHOD_PARAMS, "is_host_alive() called with (int)")


async def test_nil_goes_through_both_ways(broker: Broker) -> None:
    fault = await broker.fault("put_stats", 0, None)
    assert fault.faultString == "put_stats(host_id: int, data: base64) called with (int, NoneType)"
    assert isinstance(fault, xmlrpc.client.Fault)

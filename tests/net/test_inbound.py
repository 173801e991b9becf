"""The inbound gate, against aioice's own controlling agent as the viewer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aioice
import pytest

from agent.net import inbound
from agent.net.ice import IceServers, IceTransport
from tests.e2e.aiortc_viewer import loopback_only_host_addresses


@contextlib.asynccontextmanager
async def connected(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[IceTransport, aioice.Connection]]:
    loopback_only_host_addresses(monkeypatch)
    device = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=print)
    viewer = aioice.Connection(ice_controlling=True, components=1)
    try:
        host = await device.start_gathering()
        await viewer.gather_candidates()
        device.set_remote_credentials(viewer.local_username, viewer.local_password)
        viewer.remote_username = device.local_username
        viewer.remote_password = device.local_password
        await viewer.add_remote_candidate(aioice.Candidate.from_sdp(host[0]))
        await viewer.add_remote_candidate(None)
        await device.add_remote_candidate(viewer.local_candidates[0].to_sdp())
        await device.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(device.connect(), viewer.connect()), 10)
        yield device, viewer
    finally:
        await viewer.close()
        await device.close()


async def test_what_waits_for_the_driver_is_bounded_and_the_newest_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with connected(monkeypatch) as (device, viewer):
        count = inbound.MAX_QUEUED_DATAGRAMS * 4
        for index in range(count):  # the driver is stalled: nobody reads meanwhile
            await viewer.send(b"\x80" + index.to_bytes(4, "big") + bytes(1200))
            await asyncio.sleep(0)  # one loop turn: the device's socket is read, not full
        await viewer.send(b"\x80last")
        # The viewer's own datagrams arrive in order; wait for the last to be queued.
        queue = device._conn.gate.queue
        async with asyncio.timeout(5):
            while (b"\x80last", 1) not in queue._queue:  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
        assert queue.qsize() <= inbound.MAX_QUEUED_DATAGRAMS
        assert queue.held_bytes <= inbound.MAX_QUEUED_BYTES
        assert device.counters.queue_overflow > count // 2
        first = await device.recv()  # the oldest still held: the older ones made room
        assert int.from_bytes(first[1:5], "big") >= count - inbound.MAX_QUEUED_DATAGRAMS
        assert device.counters.foreign == 0


async def test_datagrams_that_raced_the_nomination_are_delivered_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with connected(monkeypatch) as (device, viewer):
        gate = device._conn.gate
        pair = device._conn._nominated[1]
        # As if they had arrived before the pair was nominated.
        gate._early.append((b"\x16early", pair.remote_addr, pair.protocol))
        gate._early.append((b"\x16other", ("127.0.0.1", 9), pair.protocol))
        await viewer.send(b"\x17later")
        assert await asyncio.wait_for(device.recv(), 5) == b"\x16early"
        assert await asyncio.wait_for(device.recv(), 5) == b"\x17later"
        assert device.counters.foreign == 1

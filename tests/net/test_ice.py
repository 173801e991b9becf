"""IceTransport against aioice's own controlling agent, and against coturn."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Callable

import aioice
import pytest
from aioice import turn as aioice_turn

from agent.net.ice import IceServers, IceTransport, TurnServer
from tests.e2e.aiortc_viewer import loopback_only_host_addresses
from tests.infra.coturn import Coturn


def recorder() -> tuple[list[str | None], asyncio.Event, Callable[[str | None], None]]:
    found: list[str | None] = []
    done = asyncio.Event()

    def on_candidate(candidate: str | None) -> None:
        found.append(candidate)
        if candidate is None:
            done.set()

    return found, done, on_candidate


def turn_server(coturn: Coturn, transport: str) -> TurnServer:
    return TurnServer(coturn.host, coturn.port, coturn.username, coturn.password, transport)


async def test_loopback_host_candidate_then_end_of_candidates() -> None:
    found, done, on_candidate = recorder()
    ice = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=on_candidate)
    try:
        host = await ice.start_gathering()
        await asyncio.wait_for(done.wait(), 5)
        assert len(host) == 1 and " 127.0.0.1 " in host[0] and "typ host" in host[0]
        assert found == [host[0], None]
        assert ice.gathering_done
    finally:
        await ice.close()


async def test_connects_to_a_controlling_agent_with_trickle_both_ways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only_host_addresses(monkeypatch)
    found, done, on_candidate = recorder()
    device = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=on_candidate)
    viewer = aioice.Connection(ice_controlling=True, components=1)
    try:
        await device.start_gathering()
        await viewer.gather_candidates()
        viewer_candidates = viewer.local_candidates
        device.set_remote_credentials(viewer.local_username, viewer.local_password)
        viewer.remote_username, viewer.remote_password = (
            device.local_username,
            device.local_password,
        )
        await asyncio.wait_for(done.wait(), 5)
        for candidate in found[:-1]:
            assert candidate is not None
            await viewer.add_remote_candidate(aioice.Candidate.from_sdp(candidate))
        await viewer.add_remote_candidate(None)
        connecting = asyncio.ensure_future(device.connect())
        # The viewer's candidate arrives by trickle, with the "candidate:" prefix browsers use.
        await device.add_remote_candidate("candidate:" + viewer_candidates[0].to_sdp())
        await device.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(connecting, viewer.connect()), 10)
        assert device.selected_pair == ("host", "host")
        send = device.sender()
        assert send is not None
        # A frame's packets in one call (one sendmmsg on a host pair), in order.
        send([b"\x80hello", b"\x80there", b"\x80" + bytes(1200)])
        assert await asyncio.wait_for(viewer.recv(), 5) == b"\x80hello"
        assert await asyncio.wait_for(viewer.recv(), 5) == b"\x80there"
        assert await asyncio.wait_for(viewer.recv(), 5) == b"\x80" + bytes(1200)
        await viewer.send(b"\x80back")
        assert await asyncio.wait_for(device.recv(), 5) == b"\x80back"
    finally:
        await viewer.close()
        await device.close()


async def test_checks_run_while_a_stun_server_has_not_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only_host_addresses(monkeypatch)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a STUN server that never answers
    silent.bind(("127.0.0.1", 0))
    found, _, on_candidate = recorder()
    device = IceTransport(
        addresses=["127.0.0.1"],
        servers=IceServers(stun=(silent.getsockname(),)),
        on_candidate=on_candidate,
    )
    viewer = aioice.Connection(ice_controlling=True, components=1)
    try:
        host = await device.start_gathering()
        await viewer.gather_candidates()
        device.set_remote_credentials(viewer.local_username, viewer.local_password)
        viewer.remote_username, viewer.remote_password = (
            device.local_username,
            device.local_password,
        )
        await viewer.add_remote_candidate(aioice.Candidate.from_sdp(host[0]))
        await viewer.add_remote_candidate(None)
        await device.add_remote_candidate(viewer.local_candidates[0].to_sdp())
        await device.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(device.connect(), viewer.connect()), 4)
        # Nominated while the server-reflexive query was still waiting for its answer.
        assert device.selected_pair == ("host", "host")
        assert not device.gathering_done and found == host
    finally:
        await viewer.close()
        await device.close()
        silent.close()


async def test_bad_remote_candidates_are_value_errors_and_rtcp_components_ignored() -> None:
    _, _, on_candidate = recorder()
    ice = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=on_candidate)
    try:
        await ice.start_gathering()
        with pytest.raises(ValueError, match="bad ICE candidate"):
            await ice.add_remote_candidate("candidate:garbage")
        await ice.add_remote_candidate("1 2 udp 2130706431 127.0.0.1 9 typ host")  # component 2
    finally:
        await ice.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_candidates_from_coturn_trickle_after_the_host_one(
    coturn_server: Coturn, transport: str
) -> None:
    found, done, on_candidate = recorder()
    turn = turn_server(coturn_server, transport)
    ice = IceTransport(
        addresses=["127.0.0.1"],
        servers=IceServers(stun=((coturn_server.host, coturn_server.port),), turn=(turn,)),
        on_candidate=on_candidate,
    )
    try:
        host = await ice.start_gathering()
        assert [c for c in host if "typ host" in c] == host and len(host) == 1
        await asyncio.wait_for(done.wait(), 10)
        relays = [c for c in found if c is not None and "typ relay" in c]
        assert len(relays) == 1 and f" {coturn_server.host} " in relays[0]
        assert found[0] == host[0] and found[-1] is None
    finally:
        await ice.close()


def _live_turn_clients() -> list[object]:
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, aioice_turn.TurnClientMixin)
        and o.transport is not None
        and not o.transport.is_closing()
    ]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_closing_during_gathering_leaves_no_turn_allocation(
    coturn_server: Coturn, transport: str
) -> None:
    before = len(_live_turn_clients())
    _, _, on_candidate = recorder()
    turn = turn_server(coturn_server, transport)
    ice = IceTransport(
        addresses=["127.0.0.1"], servers=IceServers(turn=(turn,)), on_candidate=on_candidate
    )
    await ice.start_gathering()  # returns with the host candidate; the relay is under way
    await ice.close()  # the viewer hung up at once
    assert len(_live_turn_clients()) == before


async def test_remote_candidates_with_impossible_ports_are_refused() -> None:
    _, _, on_candidate = recorder()
    ice = IceTransport(addresses=["127.0.0.1"], servers=IceServers(), on_candidate=on_candidate)
    try:
        await ice.start_gathering()
        with pytest.raises(ValueError, match="port 99999"):
            await ice.add_remote_candidate("1 1 udp 2130706431 127.0.0.1 99999 typ host")
    finally:
        await ice.close()

"""Strangers at the agent's UDP ports (issue 12, breaks 2 and 3), with a viewer watching.

The agent runs on a real mosquitto; the viewers are aiortc; the stranger is a plain UDP
socket that learned a port (as a sweep would). Throughout, a healthy viewer must keep
getting frames (its longest gap under 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator

from aioice import stun

from agent.runtime.app import Agent
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.hostile import (
    DTLS_FATAL_ALERT,
    TimedViewer,
    answer_ports,
    binding_request,
    dtls_client_hello,
    ice_credentials,
    rss_bytes,
    stranger_socket,
    watch_timed,
)
from tests.e2e.mqtt_rig import RpcClient
from tests.infra.mosquitto import MosquittoBroker

HEALTHY_GAP = 1.0


@contextlib.asynccontextmanager
async def healthy_viewer(broker: MosquittoBroker) -> AsyncIterator[TimedViewer]:
    """A viewer that watches from before the attack until after; asserts its frame gaps."""
    async with RpcClient(broker, "viewer-healthy") as client:
        viewer = await watch_timed(client, "healthy")
        since = time.monotonic()
        try:
            yield viewer
            gap = viewer.longest_gap(since)
            assert gap < HEALTHY_GAP, f"the healthy viewer went {gap:.2f} s without a frame"
        finally:
            await viewer.close()


@contextlib.contextmanager
def spraying(payload: bytes, ports: list[tuple[str, int]]) -> Iterator[None]:
    """A stranger sends `payload` to `ports` every few milliseconds until the block ends."""
    stop = threading.Event()
    sock = stranger_socket()

    def spray() -> None:
        while not stop.is_set():
            for port in ports:
                sock.sendto(payload, port)
            stop.wait(0.005)

    thread = threading.Thread(target=spray, name="stranger")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sock.close()


async def test_a_strangers_dtls_records_do_not_end_a_handshake(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with healthy_viewer(broker), RpcClient(broker, "viewer-2") as client:
        for index, forged in enumerate([DTLS_FATAL_ALERT, dtls_client_hello()]):
            session = f"s{index}"
            viewer = AiortcViewer()
            try:
                result = await client.call(
                    "webrtc.offer", {"session": session, "sdp": await viewer.offer()}
                )
                # From the answer until media flows: during ICE, at nomination, during DTLS.
                with spraying(forged, answer_ports(result["sdp"])):
                    await viewer.accept(result["sdp"])
                    await client.wait_state(session, "connected")
                    await viewer.wait_frames(5)
                refused = {key[1]: c for *key, c in agent.sessions.inbound()}[session]
                assert refused.foreign > 0  # the stranger's records reached the port
                await client.call("webrtc.close", {"session": session})
            finally:
                await viewer.close()


async def test_stun_requests_without_our_ufrag_get_no_answer(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with healthy_viewer(broker), RpcClient(broker, "viewer-2") as client:
        viewer = AiortcViewer()
        try:
            offer = await viewer.offer()
            result = await client.call("webrtc.offer", {"session": "probe", "sdp": offer})
            port = answer_ports(result["sdp"])[0]
            agent_ufrag, agent_pwd = ice_credentials(result["sdp"])
            viewer_ufrag, _ = ice_credentials(offer)
            sock = stranger_socket()
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            try:
                # A sweep's probe, then a guess at the ufrag: neither may be answered...
                for probe in (binding_request(), binding_request("guess:x", "password")):
                    sock.sendto(bytes(probe), port)
                # ...while a check that names our ufrag is (so the port is alive): loopback
                # keeps the order, so an answer to either probe would arrive first.
                valid = binding_request(f"{agent_ufrag}:{viewer_ufrag}", agent_pwd)
                sock.sendto(bytes(valid), port)
                reply = stun.parse_message(await asyncio.wait_for(loop.sock_recv(sock, 2048), 5))
            finally:
                sock.close()
            assert reply.transaction_id == valid.transaction_id
            assert reply.message_class == stun.Class.RESPONSE
            refused = {key[1]: c for *key, c in agent.sessions.inbound()}["probe"]
            assert refused.unauthenticated_stun == 2
        finally:
            await viewer.close()


FLOOD_DATAGRAMS = 40_000  # of 1,400 bytes: 56 MB
RSS_GROWTH_LIMIT = 20 * 1024 * 1024


def flood(ports: list[tuple[str, int]], count: int) -> None:
    """1,400-byte RTP-looking datagrams, paced so the agent's socket keeps up."""
    sock = stranger_socket()
    payload = b"\x80" + bytes(1399)
    try:
        for index in range(count):
            for port in ports:
                sock.sendto(payload, port)
            if index % 100 == 99:
                time.sleep(0.001)
    finally:
        sock.close()


async def test_a_flood_at_sessions_in_ice_and_connected_holds_no_memory(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with healthy_viewer(broker) as healthy, RpcClient(broker, "viewer-2") as client:
        viewer = AiortcViewer()
        try:
            result = await client.call(
                "webrtc.offer", {"session": "in-ice", "sdp": await viewer.offer()}
            )
            # The offer is never applied: the session stays in ICE all along.
            healthy_ports = answer_ports(healthy.pc.remoteDescription.sdp)
            targets = answer_ports(result["sdp"]) + healthy_ports
            before = rss_bytes()
            await asyncio.to_thread(flood, targets, FLOOD_DATAGRAMS)
            growth = rss_bytes() - before
            assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / 2**20:.0f} MB in a flood"
            refused = {key[1]: c for *key, c in agent.sessions.inbound()}
            assert refused["in-ice"].early_overflow > FLOOD_DATAGRAMS // 2
            assert refused["healthy"].foreign > FLOOD_DATAGRAMS // 2
            frames = healthy.frames
            await healthy.wait_frames(frames + 5)
        finally:
            await viewer.close()


# --- viewer slots (break 4) -------------------------------------------------------------


async def test_one_client_cannot_take_every_viewer_slot(
    broker: MosquittoBroker, agent: Agent
) -> None:
    async with (
        healthy_viewer(broker),
        RpcClient(broker, "viewer-greedy") as greedy,
        RpcClient(broker, "viewer-3") as other,
    ):
        viewers = [AiortcViewer() for _ in range(5)]
        try:
            replies = [
                await greedy.request("webrtc.offer", {"session": f"g{i}", "sdp": await v.offer()})
                for i, v in enumerate(viewers)  # offers it never applies: abandoned in ICE
            ]
            assert ["result" in r for r in replies] == [True, True, False, False, False]
            for refused in replies[2:]:
                assert refused["error"]["code"] == -32002
                assert "per-client limit" in refused["error"]["message"]
            # Others still get in.
            late = await watch_timed(other, "late")
            await late.wait_frames(5)
            await late.close()
        finally:
            for viewer in viewers:
                await viewer.close()

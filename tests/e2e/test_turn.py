"""STUN/TURN for real: a session whose only path is a coturn relay, over UDP, TCP and TLS.

Three namespaces behind one router: agent, viewer and turn. The router drops everything
between agent and viewer, so their host candidates can never pair; both reach coturn. The
agent is given the TURN server the way a deployment's config gives it (`webrtc.ice_servers`
URLs); the aiortc viewer has only its host candidate. The one working pair is then
relay (agent, on coturn) <-> host (viewer): the session connects only if the agent allocated,
trickled and used its relay, and coturn's own accounting shows the video went through it.
Each side is a process inside its namespace (tests/e2e/turn_peers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.turn_peers import PeerProcess
from tests.infra import Coturn, Host, Pki, Topology
from tests.infra.tools import log_tail, wait_until

# Bounds for a loaded 2-core machine; a healthy case takes 2-3 s in all.
START = 30.0  # process start (imports av, aiortc) up to the offer / answer
STEP = 20.0
FRAMES = 30

# coturn's (verbose) lines about one allocation, e.g.
#   "session 000000000000000004: peer usage: realm=<edgecam.test>, username=<edgecam>, rp=5,
#    rb=1096, sp=107, sb=85063" (sp/sb: what the relay sent to peers, here the viewer) and
#   "session 000000000000000004: closed (2nd stage), user <edgecam> realm <edgecam.test>
#    origin <>, local 10.77.3.2:5349, remote 10.77.1.2:48496, reason: TLS/TCP connection
#    closed by client (callback)". Its own readiness probes log user <>.
_PEER_USAGE = re.compile(
    r"peer usage: realm=<[^>]*>, username=<([^>]*)>, rp=\d+, rb=\d+, sp=(\d+), sb=(\d+)"
)
_CLOSED = re.compile(
    r"closed \(2nd stage\), user <([^>]*)> realm <[^>]*> origin <[^>]*>, "
    r"local ([\d.]+):(\d+), remote ([\d.]+):\d+, reason: (.*)"
)


def _ice_servers(coturn: Coturn, transport: str) -> list[dict[str, object]]:
    url = {
        "udp": f"turn:{coturn.host}:{coturn.port}?transport=udp",
        "tcp": f"turn:{coturn.host}:{coturn.port}?transport=tcp",
        "tls": f"turns:{coturn.host}:{coturn.tls_port}?transport=tcp",
    }[transport]
    assert url in coturn.urls
    return [{"urls": [url], "username": coturn.username, "credential": coturn.password}]


def _candidates(sdp: str) -> list[tuple[str, str]]:
    """(type, address) of each candidate line in an SDP."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append((fields[7], fields[4]))
    return found


def _relayed_to_peers(log: Path, username: str) -> list[tuple[int, int]]:
    """(packets, bytes) relayed to peers by each of `username`'s allocations coturn closed."""
    text = log.read_text(errors="replace")
    return [(int(m[2]), int(m[3])) for m in _PEER_USAGE.finditer(text) if m[1] == username]


def _client_transport(log: Path, username: str, client: str) -> tuple[int, str]:
    """(coturn port, udp|tcp|tls) of `username`'s one allocation from `client`."""
    text = log.read_text(errors="replace")
    found = [m for m in _CLOSED.finditer(text) if m[1] == username and m[4] == client]
    assert len(found) == 1, found
    reason = found[0][5]
    transport = "tls" if "TLS/TCP" in reason else "tcp" if "TCP" in reason else "udp"
    return int(found[0][3]), transport


@contextlib.asynccontextmanager
async def _peers(
    tmp_path: Path, agent: Host, viewer: Host, ice_servers: object, *, trusted_ca: Path | None
) -> AsyncIterator[tuple[PeerProcess, PeerProcess]]:
    argv = ["agent", "--address", agent.address, "--ice-servers", json.dumps(ice_servers)]
    # turns: is checked against the system trust store, as in a deployment; SSL_CERT_FILE is
    # OpenSSL's way of putting the test CA there.
    env = {"SSL_CERT_FILE": str(trusted_ca)} if trusted_ca is not None else {}
    async with (
        PeerProcess.started(
            "agent", agent.netns, argv, log_path=tmp_path / "agent.log", env=env
        ) as agent_peer,
        PeerProcess.started(
            "viewer", viewer.netns, ["viewer"], log_path=tmp_path / "viewer.log"
        ) as viewer_peer,
    ):
        yield agent_peer, viewer_peer


async def _negotiate(
    agent_peer: PeerProcess, viewer_peer: PeerProcess
) -> tuple[str, str, list[str]]:
    """Offer, answer, then every trickled agent candidate to the viewer.

    Returns the offer, the answer and the trickled candidates.
    """
    offer = (await viewer_peer.next("offer", START))["sdp"]
    await agent_peer.send("offer", sdp=offer)
    answer = (await agent_peer.next("answer", START))["sdp"]
    await viewer_peer.send("answer", sdp=answer)
    trickled: list[str] = []
    while True:
        message = await agent_peer.next("candidate", STEP)
        await viewer_peer.send("candidate", candidate=message["candidate"], mid=message["mid"])
        if message["candidate"] is None:
            return offer, answer, trickled
        trickled.append(message["candidate"])


def _relays(candidates: list[str]) -> list[str]:
    """The addresses of the relay candidates among trickled candidate texts."""
    return [c.split()[4] for c in candidates if c.split()[6:8] == ["typ", "relay"]]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_session_connects_through_coturn_relay(
    transport: str, tmp_path: Path, pki: Pki, netns_topology: Topology
) -> None:
    topo = netns_topology
    agent, viewer, turn = (topo.add_host(name) for name in ("agent", "viewer", "turn"))
    topo.isolate(agent, viewer)
    # verbose: coturn then logs (and flushes) each allocation, permission and its usage.
    coturn = Coturn(tmp_path / "coturn", pki, host=turn.address, netns=turn.netns, verbose=True)
    with coturn:
        servers = _ice_servers(coturn, transport)
        async with _peers(tmp_path, agent, viewer, servers, trusted_ca=pki.ca_path) as (
            agent_peer,
            viewer_peer,
        ):

            def logs() -> str:
                coturn_log = log_tail(coturn.log_path)
                return f"{agent_peer.log()}\n{viewer_peer.log()}\n--- coturn ---\n{coturn_log}"

            offer, answer, trickled = await _negotiate(agent_peer, viewer_peer)
            # Host candidates that cannot pair (the router drops agent <-> viewer)...
            assert _candidates(offer) == [("host", viewer.address)]
            assert ("host", agent.address) in _candidates(answer)
            # ...and the relay on coturn, trickled after the answer (normally: an allocation
            # takes round trips, the answer none; either way is right).
            relays = [a for kind, a in _candidates(answer) if kind == "relay"] + _relays(trickled)
            assert relays == [turn.address], f"{trickled}\n{logs()}"

            while (state := await agent_peer.next("state", STEP))["state"] != "connected":
                assert state["state"] == "connecting", f"{state}\n{logs()}"

            await viewer_peer.send("frames", count=FRAMES, timeout=STEP)
            frames = await viewer_peer.next("frames", STEP + 5)
            assert frames["count"] >= FRAMES
            assert frames["sizes"] == [[320, 240]]
            # Seen from the viewer: its host candidate talks to the agent's relay on coturn.
            assert frames["pair"] == [["host", viewer.address], ["relay", turn.address]]

            await agent_peer.send("pair")
            pair = await agent_peer.next("pair", STEP)
            assert pair["pair"] == ["relay", "host"], logs()
            assert pair["frames_sent"] >= FRAMES

            # Closing the session deletes the allocation; coturn then logs what it relayed.
            await agent_peer.send("close")
            await agent_peer.next("closed", STEP)
            await asyncio.to_thread(
                wait_until,
                lambda: bool(_relayed_to_peers(coturn.log_path, coturn.username)),
                timeout=STEP,
                what="coturn's usage line for the deleted allocation",
                log=coturn.log_path,
            )
        assert f"peer {viewer.address}:" in coturn.log_path.read_text()  # the permission
        [(packets, relayed_bytes)] = _relayed_to_peers(coturn.log_path, coturn.username)
        # At least the frames the viewer decoded (320x240 at 500 kbit/s: tens of kilobytes).
        assert packets >= FRAMES and relayed_bytes > 10_000
        port = coturn.tls_port if transport == "tls" else coturn.port
        assert _client_transport(coturn.log_path, coturn.username, agent.address) == (
            port,
            transport,
        )


async def test_turns_server_with_an_untrusted_certificate_gives_no_relay(
    tmp_path: Path, pki: Pki, netns_topology: Topology
) -> None:
    topo = netns_topology
    agent, viewer, turn = (topo.add_host(name) for name in ("agent", "viewer", "turn"))
    topo.isolate(agent, viewer)
    with Coturn(tmp_path / "coturn", pki, host=turn.address, netns=turn.netns) as coturn:
        servers = _ice_servers(coturn, "tls")
        async with _peers(tmp_path, agent, viewer, servers, trusted_ca=None) as (
            agent_peer,
            viewer_peer,
        ):
            _, answer, trickled = await _negotiate(agent_peer, viewer_peer)
            assert _relays(trickled) == []
            assert [kind for kind, _ in _candidates(answer)] == ["host"]
            log = agent_peer.log()
            assert "certificate verify failed" in log, log

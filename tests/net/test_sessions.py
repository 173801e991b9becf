"""SessionManager's rules that need no peer: limits, unknown sessions, early candidates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.media.fanout import FanOut
from agent.net import driver, sessions
from agent.net.ice import IceServers
from agent.net.sessions import (
    MAX_EARLY_SESSIONS_PER_CLIENT,
    MAX_REMOTE_CANDIDATES,
    BusyError,
    CameraUnavailableError,
    SessionManager,
    UnknownSessionError,
)
from agent.rtc.certificate import Certificate
from agent.rtc.sdp import NegotiationError
from hw.frame import EncodedFrame
from tests.e2e.aiortc_viewer import AiortcViewer, loopback_only_host_addresses

CERT = Certificate.generate()


IDR = (Path(__file__).parents[1] / "rtc" / "data" / "h264_baseline_320x240_idr.h264").read_bytes()


class States(list[tuple[Any, ...]]):
    """The session states reported, with an event per change to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def record(self, state: tuple[Any, ...]) -> None:
        self.append(state)
        self.changed.set()

    async def wait_for(self, name: str) -> tuple[Any, ...]:
        async with asyncio.timeout(10):
            while not (found := [state for state in self if state[2] == name]):
                self.changed.clear()
                await self.changed.wait()
        return found[0]


def manager(states: States | None = None, **kwargs: Any) -> SessionManager:
    record = states.record if states is not None else (lambda _: None)
    return SessionManager(
        fanout=FanOut(lambda: None),
        certificate=CERT,
        ice_addresses=["127.0.0.1"],
        ice_servers=IceServers(),
        max_viewers=kwargs.pop("max_viewers", 4),
        on_state=lambda *a: record(a),
        on_candidate=lambda *a: None,
        **kwargs,
    )


def with_stream(m: SessionManager) -> SessionManager:
    m.fanout.push(EncodedFrame.from_annexb(IDR, 0, True), 0.0)
    return m


def without_candidates(sdp: str) -> str:
    lines = [
        line
        for line in sdp.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    return "\r\n".join(lines) + "\r\n"


async def test_closing_an_unknown_session_is_an_error() -> None:
    with pytest.raises(UnknownSessionError):
        await manager().close("viewer-1", "nope")


async def test_session_ids_are_scoped_to_their_client() -> None:
    m = manager()
    await m.add_candidate("viewer-1", "s", "1 1 udp 1 127.0.0.1 5000 typ host")
    assert ("viewer-1", "s") in m._early and ("viewer-2", "s") not in m._early
    with pytest.raises(UnknownSessionError):
        await m.close("viewer-2", "s")


async def test_early_candidates_are_bounded_per_client() -> None:
    m = manager()
    for index in range(MAX_EARLY_SESSIONS_PER_CLIENT + 2):
        await m.add_candidate("greedy", f"s{index}", "1 1 udp 1 127.0.0.1 5000 typ host")
    await m.add_candidate("polite", "p", "1 1 udp 1 127.0.0.1 5000 typ host")
    greedy = [key for key in m._early if key[0] == "greedy"]
    assert len(greedy) == MAX_EARLY_SESSIONS_PER_CLIENT
    assert ("greedy", "s0") not in m._early  # the oldest made room
    assert ("polite", "p") in m._early
    for _ in range(sessions.MAX_EARLY_CANDIDATES + 10):
        await m.add_candidate("polite", "p", "1 1 udp 1 127.0.0.1 5000 typ host")
    assert len(m._early[("polite", "p")]) == sessions.MAX_EARLY_CANDIDATES


async def test_no_keyframe_means_camera_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only_host_addresses(monkeypatch)
    monkeypatch.setattr(sessions, "STREAM_WAIT", 0.05)
    viewer = AiortcViewer()
    try:
        with pytest.raises(CameraUnavailableError, match="no keyframe"):
            await manager().offer("viewer-1", "s", await viewer.offer())
    finally:
        await viewer.close()


async def test_a_malformed_offer_leaves_no_session_behind() -> None:
    m = manager()
    with pytest.raises(NegotiationError):
        await m.offer("viewer-1", "s", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n")
    assert m.count == 0 and m.rows() == []


async def test_a_session_without_a_working_pair_fails_after_the_ice_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A viewer that closed its tab before sending end-of-candidates (or never will).
    loopback_only_host_addresses(monkeypatch)
    monkeypatch.setattr(driver, "ICE_CONNECT_TIMEOUT", 0.3)
    states = States()
    m = with_stream(manager(states))
    viewer = AiortcViewer()
    try:
        await m.offer("viewer-1", "s", without_candidates(await viewer.offer()))
        failed = await states.wait_for("failed")
        assert failed[3].startswith("ice timeout")
        assert m.count == 0  # the viewer slot is free again
    finally:
        await viewer.close()


async def test_trickled_candidates_are_capped_per_session(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only_host_addresses(monkeypatch)
    m = with_stream(manager())
    viewer = AiortcViewer()
    try:
        await m.offer("viewer-1", "s", without_candidates(await viewer.offer()))
        for port in range(MAX_REMOTE_CANDIDATES):
            await m.add_candidate("viewer-1", "s", f"1 1 udp 1 127.0.0.1 {5000 + port} typ host")
        with pytest.raises(ValueError, match="more than"):
            await m.add_candidate("viewer-1", "s", "1 1 udp 1 127.0.0.1 4999 typ host")
        await m.close("viewer-1", "s")
    finally:
        await viewer.close()


async def test_offers_waiting_for_the_first_keyframe_still_respect_the_viewer_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only_host_addresses(monkeypatch)
    m = manager(max_viewers=1)
    viewers = [AiortcViewer() for _ in range(3)]
    try:
        offers = [await v.offer() for v in viewers]
        waiting = [
            asyncio.ensure_future(m.offer(f"viewer-{i}", "s", sdp)) for i, sdp in enumerate(offers)
        ]
        # One turn of the loop runs each offer to its first await: waiting for the camera's
        # first keyframe, past the point where the viewer limit used to be checked.
        await asyncio.sleep(0)
        with_stream(m)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert sum(isinstance(r, str) for r in results) == 1
        assert sum(isinstance(r, BusyError) for r in results) == 2
        assert m.count == 1
        await m.close_all()
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_each_client_has_a_share_and_busy_says_which_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loopback_only_host_addresses(monkeypatch)
    m = with_stream(manager(max_viewers=3, max_sessions_per_client=2))
    viewers = [AiortcViewer() for _ in range(5)]
    try:
        offers = [await v.offer() for v in viewers]
        await m.offer("greedy", "a", offers[0])
        await m.offer("greedy", "b", offers[1])
        with pytest.raises(BusyError, match="per-client limit") as client_limit:
            await m.offer("greedy", "c", offers[2])
        assert client_limit.value.reason == "client_limit"
        await m.offer("greedy", "a", offers[2])  # replacing its own session is no new one
        await m.offer("polite", "p", offers[3])
        with pytest.raises(BusyError, match="device viewer limit") as viewer_limit:
            await m.offer("second", "s", offers[4])
        assert viewer_limit.value.reason == "viewer_limit"
        assert m.count == 3
        await m.close_all()
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_a_session_whose_dtls_never_completes_fails_after_the_dtls_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A viewer that answers ICE checks (so consent holds) but never speaks DTLS.
    loopback_only_host_addresses(monkeypatch)
    monkeypatch.setattr(driver, "DTLS_HANDSHAKE_TIMEOUT", 0.5)
    states = States()
    m = with_stream(manager(states))
    viewer = AiortcViewer()
    dtls = viewer.pc.getTransceivers()[0].receiver.transport
    monkeypatch.setattr(dtls, "start", lambda *a: asyncio.get_running_loop().create_future())
    try:
        await viewer.accept(await m.offer("viewer-1", "s", await viewer.offer()))
        failed = await states.wait_for("failed")
        assert failed[3].startswith("dtls timeout")
        assert m.count == 0  # the viewer slot is free again
    finally:
        await viewer.close()
